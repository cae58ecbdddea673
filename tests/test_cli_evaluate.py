"""``python -m workbench evaluate``: float, uint8 and int8 input models on a user's .npz; bad data as one line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from cli_support import DIGITS_CONFIG, all_images, digits, run_cli, save_npz


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def models(tmp_path_factory, data):
    """LeNet on digits as .keras, and converted with a float, a uint8 and an int8 input."""
    import workbench as wb
    from workbench.core.train import TrainConfig, trained_lenet

    folder = tmp_path_factory.mktemp("evaluate")
    lenet = trained_lenet(data, TrainConfig(**DIGITS_CONFIG))
    lenet.save(folder / "lenet.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wb.QuantizationWarning)
        converted = {
            "float32": wb.convert(lenet, "float32"),
            "uint8": wb.convert(lenet, "int8-ptq", io_type="uint8", calibration_size=200,
                                representative=data.train_images),
            "int8": wb.convert(lenet, "int8-ptq", io_type="int8", calibration_size=200,
                               representative=data.train_images),
        }
    paths = {name: c.save(folder / f"{name}.tflite") for name, c in converted.items()}
    return {"converted": converted, "paths": paths, "keras": folder / "lenet.keras", "dir": folder,
            "npz": save_npz(folder / "digits.npz", data, class_names=np.array([f"digit {i}" for i in range(10)]))}


def cli(capsys, *args):
    from workbench.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind, fed", [
    ("float32", "pixels mapped linearly from [0, 255] to [0, 1]"),
    ("uint8", "the raw bytes 0..255"),
    ("int8", "then quantized with the model's scale 0.00392157 and zero point -128"),
])
def test_json_for_float_uint8_and_int8_inputs(capsys, models, data, kind, fed):
    import workbench as wb

    code, out, err = cli(capsys, "evaluate", models["paths"][kind], "--data", models["npz"], "--json")
    assert code == 0, err
    record = json.loads(out)
    images, labels = all_images(data)
    expected = wb.evaluate(models["converted"][kind], images, labels)
    assert record["count"] == len(images) == 1797  # every image of the file
    assert record["accuracy"] == pytest.approx(expected.accuracy) and 0.85 < record["accuracy"] <= 1
    assert record["input"]["dtype"] == kind and fed in record["input"]["fed"]
    assert record["size_bytes"] == len(models["converted"][kind].tflite)
    assert record["images_per_second"] > 0 and record["converted_with"] is None
    assert list(record["per_class_accuracy"]) == [f"digit {i}" for i in range(10)]  # the file's class names
    per_class = np.array(list(record["per_class_accuracy"].values()))
    assert np.allclose(per_class, expected.per_class_accuracy)


def test_text_output_and_input_range(capsys, models, data):
    """A float model fed the wrong range loses accuracy; the text names what it was fed."""
    code, out, err = cli(capsys, "evaluate", models["paths"]["float32"], "--data", models["npz"])
    assert code == 0, err
    assert "accuracy: 0." in out and "per class: digit 0" in out and "images/s" in out
    right = float(out.split("accuracy: ")[1].split()[0])
    code, out, err = cli(capsys, "evaluate", models["paths"]["float32"], "--data", models["npz"],
                         "--input-range", "-1", "1", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["input_range"] == [-1.0, 1.0] and "to [-1, 1]" in record["input"]["fed"]
    assert record["accuracy"] < right - 0.1
    # the uint8 model reads raw bytes: the range changes nothing
    code, out, _ = cli(capsys, "evaluate", models["paths"]["uint8"], "--data", models["npz"], "--json")
    code, out2, _ = cli(capsys, "evaluate", models["paths"]["uint8"], "--data", models["npz"], "--json",
                        "--input-range", "-1", "1")
    assert json.loads(out)["accuracy"] == json.loads(out2)["accuracy"]


def test_a_keras_source_is_converted_float32_first_and_said_so(capsys, models):
    code, out, err = cli(capsys, "evaluate", models["keras"], "--data", models["npz"], "--json")
    assert code == 0, err
    record = json.loads(out)  # stdout stays pure JSON; the note goes to stderr
    assert record["converted_with"] == "float32"
    assert "converted with recipe float32 first" in err
    code, out, err = cli(capsys, "evaluate", models["paths"]["float32"], "--data", models["npz"], "--json")
    assert json.loads(out)["accuracy"] == record["accuracy"]


def test_a_keras_style_file_is_evaluated_on_its_test_half(capsys, models, data, tmp_path):
    np.savez(tmp_path / "split.npz", x_train=data.train_images, y_train=data.train_labels,
             x_test=data.test_images[..., 0], y_test=data.test_labels)  # (N, H, W): a channel is added
    code, out, err = cli(capsys, "evaluate", models["paths"]["int8"], "--data", tmp_path / "split.npz", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["count"] == len(data.test_images) and record["arrays"] == ["x_test", "y_test"]


def _bad_files(folder, data):
    images, labels = all_images(data)
    np.savez(folder / "out_of_range.npz", images=images, labels=np.where(labels == 9, 10, labels))
    np.savez(folder / "other_names.npz", pixels=images, targets=labels)
    np.savez(folder / "float_pixels.npz", images=images.astype(np.float32) / 255, labels=labels)
    np.savez(folder / "big.npz", images=np.zeros((3, 28, 28, 1), np.uint8), labels=np.zeros(3, np.int64))
    np.savez(folder / "short_labels.npz", images=images, labels=labels[:-1])
    (folder / "not.npz").write_text("hello")


@pytest.mark.parametrize("file, extra, message", [
    ("out_of_range.npz", [], "array 'labels' contains 10; allowed: class indices 0..9 (the model has 10 outputs)"),
    ("other_names.npz", [], "has no labels (other_names.npz: 1797 images (pixels 8x8x1 uint8), with targets); "
                            "allowed: labels (--labels NAME), or --reference MODEL"),
    ("other_names.npz", ["--images", "pixels", "--labels", "labelz"], "has no array 'labelz' (--labels)"),
    ("float_pixels.npz", ["--images", "images,labels"], "holds input arrays images, labels for a model with 1 "
                                                         "input(s)"),
    ("big.npz", [], "images are 28x28x1 (H x W x C) but the model reads 8x8x1"),
    ("short_labels.npz", [], "has 1796 entries for 1797 images"),
    ("not.npz", [], "is not a readable .npz"),
    ("missing.npz", [], "does not exist; allowed: an .npz file"),
    ("digits.npz", ["--input-range", "1", "2"], "--input-range 1.0 2.0:"),
])
@pytest.mark.parametrize("model", ["float32", "keras"])
def test_bad_data_is_one_line_before_anything_runs(capsys, monkeypatch, models, data, tmp_path, file, extra, message,
                                                   model):
    from workbench.core import convert as convert_module, evaluate as evaluate_module

    def nothing(*args, **kwargs):
        raise AssertionError("a conversion or evaluation started before the data was checked")

    monkeypatch.setattr(convert_module, "convert", nothing)
    monkeypatch.setattr(evaluate_module, "evaluate", nothing)
    _bad_files(tmp_path, data)
    if file == "digits.npz":
        file = models["npz"]
    path = models["keras"] if model == "keras" else models["paths"]["float32"]
    code, out, err = cli(capsys, "evaluate", path, "--data", tmp_path / file, *extra)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_labels_out_of_range_in_a_real_process(models, data, tmp_path):
    _bad_files(tmp_path, data)
    proc = run_cli("evaluate", models["paths"]["uint8"], "--data", tmp_path / "out_of_range.npz")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "contains 10; allowed: class indices 0..9" in errors[0], proc.stderr


def test_unlabelled_and_float_data_are_measured_against_the_reference(capsys, models, data, tmp_path):
    """No labels: the model is measured against --reference's outputs; float data (the pixels already in the
    model's range) are fed as they are and give the same figures as the uint8 images."""
    from workbench.core import fidelity, litert

    images, labels = all_images(data)
    np.savez(tmp_path / "unlabelled.npz", images=images)
    np.savez(tmp_path / "float.npz", inputs=images.astype(np.float32) / 255, labels=labels)
    code, out, err = cli(capsys, "evaluate", models["paths"]["int8"], "--data", tmp_path / "unlabelled.npz")
    assert code == 2 and "has no labels" in err and "--reference MODEL" in err
    records = {}
    for name, reference in (("keras", models["keras"]), ("tflite", models["paths"]["float32"])):
        code, out, err = cli(capsys, "evaluate", models["paths"]["int8"], "--data", tmp_path / "unlabelled.npz",
                             "--reference", reference, "--json")
        assert code == 0, err
        records[name] = json.loads(out)
    record = records["tflite"]
    assert "accuracy" not in record and record["task"] == "classifier" and record["count"] == len(images)
    # the figures are the metrics of the two models' outputs, computed here from LiteRT directly
    f = litert.run(models["converted"]["float32"], images).outputs
    q = litert.run(models["converted"]["int8"], images).outputs
    agreement = fidelity.agreement(f, q)
    assert agreement.value < 1 and record["agreement"] == pytest.approx(agreement.value)
    assert record["agreement_interval"] == pytest.approx([agreement.low, agreement.high])
    assert record["snr_db"] == pytest.approx(fidelity.snr_db(f, q), rel=1e-5)
    assert record["cosine"] == pytest.approx(fidelity.cosine(f, q), rel=1e-6)
    assert record["max_abs"] == pytest.approx(fidelity.max_abs(f, q), rel=1e-5)
    assert set(record["outputs"]) and all("snr_db" in v for v in record["outputs"].values())
    assert records["keras"]["snr_db"] == pytest.approx(record["snr_db"], rel=1e-5)  # the .keras converted float32 first
    # the model against itself: agreement 1 and an infinite SNR
    code, out, err = cli(capsys, "evaluate", models["paths"]["int8"], "--data", tmp_path / "unlabelled.npz",
                         "--reference", models["paths"]["int8"], "--json")
    same = json.loads(out)
    assert same["agreement"] == 1.0 and same["snr_db"] == "inf" and same["max_abs"] == 0.0
    # float data: the same accuracy as the uint8 images, and the note says where the uint8 stats come from
    code, out, err = cli(capsys, "evaluate", models["paths"]["float32"], "--data", tmp_path / "float.npz", "--json")
    assert code == 0, err
    floats = json.loads(out)
    code, out, _ = cli(capsys, "evaluate", models["paths"]["float32"], "--data", models["npz"], "--json")
    assert floats["accuracy"] == json.loads(out)["accuracy"] and floats["input"]["fed"] == "as they are"
    assert "the data's own range [0, 1]" in err
