"""Models as users save them today: Keras 3 ``.keras``/``.h5`` files, custom layer classes, unloadable files.

Every file is written here by a tiny Keras 3 model (12x12x3 inputs, ``Rescaling`` inside, a few
hundred weights); nothing is downloaded. The models are built once for the module.
"""

from __future__ import annotations

import csv
import json
import warnings
import zipfile

import numpy as np
import pytest

from cli_support import save_npz

RECIPES = (("float32", {}), ("dynamic-range", {}), ("int8-ptq", {"calibrated": True}),
           ("legacy-uint8", {"default_ranges": (0.0, 6.0)}))

CUSTOM_LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="wbtest")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class AddOne(keras.layers.Layer):
    def call(self, x):
        return x + 1.0
'''


class Data:
    """60 images whose label is their brightest channel, as ``train_images``/``test_images`` halves."""

    def __init__(self):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8)
        labels = images.reshape(60, -1, 3).mean(axis=1).argmax(axis=1)
        self.images, self.labels = images, labels
        self.train_images, self.test_images = images[:30], images[30:]
        self.train_labels, self.test_labels = labels[:30], labels[30:]


@pytest.fixture(scope="module")
def keras3():
    from workbench.core.keras_compat import keras3

    return keras3()


@pytest.fixture(scope="module")
def data():
    return Data()


def _model(keras, *middle):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Rescaling(1 / 255.0), *middle,
                             keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                             keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


@pytest.fixture(scope="module")
def files(tmp_path_factory, keras3, data):
    """The Keras 3 model saved as .keras, .h5 and model.export(); a model with custom layers; the data."""
    from workbench.core.sources import custom_objects_of

    folder = tmp_path_factory.mktemp("keras3")
    model = _model(keras3)
    model.save(folder / "model.keras")
    model.save(folder / "model.h5")
    model.export(str(folder / "exported"), verbose=False)
    (folder / "layers.py").write_text(CUSTOM_LAYERS)
    layers = custom_objects_of(folder / "layers.py")
    assert set(layers) >= {"Scale", "AddOne", "wbtest>Scale"}
    custom = _model(keras3, layers["Scale"](0.5), layers["AddOne"]())
    custom.save(folder / "custom.keras")
    return {"dir": folder, "model": model, "custom": custom, "npz": save_npz(folder / "data.npz", data)}


def _convert(source, recipe, params, data):
    import workbench as wb

    params = dict(params)
    if params.pop("calibrated", False):
        params["representative"] = data.images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wb.QuantizationWarning)  # dynamic range leaves these tiny weights float
        return wb.convert(source, recipe, **params)


def cli(capsys, *args):
    """The command in this process (TensorFlow imported once): exit code, stdout, stderr."""
    from workbench.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keras3_files_say_which_keras_wrote_them_and_load_with_it(files, keras3, data):
    import workbench as wb
    from workbench.core import sources
    from workbench.core.keras_compat import is_keras3, keras

    expected = files["model"].predict(data.images.astype(np.float32), verbose=0)
    for name in ("model.keras", "model.h5"):
        path = files["dir"] / name
        info = sources.read_keras_file(path)
        assert info.keras_version == keras3.__version__ and info.major == 3, name
        assert info.custom_classes == () and not info.qat and info.written_by == f"Keras {keras3.__version__}"
        model = wb.load_source(path)
        assert is_keras3(model), name
        v = keras3.__version__
        assert sources.keras_origin(model) == f"written by Keras {v}, loaded with Keras {v}"
        np.testing.assert_allclose(model.predict(data.images.astype(np.float32), verbose=0), expected, atol=1e-6)
    # a tf_keras (Keras 2) file still loads with tf_keras, and says so
    old = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    old.save(files["dir"] / "old.keras")
    info = sources.read_keras_file(files["dir"] / "old.keras")
    assert info.major == 2 and info.written_by.endswith("(tf_keras)")
    loaded = wb.load_source(files["dir"] / "old.keras")
    assert not is_keras3(loaded) and sources.keras_origin(loaded).endswith(f"loaded with tf_keras {keras.__version__}")


def test_every_post_training_recipe_equals_the_models_own_export(files, data):
    """Each recipe on the Keras 3 model gives what it gives on the same model's model.export() folder: the same
    ops, the same scores for every image (the workbench exports in inference mode, so names may differ)."""
    import workbench as wb
    from workbench.core.evaluate import evaluate_keras

    exported = wb.load_source(files["dir"] / "exported")
    keras_record = evaluate_keras(files["model"], data.images, data.labels)
    for recipe, params in RECIPES:
        from_model = _convert(files["model"], recipe, params, data)
        from_export = _convert(exported, recipe, params, data)
        a = wb.evaluate(from_model, data.images, data.labels)
        b = wb.evaluate(from_export, data.images, data.labels)
        assert from_model.ops == from_export.ops, recipe  # the same graph (its names may differ) ...
        assert np.array_equal(wb.predict(from_model, data.images), wb.predict(from_export, data.images)), recipe
        assert np.array_equal(a.predictions, b.predictions) and a.accuracy == b.accuracy, recipe
        if recipe == "float32":  # the model's own Keras gives the same figures
            assert np.mean(a.predictions == keras_record.predictions) >= 0.98
    # a .keras path converts too (loaded with load_source's rules)
    assert _convert(files["dir"] / "model.keras", "float32", {}, data).tflite == \
        _convert(files["model"], "float32", {}, data).tflite


def test_report_and_evaluate_read_a_keras3_file(files, capsys, keras3):
    model = files["dir"] / "model.keras"  # it starts with Rescaling(1/255): it reads pixels 0..255
    code, out, err = cli(capsys, "evaluate", model, "--data", files["npz"], "--input-range", "0", "255")
    assert code == 0, err
    assert f"model.keras is not a .tflite (written by Keras {keras3.__version__}, loaded with Keras " \
           f"{keras3.__version__})" in out
    assert "accuracy:" in out
    code, out, err = cli(capsys, "report", model, "--data", files["npz"], "--input-range", "0", "255", "--recipes",
                         "float32", "int8-ptq", "legacy-uint8", "--out", files["dir"] / "report")
    assert code == 0, err
    rows = list(csv.DictReader((files["dir"] / "report" / "report.csv").open()))
    assert [r["recipe"].split(" ")[0] for r in rows] == ["float32", "int8-ptq", "legacy-uint8"]
    assert all(r["status"] == "ok" and 0 <= float(r["accuracy"]) <= 1 for r in rows), rows


def test_custom_layers_through_custom_objects(files, capsys, data):
    import workbench as wb
    from workbench.core.sources import custom_objects_of

    path, layers = files["dir"] / "custom.keras", files["dir"] / "layers.py"
    expected = files["custom"].predict(data.images.astype(np.float32), verbose=0)
    for given in (layers, str(layers), {"AddOne": custom_objects_of(layers)["AddOne"]}):
        model = wb.load_source(path, custom_objects=given)
        np.testing.assert_allclose(model.predict(data.images.astype(np.float32), verbose=0), expected, atol=1e-6)
    # Scale is registered by layers.py (run above); AddOne is not: the error names it and how to pass it
    with pytest.raises(ValueError, match=r"not Keras's own: AddOne; allowed: .*custom_objects='FILE.py'"):
        wb.load_source(path)
    code, out, err = cli(capsys, "evaluate", path, "--data", files["npz"])
    assert code == 2 and "AddOne" in err and "--custom-objects FILE.py" in err and "custom_objects=" not in err
    code, out, err = cli(capsys, "evaluate", path, "--data", files["npz"], "--custom-objects", layers)
    assert code == 0, err
    assert "its own layer classes: wbtest>Scale, AddOne)" in out
    code, out, err = cli(capsys, "convert", "--keras_model_file", path, "--output_file",
                         files["dir"] / "custom.tflite", "--custom-objects", layers)
    assert code == 0, err
    assert f"custom_objects={str(layers)!r}" in out  # the same in Python
    assert "(written by Keras 3" in out
    broken = files["dir"] / "broken_layers.py"
    broken.write_text("raise RuntimeError('no keras here')\n")
    code, out, err = cli(capsys, "evaluate", path, "--data", files["npz"], "--custom-objects", broken)
    assert code == 2 and err.startswith("error: --custom-objects=") and "RuntimeError: no keras here" in err


def _rewrite(source, target, config=None, metadata=True):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.namelist():
            if item == "metadata.json" and not metadata:
                continue
            data = old.read(item)
            if item == "config.json" and config is not None:
                data = json.dumps(config(json.loads(data))).encode()
            new.writestr(item, data)
    return target


def test_a_file_no_keras_can_load_says_what_was_tried(files, capsys, keras3):
    import workbench as wb

    def bad_conv(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Conv2D":
                layer["config"]["bogus_argument"] = 1
        return config

    bad = _rewrite(files["dir"] / "model.keras", files["dir"] / "bad.keras", bad_conv)
    with pytest.raises(ValueError) as caught:
        wb.load_source(bad)
    message = str(caught.value)
    assert f"could not be loaded as a Keras model: written by Keras {keras3.__version__}; tried Keras" in message
    assert "bogus_argument" in message and "model.export()" in message and "--custom-objects" in message
    assert "a file written by model.save()" not in message
    # a file that does not say which Keras wrote it: both are tried, each failure named
    unknown = _rewrite(bad, files["dir"] / "unknown.keras", metadata=False)
    message = str(pytest.raises(ValueError, wb.load_source, unknown).value)
    assert "written by a Keras that does not record its version" in message
    assert "tried tf_keras " in message and "; Keras " in message
    code, out, err = cli(capsys, "report", bad, "--data", files["npz"])
    assert code == 2 and err.startswith("error: SOURCE='") and "Traceback" not in err
    (files["dir"] / "junk.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match=r"it is not an HDF5 model file .*model.export\(\)"):
        wb.load_source(files["dir"] / "junk.h5")


def test_your_model_notebook_takes_a_keras3_file_of_any_size_with_its_own_layer(files, keras3, data):
    """``08_your_model`` on what a Keras 3 tutorial saves: ``Input((None, None, 3))``, ``Rescaling`` and
    augmentation inside, BatchNorm, Dropout and a layer class of the user's own (``custom_objects``): every
    post-training recipe runs, the model's own range 0..255 is used, the input is fixed to the images' size,
    and the float32 conversion scores what the Keras model itself scores on the same images."""
    from test_notebooks import NOTEBOOK_DIR, execute
    from workbench.core.sources import custom_objects_of

    layers = custom_objects_of(files["dir"] / "layers.py")
    keras3.utils.set_random_seed(0)
    inputs = keras3.Input((None, None, 3), name="image")
    x = keras3.layers.RandomFlip()(keras3.layers.Rescaling(1 / 255.0)(inputs))
    x = layers["Scale"](0.5)(keras3.layers.Conv2D(4, 3, activation="relu", name="conv")(x))
    x = keras3.layers.GlobalAveragePooling2D()(keras3.layers.BatchNormalization()(x))
    model = keras3.Model(inputs, keras3.layers.Dense(3, activation="softmax")(keras3.layers.Dropout(0.2)(x)))
    path = files["dir"] / "anysize.keras"
    model.save(path)
    results = execute(NOTEBOOK_DIR / "08_your_model.ipynb",
                      {"model_path": str(path), "data_path": str(files["npz"]), "custom_objects":
                       str(files["dir"] / "layers.py"), "calibration_size": 20, "live_size": 12, "grid_size": 2,
                       "range_maxes": [6], "layer_images": 12, "show_widgets": True, "show_netron": False},
                      {"table": "table.to_dict('records')", "spec": "[data.spec.lo, data.spec.hi]",
                       "notes": "[origin, range_note, shape_note]", "baseline": "baseline",
                       "keras": "wb.evaluate_keras(wb.load_source(model_path, custom_objects=custom_objects), "
                                "data.test_images, data.test_labels, data.spec).accuracy"})
    assert results["spec"] == [0.0, 255.0]
    origin, range_note, shape_note = results["notes"]
    assert origin.startswith("written by Keras 3") and "Scale" in origin, origin
    assert "Rescaling" in range_note and "0..255" in range_note, range_note
    assert shape_note == "input fixed to (12, 12, 3) (the images' size) for conversion", shape_note
    rows = {row["recipe"].split(" ")[0]: row for row in results["table"]}
    assert set(rows) == set(__import__("workbench").RECIPES)
    qat = rows.pop("qat-int8")
    assert "wraps tf_keras models only" in qat["outcome"], qat
    failed = {name: row["outcome"] for name, row in rows.items() if row["accuracy_pct"] != row["accuracy_pct"]}
    assert not failed, failed
    assert results["baseline"] == results["keras"]


def test_keep_float_names_a_keras3_models_layers(files, data):
    """Selective quantization takes a Keras 3 model's own layer names (its graph calls layer ``conv`` ``conv_1``):
    the kept layer's ops read float, every other op stays integer."""
    import workbench as wb

    model = files["model"]
    conv = next(layer.name for layer in model.layers if type(layer).__name__ == "Conv2D")
    full = _convert(model, "int8-ptq", {"calibrated": True}, data)
    kept = _convert(model, "int8-ptq", {"calibrated": True, "keep_float": (conv,)}, data)
    assert "CONV_2D" in {op for op in wb.gallery.ops_by_input_dtype(kept).get("float32", [])}
    assert "CONV_2D" not in wb.gallery.ops_by_input_dtype(full).get("float32", [])
    with pytest.raises(ValueError, match="no ops found"):
        _convert(model, "int8-ptq", {"calibrated": True, "keep_float": ("no_such_layer",)}, data)


def test_python_tools_take_a_path_with_custom_objects_and_any_input_size(files, data):
    """``run_recipes`` and the per-layer tools take a custom-layer file by path with ``custom_objects``; a sweep
    and an explorer take a model that reads any size and fix it to the images' (saying so)."""
    import workbench as wb
    from workbench.core.fixed_input import InputFixed

    path, layers = files["dir"] / "custom.keras", files["dir"] / "layers.py"
    runs = wb.recipe_table.run_recipes(path, data.test_images, data.test_labels, recipes=["float32"],
                                       custom_objects=layers)
    assert runs[0].ok, runs[0].outcome
    assert [layer.name for layer in wb.layer_error.reference_model(path, custom_objects=layers).layers] == \
        [layer.name for layer in files["custom"].layers]
    with pytest.raises(ValueError, match="--custom-objects|custom_objects"):
        wb.recipe_table.run_recipes(path, data.test_images, data.test_labels, recipes=["float32"])
    from workbench.core.keras_compat import keras3

    k3 = keras3()
    inputs = k3.Input((None, None, 3))
    anysize = k3.Model(inputs, k3.layers.Dense(3, activation="softmax")(
        k3.layers.GlobalAveragePooling2D()(k3.layers.Conv2D(4, 3)(k3.layers.Rescaling(1 / 255.0)(inputs)))))
    with pytest.warns(InputFixed, match=r"fixed to \(None, 12, 12, 3\)"):
        frame = wb.sweep.sweep(anysize, [{"default_ranges": (0.0, 6.0)}], data.test_images, data.test_labels,
                               spec=wb.InputSpec(0, 255), executor=None, cache=False, progress=False)
    assert (frame["error"].fillna("") == "").all(), frame["error"].tolist()
    assert 0 <= float(frame["accuracy"].iloc[0]) <= 1 and not frame["came_out_float"].iloc[0]
