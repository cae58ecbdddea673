"""A fully convolutional classifier saved with ``Input((None, None, 3))``: fixed to the data's shape for conversion.

The models are tiny (16x16x3 images, a few hundred weights) and written by the tests themselves: a tf_keras
``.keras`` file, a Keras 3 model exported with ``model.export()`` (a SavedModel with a dynamic signature) and,
where this Keras reads them, a Keras 3 ``.keras`` file.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

SHAPE = (16, 16, 3)
CLASSES = 3
NOTE = "input (None, None, None, 3) fixed to (None, 16, 16, 3) from --data"


def _build(k, seed: int = 0):
    inputs = k.Input((None, None, 3), name="image")
    x = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = k.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    model = k.Model(inputs, k.layers.Dense(CLASSES, activation="softmax", name="scores")(x), name="any_size")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The fixed SavedModel exports go to a cache of this module's own."""
    before = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["WORKBENCH_CACHE"]
    if before is None:
        os.environ.pop("WORKBENCH_CACHE")
    else:
        os.environ["WORKBENCH_CACHE"] = before


@pytest.fixture(scope="module")
def models():
    from workbench.core.keras_compat import keras, keras3

    return {"tf_keras": _build(keras), "keras3": _build(keras3(), seed=1)}


@pytest.fixture(scope="module")
def files(tmp_path_factory, models, cache):
    folder = tmp_path_factory.mktemp("dynamic")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8)
    labels = np.arange(60) % CLASSES
    np.savez(folder / "data.npz", images=images, labels=labels)
    models["tf_keras"].save(folder / "tf_keras.keras")
    models["keras3"].export(str(folder / "keras3_export"), verbose=False)
    models["keras3"].save(folder / "keras3.keras")
    return {"dir": folder, "npz": folder / "data.npz", "images": images, "labels": labels,
            "tf_keras": folder / "tf_keras.keras", "keras3_export": folder / "keras3_export",
            "keras3": folder / "keras3.keras"}


def _source(files, name):
    return str(files[name])


def _main(capsys, *args):
    from workbench.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", ["tf_keras", "keras3_export", "keras3"])
def test_report_fixes_the_input_to_the_data_and_every_post_training_recipe_converts(capsys, files, name):
    source = _source(files, name)
    out = files["dir"] / f"report-{name}"
    code, stdout, stderr = _main(capsys, "report", source, "--data", files["npz"], "--out", out)
    assert code == 0, stderr
    assert f"note: {NOTE} (data.npz) for conversion" in stdout
    with open(out / "report.csv") as f:
        rows = {row["recipe"].split(" ")[0]: row for row in csv.DictReader(f)}
    assert rows.pop("qat-int8")["status"] == "skipped"
    assert {r: row["status"] for r, row in rows.items()} == {r: "ok" for r in rows}, stdout
    assert len(rows) >= 7


@pytest.mark.parametrize("name", ["tf_keras", "keras3_export"])
def test_evaluate_fixes_the_input_and_says_so(capsys, files, models, name):
    code, stdout, stderr = _main(capsys, "evaluate", files[name], "--data", files["npz"], "--json")
    assert code == 0, stderr
    assert NOTE in stderr
    record = json.loads(stdout)
    assert record["input_fixed"].startswith(NOTE) and record["input"]["shape"][1:] == list(SHAPE)
    model = models["keras3" if name.startswith("keras3") else name]
    expected = np.mean(np.argmax(model.predict(files["images"] / 255.0, verbose=0), axis=1) == files["labels"])
    assert record["accuracy"] == pytest.approx(expected, abs=1 / 60 + 1e-9)


def test_input_shapes_beats_the_data(capsys, files):
    code, stdout, stderr = _main(capsys, "report", files["tf_keras"], "--data", files["npz"], "--input_shapes",
                                 "1,16,16,3", "--recipes", "float32", "--out", files["dir"] / "report-explicit")
    assert code == 0, stderr
    assert "note: input (None, None, None, 3) fixed to (None, 16, 16, 3) from --input_shapes for conversion" in stdout
    code, _, stderr = _main(capsys, "evaluate", files["tf_keras"], "--data", files["npz"], "--input_shapes", "1,8,8,3")
    assert code == 2 and "images are 16x16x3 (H x W x C) but the model reads 8x8x3" in stderr
    code, _, stderr = _main(capsys, "evaluate", files["tf_keras"], "--data", files["npz"], "--input_shapes", "1,16")
    assert code == 2 and "--input_shapes='1,16'; allowed: H,W,C or N,H,W,C" in stderr


@pytest.mark.parametrize("name", ["tf_keras", "keras3"])
def test_a_fixed_copy_predicts_as_the_dynamic_model_with_its_layer_names(files, models, name):
    import workbench as wb
    from workbench.core.model_io import model_io

    model = models[name]
    fixed = wb.fixed_input(model, (1, *SHAPE))
    assert tuple(fixed.inputs[0].shape) == (None, *SHAPE)
    assert [layer.name for layer in fixed.layers] == [layer.name for layer in model.layers]
    x = files["images"][:8].astype("float32") / 255.0
    np.testing.assert_allclose(fixed.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert wb.fixed_input(fixed, SHAPE) is fixed  # already that shape
    with pytest.raises(ValueError, match=r"input_shape=\(None, 8, 8, 3\) does not fit the model's input "
                                         r"\(None, 16, 16, 3\)"):
        wb.fixed_input(fixed, (8, 8, 3))
    assert model_io(fixed).image_shape == SHAPE


def test_a_qat_model_stays_a_qat_model_when_fixed(files, models):
    import tensorflow_model_optimization as tfmot

    import workbench as wb
    from workbench.core.sources import is_qat

    qat = tfmot.quantization.keras.quantize_model(models["tf_keras"])
    fixed = wb.fixed_input(qat, SHAPE)
    assert is_qat(fixed) and [layer.name for layer in fixed.layers] == [layer.name for layer in qat.layers]
    x = files["images"][:8].astype("float32") / 255.0
    np.testing.assert_allclose(fixed.predict(x, verbose=0), qat.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_a_saved_model_with_a_dynamic_signature_is_re_exported_at_the_fixed_shape(files, models):
    import workbench as wb
    from workbench.core.keras_compat import tf
    from workbench.core.model_io import model_io

    source = wb.load_source(files["keras3_export"])
    fixed = wb.fixed_input(source, SHAPE)
    assert model_io(fixed).inputs[0].shape == (None, *SHAPE)
    assert model_io(fixed).inputs[0].name == model_io(source).inputs[0].name
    assert wb.fixed_input(source, SHAPE).path == fixed.path  # exported once, then read from the cache
    x = files["images"][:8].astype("float32") / 255.0
    serve = tf.saved_model.load(str(fixed.path)).signatures["serving_default"]
    (got,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(got.numpy(), models["keras3"].predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_run_recipes_fixes_the_input_with_a_warning(files, models):
    from workbench.core.fixed_input import InputFixed
    from workbench.core.recipe_table import run_recipes

    with pytest.warns(InputFixed, match=r"fixed to \(None, 16, 16, 3\) from the images"):
        (run,) = run_recipes(models["tf_keras"], files["images"], files["labels"], recipes=["float32"])
    assert run.ok and run.converted.info.inputs[0].shape[1:] == SHAPE


def test_the_dynamic_shape_fix_names_the_data_shape_not_mnist():
    from workbench.core.diagnose import entry

    fix = entry("dynamic-shape").fix
    assert "28" not in fix and "(H, W, C)" in fix and "--input_shapes" in fix and "fixed_input" in fix


def test_convert_takes_input_shapes_for_a_keras_model_that_reads_any_size(files, capsys, tmp_path):
    """``convert --keras_model_file ... --input_shapes N,H,W,C`` fixes the input (as ``tflite_convert`` did for a
    graph), says so and prints the same step in Python."""
    from workbench.core import litert

    out = tmp_path / "fixed.tflite"
    code, text, err = _main(capsys, "convert", "--keras_model_file", str(files["tf_keras"]), "--output_file",
                            str(out), "--input_shapes", "1,20,20,3")
    assert code == 0, err
    assert tuple(litert.read_model(out.read_bytes()).inputs[0].shape[1:]) == (20, 20, 3)
    assert "fixed to (None, 20, 20, 3) from --input_shapes" in text and "wb.fixed_input(model, '1,20,20,3')" in text
