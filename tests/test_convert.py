"""Every conversion recipe, on real small-trained LeNets, through the real converter and LiteRT."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench import QuantizationError, QuantizationWarning, Recipe, convert, evaluate, read_model, recipes
from workbench.core.convert import RECIPES


def _acc(model, test_set):
    images, labels = test_set
    return evaluate(model, images, labels).accuracy


FLOAT_MODEL_RECIPES = [
    ("float32", {}, "float32", "float32"),
    ("dynamic-range", {}, "float32", "float32"),
    ("float16", {}, "float32", "float32"),
    ("int8-ptq", {}, "float32", "int8"),
    ("int8-ptq", {"io_type": "uint8"}, "uint8", "int8"),
    ("int8-ptq", {"io_type": "int8"}, "int8", "int8"),
    ("int16x8", {}, "float32", "int16"),
    ("aeq-int4-weights", {}, "float32", "float32"),
    ("aeq-int8", {}, "float32", "int8"),
]


def _keeps_its_spec(c) -> None:
    """The converted model has the weight and activation dtypes its registry spec declares."""
    spec = recipes.get(c.recipe.name)
    assert spec.activations in c.activation_dtypes, (spec.activations, c.activation_dtypes)
    # LiteRT reports int4 tensors as int8 (test_aeq reads the true int4 type from the flatbuffer).
    weights = "int8" if spec.weights == "int4" else spec.weights
    assert weights in c.dtype_counts, (spec.weights, c.dtype_counts)


@pytest.mark.parametrize("name, kwargs, input_dtype, activation_dtype", FLOAT_MODEL_RECIPES)
def test_float_model_recipes(float_model, mnist, test_set, float_tflite, name, kwargs, input_dtype, activation_dtype):
    if recipes.get(name).calibrated:
        kwargs = {**kwargs, "calibration_size": 100}
    c = convert(float_model, name, representative=mnist.train_images[:200], **kwargs)
    assert c.input.dtype == input_dtype
    assert activation_dtype in c.activation_dtypes
    _keeps_its_spec(c)
    assert c.warnings == ()
    assert abs(_acc(c, test_set) - _acc(float_tflite, test_set)) < 0.01
    if name != "float32":
        assert c.size_kb < 0.6 * float_tflite.size_kb


def test_dynamic_range_keeps_float_activations_and_int8_weights(float_model):
    c = convert(float_model, "dynamic-range")
    assert set(c.activation_dtypes) == {"float32"}
    # conv2, fc1 and fc2 kernels; the converter leaves tensors under 1024 weights
    # (conv1: 150, probs: 840) in float.
    assert c.dtype_counts.get("int8", 0) == 3
    assert not c.outcome.weights_unquantized and not c.warnings


def test_dynamic_range_on_small_weights_says_it_changed_nothing():
    from workbench.core.keras_compat import keras

    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)  # 36 weights
    x = keras.layers.GlobalAveragePooling2D()(x)
    tiny = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(x))  # 40 weights
    with pytest.warns(QuantizationWarning, match="dynamic range changed nothing"):
        c = convert(tiny, "dynamic-range")
    assert c.outcome.weights_unquantized and c.outcome.largest_weight == 40
    assert "int8" not in c.dtype_counts
    assert c.warnings[0].startswith("dynamic range changed nothing: the converter quantizes only weight tensors "
                                    "of at least 1024 elements and this model's largest has 40")
    assert abs(c.size_kb - convert(tiny, "float32").size_kb) < 1.0  # the float model again


def test_legacy_uint8_qat_model_is_uint8_and_close_to_float(qat_uint8, float_tflite, test_set):
    c = convert(qat_uint8, "legacy-uint8")
    assert set(c.activation_dtypes) == {"uint8"}
    assert c.input.dtype == "uint8" and c.output.dtype == "uint8"
    _keeps_its_spec(c)
    assert c.effective_stats.mean == 0 and c.effective_stats.std == pytest.approx(255)
    assert abs(_acc(c, test_set) - _acc(float_tflite, test_set)) <= 0.015


def test_uint8_legacy_stats_matter(qat_uint8, test_set):
    right = _acc(convert(qat_uint8, "legacy-uint8", mean=0, std=255), test_set)
    wrong = _acc(convert(qat_uint8, "legacy-uint8", mean=0, std=1), test_set)
    assert right - wrong > 0.30, (right, wrong)


def test_float_model_without_default_ranges_is_flagged_came_out_float(float_model):
    with pytest.warns(QuantizationWarning, match="came out float"):
        c = convert(float_model, "legacy-uint8")
    assert c.came_out_float
    assert "float32" in c.activation_dtypes


def test_float_model_with_default_ranges_becomes_uint8(float_model, float_tflite, test_set):
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        c = convert(float_model, "legacy-uint8", default_ranges=(0, 6))
    assert not c.came_out_float
    assert set(c.activation_dtypes) == {"uint8"}
    assert c.size_kb < 0.4 * float_tflite.size_kb
    assert _acc(c, test_set) > 0.8


def test_learned_input_range_makes_the_stats_ignored(qat_uint8_learned):
    with pytest.warns(QuantizationWarning, match="mean/std ignored"):
        c = convert(qat_uint8_learned, "legacy-uint8", mean=127.5, std=127.5)
    assert c.stats_ignored
    assert c.effective_stats.mean == 0
    assert c.effective_stats.std == pytest.approx(255, rel=1e-3)
    assert "mean=0, std=255" in c.warnings[0]


def test_per_channel_qat_model_on_uint8_path_is_explained(qat_int8):
    with pytest.raises(QuantizationError) as info:
        convert(qat_int8, "legacy-uint8")
    text = str(info.value)
    assert info.value.key == "per-channel-on-uint8"
    assert "Per-channel weights" in text and "int8" in text and "qat-int8" in text
    assert "failed to prepare" in text  # the original runtime message stays underneath


def test_qat_int8_recipe(qat_int8, float_tflite, test_set):
    c = convert(qat_int8, "qat-int8", io_type="uint8")
    assert c.input.dtype == "uint8" and "int8" in c.activation_dtypes
    _keeps_its_spec(c)
    assert c.input.scale == pytest.approx(1 / 255, rel=1e-3) and c.input.zero_point == 0
    assert abs(_acc(c, test_set) - _acc(float_tflite, test_set)) < 0.015


def test_qat_recipe_refuses_a_float_model(float_model):
    with pytest.raises(ValueError, match="needs a QAT model"):
        convert(float_model, "qat-int8")


def test_conversion_from_a_saved_model_folder_matches_keras(qat_uint8, tmp_path, test_set):
    from workbench import export_saved_model

    folder = export_saved_model(qat_uint8, tmp_path / "sm")
    a = convert(folder, "legacy-uint8")
    b = convert(qat_uint8, "legacy-uint8")
    assert a.ops == b.ops and a.input == b.input and a.output == b.output
    images, labels = test_set
    np.testing.assert_array_equal(evaluate(a, images, labels).predictions, evaluate(b, images, labels).predictions)


def test_saved_tflite_is_written_atomically_and_readable(float_tflite, tmp_path):
    path = float_tflite.save(tmp_path / "m" / "float.tflite")
    assert path.read_bytes() == float_tflite.tflite
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert read_model(path.read_bytes()).ops == float_tflite.ops


@pytest.mark.parametrize("kwargs, message", [
    ({"recipe": "int4"}, r"recipe='int4' is not supported; allowed: 'float32'"),
    ({"recipe": "legacy-uint8", "mean": 0, "std": 0}, r"std=0"),
    ({"recipe": "legacy-uint8", "mean": 256, "std": 1}, r"mean=256"),
    ({"recipe": "legacy-uint8", "mean": 0}, r"give both or neither"),
    ({"recipe": "legacy-uint8", "default_ranges": (6, 0)}, r"default_ranges=.* min >= max"),
    ({"recipe": "legacy-uint8", "default_ranges": (0, float("nan"))}, r"default_ranges\[1\] \(max\)=nan"),
    ({"recipe": "int8-ptq", "calibration_size": 0}, r"calibration_size=0"),
    ({"recipe": "int8-ptq", "io_type": "int4"}, r"io_type='int4'"),
    ({"recipe": "float32", "bogus": 1}, r"unknown parameter"),
])
def test_bad_recipe_parameters(float_model, kwargs, message):
    recipe = kwargs.pop("recipe")
    with pytest.raises(ValueError, match=message):
        convert(float_model, recipe, **kwargs)


def test_empty_or_missing_representative_set(float_model):
    with pytest.raises(ValueError, match=r"representative is empty"):
        convert(float_model, "int8-ptq", representative=np.zeros((0, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"representative=None for recipe 'int8-ptq'"):
        convert(float_model, "int8-ptq")
    with pytest.raises(ValueError, match=r"representative has shape \(3, 32, 32, 1\)"):
        convert(float_model, "int8-ptq", representative=np.zeros((3, 32, 32, 1), np.uint8))


def test_missing_saved_model_folder(tmp_path):
    with pytest.raises(ValueError, match=r"is not a SavedModel folder"):
        convert(tmp_path / "nothing", "float32")


def _recipes_checked_on_qat_models() -> set[str]:
    """The recipes a test of this module converts a QAT fixture with (``convert(qat_..., "name")``) and then holds
    to its registry spec (``_keeps_its_spec``), read from this module's source."""
    checked = set()
    for node in ast.parse(Path(__file__).read_text()).body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        if not any(c.func.id == "_keeps_its_spec" for c in calls):
            continue
        checked |= {c.args[1].value for c in calls if c.func.id == "convert" and len(c.args) >= 2
                    and isinstance(c.args[0], ast.Name) and c.args[0].id.startswith("qat")
                    and isinstance(c.args[1], ast.Constant)}
    return checked


def test_every_registered_recipe_is_converted_and_held_to_its_spec_here():
    """A recipe in the registry that no test here converts and checks with ``_keeps_its_spec`` (or a tested one
    that left the registry) fails here: the float model's recipes through ``test_float_model_recipes``, the QAT
    ones through the tests that convert a QAT fixture."""
    on_qat = _recipes_checked_on_qat_models()
    assert {"qat-int8", "legacy-uint8"} <= on_qat, on_qat  # the scan finds the two QAT tests above
    assert set(RECIPES) == {case[0] for case in FLOAT_MODEL_RECIPES} | on_qat


def test_recipe_label_names_its_parameters():
    assert Recipe("legacy-uint8", mean=0, std=255, default_ranges=(0, 6)).label() == \
        "legacy-uint8 [mean=0,std=255; ranges=(0,6)]"
    assert Recipe("int8-ptq", calibration_size=100, io_type="uint8").label() == "int8-ptq [n=100; io=uint8]"
    assert Recipe("float32").label() == "float32"


def test_reconverting_a_keras_model_follows_its_current_weights(float_model):
    from workbench.core.train import QatConfig, quantize_model

    model = quantize_model(float_model, QatConfig("uint8-legacy"))
    original = model.get_weights()
    first = convert(model, "legacy-uint8")
    again = convert(model, "legacy-uint8", mean=3, std=255)  # reuses the export
    assert again.effective_stats.mean == 3
    model.set_weights([w * 0.5 if w.ndim > 1 else w for w in original])  # kernels changed in place
    changed = convert(model, "legacy-uint8")
    assert changed.tflite != first.tflite
    model.set_weights(original)
    assert convert(model, "legacy-uint8").tflite == first.tflite


def test_one_export_per_model_for_conversions_and_sweeps(float_model, qat_uint8, tmp_path):
    from workbench.core.converters import keras_saved_model
    from workbench.core.keras_compat import keras
    from workbench.explore.sweep import saved_model_folder

    twin = keras.models.clone_model(float_model)
    twin.set_weights(float_model.get_weights())
    first = keras_saved_model(float_model, tmp_path)
    assert keras_saved_model(twin, tmp_path) == first  # same layers and weights: one export
    assert saved_model_folder(twin, tmp_path) == first  # a sweep's export is the conversion's
    other = keras_saved_model(qat_uint8, tmp_path)
    assert other != first and (other / "saved_model.pb").is_file()
    assert (first / "saved_model.pb").is_file()  # another model's export never removes this one
    assert sorted(p.name for p in (tmp_path / "savedmodels").iterdir() if p.is_dir()) == sorted([first.name,
                                                                                                   other.name])


def test_models_that_differ_only_in_a_weightless_layer_get_their_own_export(tmp_path):
    """``Rescaling(1/255)`` and ``Rescaling(1/127.5)`` with the same weights are two models: two exports, two
    different conversions (the export cache keys the configuration, not only the weights)."""
    import workbench as wb
    from workbench.core.converters import keras_saved_model
    from workbench.core.keras_compat import keras

    def build(scale):
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Rescaling(scale), keras.layers.Flatten(),
                                 keras.layers.Dense(3)])

    a, b = build(1 / 255.0), build(1 / 127.5)
    b.set_weights(a.get_weights())
    assert keras_saved_model(a, tmp_path) != keras_saved_model(b, tmp_path)
    images = np.arange(2 * 36, dtype=np.uint8).reshape(2, 6, 6, 1)
    spec = wb.InputSpec(0, 255)
    outs = [wb.predict(wb.convert(m, "legacy-uint8", default_ranges=(-4.0, 4.0), spec=spec), images, spec)
            for m in (a, b)]
    assert not np.array_equal(outs[0], outs[1])


def test_calibrated_recipes_calibrate_once_and_keep_the_converters_bytes(float_model, mnist, monkeypatch):
    """int8-ptq (float and uint8 I/O) and int16x8 on the same model and data calibrate once
    (``shared_calibration``), and give the same bytes as the converter calibrating each one itself."""
    import contextlib

    from workbench.core import converters, shared_calibration

    images = mnist.train_images[:40]
    asked = [("int8-ptq", {}), ("int8-ptq", {"io_type": "uint8"}), ("int16x8", {})]

    def each():
        return [convert(float_model, n, representative=images, calibration_size=40, **kw).tflite for n, kw in asked]

    shared_calibration.clear()
    before = dict(shared_calibration.stats)
    shared = each()
    assert shared_calibration.stats["calibrated"] - before["calibrated"] == 1
    assert shared_calibration.stats["shared"] - before["shared"] == 3  # uint8 I/O; int16x8's two calibrations
    monkeypatch.setattr(converters, "sharing", lambda key: contextlib.nullcontext())
    before = dict(shared_calibration.stats)
    assert each() == shared
    # the converter on its own: one calibration per recipe, and int16x8's second one
    assert shared_calibration.stats["calibrated"] - before["calibrated"] == 4
    assert shared_calibration.stats["shared"] == before["shared"]


def test_each_recipe_shows_one_line_with_its_phases_counts_and_eta(float_model, mnist, test_set, monkeypatch,
                                                                    tmp_path):
    """``run_recipes`` opens one progress line per recipe; the converter's calibration and the runtime's batches
    count on it; from an empty cache the model is exported once for every recipe (the first line's ``export``);
    a terminal sees the line rewritten in place and erased before the recipe's result."""
    import io

    from workbench.core import progress
    from workbench.core.recipe_table import run_recipes

    shown: list[tuple[str, bool]] = []
    images, labels = test_set
    monkeypatch.setattr(progress, "EVERY", 0.0)  # every count drawn: a small model calibrates in a blink
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))  # no export of the model yet
    with progress.showing(lambda text, final: shown.append((text, final))):
        runs = run_recipes(float_model, images[:64], labels[:64], representative=mnist.train_images[:30],
                           recipes=["float32", "int8-ptq", "legacy-uint8"],
                           parameters={"int8-ptq": {"calibration_size": 30}, "legacy-uint8": {"default_ranges": (0, 6)}})
    assert all(r.ok for r in runs)
    finals = [text for text, final in shown if final]
    assert len(finals) == 3 and finals[0].startswith("float32: ") and finals[1].startswith("int8-ptq")
    assert [f.count("export") for f in finals] == [1, 0, 0]  # one export, shared by the TF2 and the v1 paths
    assert "convert" in finals[1] and "calibrate" in finals[1] and "evaluate" in finals[1]
    counted = [text for text, final in shown if "int8-ptq" in text and "calibrate " in text and "/30 inputs" in text]
    assert counted and "ETA" in counted[-1]
    assert any("evaluate 64/64 inputs" in text for text, _ in shown)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    draw = progress.terminal(screen)
    draw("float32: convert · 3 s", False)
    draw("float32: evaluate 10/64 inputs · 4 s · ETA 1 s", False)
    draw("float32: convert 3.0 s", True)
    frames = screen.getvalue().split("\r")
    assert frames[1].startswith("float32: convert · 3 s") and frames[2].startswith("float32: evaluate 10/64")
    assert frames[-1] == "" and frames[-2].strip() == ""  # erased: the result line prints on a clean line


def test_calibrated_recipes_sent_ahead_to_the_worker_give_the_same_bytes(float_model, mnist):
    """``convert_worker.ahead`` converts the calibrated TF2 recipes in a spawned process from the model's export;
    ``convert`` takes those bytes (the same as converting here) and the worker's calibration joins this process."""
    from workbench.core import convert_worker, shared_calibration
    from workbench.core.data import InputSpec

    images = mnist.train_images[:20]
    asked = [recipes.recipe("int8-ptq", calibration_size=20, io_type="uint8"),
             recipes.recipe("int16x8", calibration_size=20)]
    here = [convert(float_model, r, representative=images).tflite for r in asked]
    shared_calibration.clear()
    with convert_worker.ahead(float_model, asked, InputSpec(), images, force=True) as futures:
        assert set(futures) == set(asked)
        there = [convert(float_model, r, representative=images) for r in asked]
        assert not futures  # both taken from the worker, none converted here
    assert [c.tflite for c in there] == here
    assert len(shared_calibration.kept()) == 1  # the worker's one calibration, now this process's too
    with convert_worker.ahead(float_model, asked, InputSpec(), images) as futures:
        assert futures == {}  # a LeNet does not pay for a worker's start
