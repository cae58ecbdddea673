"""``python -m workbench convert`` with the tflite_convert/toco flags: the same bytes as the Python path, errors as one line.

Real converter and LiteRT on LeNet trained on scikit-learn's 8x8 digits (a frozen
``.pb`` made with ``export_frozen_graph``, a ``.keras`` file, a QAT ``.h5``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cli_support import DIGITS_CONFIG, all_images, digits, python_call, run_cli, save_npz


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def lenet(data):
    from workbench.core.train import TrainConfig, trained_lenet

    return trained_lenet(data, TrainConfig(**DIGITS_CONFIG))


@pytest.fixture(scope="module")
def files(tmp_path_factory, data, lenet):
    """The model as a frozen .pb and a .keras file, the data as .npz files (and one of another image size)."""
    from workbench.core.converters import export_frozen_graph

    folder = tmp_path_factory.mktemp("cli")
    graph = export_frozen_graph(lenet, folder / "lenet.pb")
    lenet.save(folder / "lenet.keras")
    big = np.zeros((4, 28, 28, 1), np.uint8)
    np.savez(folder / "big.npz", images=big, labels=np.zeros(4, np.int64))
    return {"pb": graph.path, "keras": folder / "lenet.keras", "npz": save_npz(folder / "digits.npz", data),
            "big": folder / "big.npz", "dir": folder, "graph": graph}


def pb_flags(files, out="out.tflite"):
    return ["--graph_def_file", str(files["pb"]), "--input_arrays", "image", "--output_arrays", "Identity",
            "--input_shapes", "1,8,8,1", "--output_file", str(files["dir"] / out)]


def cli(capsys, *args):
    """The command in this process (TensorFlow imported once): exit code, stdout, stderr."""
    from workbench.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def python_path(source, recipe, **params):
    import workbench as wb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wb.QuantizationWarning)
        return wb.convert(source, recipe, **params)


def test_toco_flags_on_a_frozen_pb_give_the_python_paths_bytes_and_accuracy(files, data):
    """The forum's command, in a real process: QUANTIZED_UINT8 with mean/std and default ranges on a frozen graph."""
    import workbench as wb

    proc = run_cli("convert", *pb_flags(files, "uint8.tflite"), "--inference_type", "QUANTIZED_UINT8",
                   "--mean_values", "0", "--std_dev_values", "255", "--default_ranges_min", "0",
                   "--default_ranges_max", "6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    written = (files["dir"] / "uint8.tflite").read_bytes()
    source = wb.load_source(files["pb"], input_arrays=["image"], output_arrays=["Identity"],
                            input_shapes=[[1, 8, 8, 1]])
    expected = python_path(source, "legacy-uint8", mean=0, std=255, default_ranges=(0, 6))
    assert written == expected.tflite
    images, labels = all_images(data)
    cli_acc = wb.evaluate(written, images, labels).accuracy
    assert cli_acc == wb.evaluate(expected, images, labels).accuracy and cli_acc > 0.85
    # what happened, in words, and the Python call that does the same (run here: same bytes again)
    assert "recipe legacy-uint8 [mean=0,std=255; ranges=(0,6)]" in proc.stdout
    assert "as asked: uint8 weights, uint8 activations, uint8 input" in proc.stdout
    assert f"wrote {files['dir'] / 'uint8.tflite'} ({len(written) / 1024:.1f} KB" in proc.stdout
    code = python_call(proc.stdout)
    assert "wb.convert(model, 'legacy-uint8', mean=0.0, std=255.0, default_ranges=(0.0, 6.0))" in code
    namespace = {}
    exec(code.replace("converted.save(", "(lambda *a: None)("), namespace)  # noqa: S102 - the printed call
    assert namespace["converted"].tflite == written


@pytest.mark.parametrize("flags, recipe, params", [
    ([], "float32", {}),
    (["--inference_type", "FLOAT"], "float32", {}),
    (["--post_training_quantize"], "dynamic-range", {}),
    (["--quantize_weights"], "dynamic-range", {}),  # the hidden old name tflite_convert still takes
    (["--post_training_quantize", "--quantize_to_float16"], "float16", {}),
    (["--inference_type", "INT8", "--representative_data", "{npz}", "--calibration_size", "100"], "int8-ptq",
     {"io_type": "int8", "calibration_size": 100}),
    (["--inference_type", "INT8", "--inference_input_type", "QUANTIZED_UINT8", "--representative_data", "{npz}",
      "--calibration_size", "100"], "int8-ptq", {"io_type": "uint8", "calibration_size": 100}),
    (["--inference_type", "INT8", "--inference_input_type", "FLOAT", "--representative_data", "{npz}",
      "--calibration_size", "100"], "int8-ptq", {"io_type": "float32", "calibration_size": 100}),
])
def test_each_flag_combination_maps_to_its_recipe(capsys, files, flags, recipe, params):
    import workbench as wb

    flags = [f.replace("{npz}", str(files["npz"])) for f in flags]
    code, out, err = cli(capsys, "convert", *pb_flags(files), *flags)
    assert code == 0, err
    assert f"-> recipe {recipe}" in out
    source = wb.load_source(files["pb"], input_arrays="image", output_arrays="Identity", input_shapes="1,8,8,1")
    representative = np.load(files["npz"])["images"] if "calibration_size" in params else None
    expected = python_path(source, recipe, representative=representative, **params)
    assert (files["dir"] / "out.tflite").read_bytes() == expected.tflite
    assert f"wb.convert(model, {recipe!r}" in python_call(out)
    if flags[:1] == ["--quantize_weights"]:
        assert "the old name of --post_training_quantize" in out


def test_keras_file_and_qat_model_with_int8(capsys, files, data, tmp_path):
    """A .keras file converts like the Keras model; a QAT .h5 with INT8 becomes qat-int8 (no data needed)."""
    from workbench.core.train import QatConfig, TrainConfig, trained_lenet

    code, out, err = cli(capsys, "convert", "--keras_model_file", files["keras"], "--output_file",
                         tmp_path / "k.tflite", "--inference_type", "INT8", "--representative_data", files["npz"],
                         "--calibration_size", "50")
    assert code == 0, err
    assert "recipe int8-ptq [n=50; io=int8]" in out and "as asked" in out
    qat = trained_lenet(data, TrainConfig(**DIGITS_CONFIG), QatConfig("int8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras: "HDF5 is a legacy format"
        qat.save(tmp_path / "qat.h5")
    code, out, err = cli(capsys, "convert", "--keras_model_file", tmp_path / "qat.h5", "--output_file",
                         tmp_path / "q.tflite", "--inference_type", "INT8", "--inference_input_type", "QUANTIZED_UINT8")
    assert code == 0, err
    assert "on a QAT model -> recipe qat-int8 [io=uint8]" in out and "model: QAT Keras model" in out
    expected = python_path(qat, "qat-int8", io_type="uint8")
    assert (tmp_path / "q.tflite").read_bytes() == expected.tflite


def test_came_out_float_is_said_and_the_fix_given_in_flags(capsys, files):
    code, out, err = cli(capsys, "convert", *pb_flags(files), "--inference_type", "QUANTIZED_UINT8",
                         "--mean_values", "0", "--std_dev_values", "255")
    assert code == 0, err
    assert "what happened: came out float: uint8 was asked for but" in out
    assert "add --default_ranges_min 0 --default_ranges_max 6" in out


@pytest.mark.parametrize("flag, sentence", [
    ("--drop_control_dependency", "TF 2.21's MLIR converter ignores it"),
    ("--reorder_across_fake_quant", "TF 2.21's MLIR converter ignores it"),
    ("--output_format=TFLITE", "the converter writes .tflite only"),
    ("--input_format=TENSORFLOW_GRAPHDEF", "gone since TF 1.x's toco"),
    ("--enable_v1_converter", "not needed"),
])
def test_flags_that_do_nothing_any_more_are_named_and_dropped(capsys, files, flag, sentence):
    code, out, err = cli(capsys, "convert", *pb_flags(files), flag)
    assert code == 0, err
    assert f"note: {flag}" in out and sentence in out and "dropped." in out


@pytest.mark.parametrize("flags, message", [
    # model and arrays
    (["--input_arrays", "input"], "--input_arrays: 'input' is not a node of lenet.pb; allowed: 'image'"),
    (["--output_arrays", "probs"], "--output_arrays: 'probs' is not a node of lenet.pb"),
    (["--input_shapes", "1,28,28,1"], "--input_shapes=1,28,28,1 does not match input 'image' of lenet.pb, which is "
                                      "1,8,8,1"),
    (["--input_shapes", "1,8,8,1:1,8,8,1"], "--input_shapes='1,8,8,1:1,8,8,1' gives 2 shape(s) for 1 input array(s)"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0"],
     "--mean_values=0 without --std_dev_values; allowed: both"),
    (["--inference_type", "QUANTIZED_UINT8", "--std_dev_values", "255"], "--std_dev_values=255 without --mean_values"),
    (["--inference_type", "QUANTIZED_UINT8"], "--inference_type=QUANTIZED_UINT8 without --mean_values and "
                                              "--std_dev_values; allowed: both, from the float range"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "300", "--std_dev_values", "255"],
     "--mean_values=300 is out of range; allowed: 0..255"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "0"],
     "--std_dev_values=0 is out of range"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "x"],
     "--std_dev_values='x' is not a list of numbers"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "255",
      "--default_ranges_min", "0"], "--default_ranges_min=0 without --default_ranges_max"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "255",
      "--default_ranges_min", "6", "--default_ranges_max", "0"], "--default_ranges_min=6 is not below"),
    (["--mean_values", "0", "--std_dev_values", "255"], "--mean_values with --inference_type=FLOAT; allowed: only "
                                                        "with --inference_type QUANTIZED_UINT8"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "255",
      "--inference_input_type", "FLOAT"], "--inference_input_type=FLOAT with --inference_type=QUANTIZED_UINT8"),
    (["--inference_type", "QUANTIZED_UINT8", "--mean_values", "0", "--std_dev_values", "255",
      "--post_training_quantize"], "--post_training_quantize with --inference_type=QUANTIZED_UINT8"),
    (["--quantize_to_float16"], "--quantize_to_float16 without --post_training_quantize"),
    (["--inference_type", "INT8"], "--inference_type=INT8 on the float model"),
    (["--inference_type", "INT8", "--representative_data", "{dir}/missing.npz"],
     "--representative_data='{dir}/missing.npz' does not exist; allowed: an .npz file"),
    (["--inference_type", "INT8", "--representative_data", "{npz}", "--images", "x"],
     "--representative_data='{npz}' has no array 'x'; allowed: one of images, labels"),
    (["--inference_type", "INT8", "--representative_data", "{big}"],
     "images are 28x28x1 (H x W x C) but the model reads 8x8x1"),
    (["--representative_data", "{npz}"], "--representative_data='{npz}' with --inference_type=FLOAT; allowed: only "
                                         "with --inference_type INT8"),
    (["--inference_type", "INT8", "--representative_data", "{npz}", "--calibration_size", "0"],
     "--calibration_size=0 is out of range"),
    (["--inference_type", "FLOAT16"], "argument --inference_type: invalid choice: 'FLOAT16'"),
    (["--signature", "serving_default"], "--signature='serving_default' with --graph_def_file; allowed: only with "
                                         "--saved_model_dir"),
    # flags that no longer exist
    (["--input_file", "x.pb"], "--input_file=x.pb: no longer exists: renamed --graph_def_file"),
    (["--std_value", "255"], "--std_value=255: no longer exists: renamed --std_dev_values"),
    (["--batch_size", "4"], "--batch_size=4: no longer exists: the batch is the first number of --input_shapes"),
    (["--input_shape", "1,8,8,1"], "--input_shape=1,8,8,1: no longer exists: renamed --input_shapes"),
    (["--output_format", "GRAPHVIZ_DOT"], "--output_format=GRAPHVIZ_DOT: the converter no longer draws graphs"),
    (["--allow_custom_ops"], "--allow_custom_ops: still a tflite_convert flag, but a model with custom ops does "
                             "not run in LiteRT"),
    (["--no_such_flag"], "--no_such_flag is not a tflite_convert flag the workbench knows"),
])
def test_bad_flags_are_one_line_before_any_conversion(capsys, monkeypatch, files, flags, message):
    from workbench.core import convert as convert_module

    def no_conversion(*args, **kwargs):
        raise AssertionError("a conversion started before the arguments were checked")

    monkeypatch.setattr(convert_module, "convert", no_conversion)
    fill = {"{npz}": str(files["npz"]), "{big}": str(files["big"]), "{dir}": str(files["dir"])}
    for key, value in fill.items():
        flags = [f.replace(key, value) for f in flags]
        message = message.replace(key, value)
    code, out, err = cli(capsys, "convert", *pb_flags(files), *flags)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


@pytest.mark.parametrize("flags, message", [
    (["--graph_def_file", "{pb}", "--output_file", "o.tflite"],
     "--graph_def_file='{pb}' without --input_arrays and --output_arrays"),
    (["--keras_model_file", "{pb}", "--output_file", "o.tflite"], "--keras_model_file='{pb}' has suffix '.pb'"),
    (["--keras_model_file", "{keras}", "--input_arrays", "image", "--output_file", "o.tflite"],
     "--input_arrays='image' with --keras_model_file; allowed: only with --graph_def_file"),
    (["--saved_model_dir", "{dir}/nothing", "--output_file", "o.tflite"], "--saved_model_dir='{dir}/nothing' is not "
                                                                          "a folder"),
    (["--saved_model_dir", "{dir}", "--output_file", "o.tflite"], "is a folder without saved_model.pb"),
    (["--keras_model_file", "{keras}"], "the following arguments are required: --output_file"),
    (["--output_file", "o.tflite"], "one of the arguments --saved_model_dir --keras_model_file --graph_def_file is "
                                    "required"),
    (["--keras_model_file", "{keras}", "--output_file", "{dir}"], "--output_file='{dir}' is a folder"),
])
def test_bad_model_flags_are_one_line(capsys, files, flags, message):
    fill = {"{pb}": str(files["pb"]), "{keras}": str(files["keras"]), "{dir}": str(files["dir"])}
    for key, value in fill.items():
        flags = [f.replace(key, value) for f in flags]
        message = message.replace(key, value)
    code, out, err = cli(capsys, "convert", *flags)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_a_wrong_array_name_in_a_real_process_is_one_line_without_traceback(files):
    proc = run_cli("convert", "--graph_def_file", files["pb"], "--input_arrays", "input", "--output_arrays",
                   "Identity", "--output_file", files["dir"] / "x.tflite")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: --input_arrays: 'input' is not a node of lenet.pb; allowed: 'image'"], proc.stderr
    assert "Traceback" not in proc.stderr
