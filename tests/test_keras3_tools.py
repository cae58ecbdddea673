"""Keras-level tools on Keras 3 models (``import keras``): per-layer error, activation ranges, the QAT refusal,
the Rescaling/Normalization input-range rule, tutorial layers (augmentation, BatchNormalization, Dropout).

Tiny models built in memory (12x12x3 inputs, a few hundred weights), untrained: the tools read what the
model computes, not how well it classifies.
"""

from __future__ import annotations

import numpy as np
import pytest

from workbench import convert
from workbench.core import litert
from workbench.core.data import InputSpec
from workbench.core.keras_compat import is_keras3, keras, keras3
from workbench.core.model_facts import input_range_note, input_spec_for, qat_refusal, reads_raw_pixels
from workbench.troubleshoot.layer_error import activation_ranges, layer_errors

SHAPE = (12, 12, 3)
RAW = InputSpec(0.0, 255.0)


def plain(k, name: str = "plain"):
    """Conv -> pool -> flatten -> dense, the layers named; ``k`` is Keras 3 or tf_keras."""
    k.utils.set_random_seed(0)
    L = k.layers
    return k.Sequential([k.Input(SHAPE), L.Conv2D(4, 3, activation="relu", name="conv"),
                         L.MaxPooling2D(name="pool"), L.Flatten(name="flat"),
                         L.Dense(3, activation="softmax", name="probs")], name=name)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (64, *SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def k3():
    return keras3()


@pytest.fixture(scope="module")
def plain3(k3):
    return plain(k3)


@pytest.fixture(scope="module")
def tutorial(k3):
    """What a Keras 3 tutorial builds: augmentation, Rescaling, BatchNormalization, Dropout."""
    k3.utils.set_random_seed(1)
    L = k3.layers
    return k3.Sequential([k3.Input(SHAPE), L.RandomFlip("horizontal", name="flip"),
                          L.RandomRotation(0.1, name="rotate"), L.Rescaling(1 / 255.0, name="rescale"),
                          L.Conv2D(4, 3, name="conv"), L.BatchNormalization(name="bn"), L.ReLU(name="relu"),
                          L.Dropout(0.3, name="drop"), L.GlobalAveragePooling2D(name="gap"),
                          L.Dense(3, activation="softmax", name="probs")])


@pytest.fixture(scope="module")
def tutorial_int8(tutorial, images):
    return convert(tutorial, "int8-ptq", spec=RAW, representative=images)


def test_per_layer_error_on_a_keras3_model_names_its_layers(plain3, images):
    assert is_keras3(plain3)
    quantized = convert(plain3, "int8-ptq", representative=images)
    report = layer_errors(quantized, plain3, images)
    names = [e.layer for e in report.layers]
    assert {"conv", "pool", "probs"} <= set(names) and len(names) == len(set(names))
    assert set(names) <= {layer.name for layer in plain3.layers}
    assert names == [n for n in (layer.name for layer in plain3.layers) if n in names]  # execution order
    assert report.get("conv").op == "CONV_2D" and report.get("probs").op == "SOFTMAX"
    for e in report.layers:
        assert e.dtype == "int8" and np.isfinite([e.rmse, e.snr_db, e.max_abs]).all()
        assert e.rmse_in_steps < 3  # int8 PTQ on its own calibration images: a step or so


def direct_ranges(model, x):
    """Each layer applied in turn (inference mode), its output's min, max and 0.1/99.9 percentiles."""
    out, rows = x, {}
    for layer in model.layers:
        out = layer(out, training=False)
        v = np.asarray(out, dtype=np.float64).reshape(-1)
        rows[layer.name] = (v.min(), v.max(), *np.percentile(v, (0.1, 99.9)))
    return rows


@pytest.mark.parametrize("which", ["keras3", "tf_keras"])
def test_activation_ranges_agree_with_a_direct_computation(which, k3, images):
    model = plain(k3 if which == "keras3" else keras)
    assert is_keras3(model) == (which == "keras3")
    frame = activation_ranges(model, images)
    assert list(frame.index) == ["conv", "pool", "flat", "probs"]
    assert list(frame.columns) == ["type", "min", "max", "p0.1", "p99.9", "count"]
    direct = direct_ranges(model, InputSpec().normalize(images))
    for name, expected in direct.items():
        got = frame.loc[name, ["min", "max", "p0.1", "p99.9"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert frame.loc["conv", "min"] == 0.0 and frame.loc["conv", "count"] == 64 * 10 * 10 * 4
    assert frame.loc["probs", "max"] <= 1.0


def test_qat_on_a_keras3_model_is_refused_in_one_sentence(plain3):
    from workbench.core.train import QatConfig, quantize_model, train_qat

    for call in (lambda: quantize_model(plain3), lambda: train_qat(plain3, None, QatConfig())):
        with pytest.raises(ValueError, match=r"QAT \(tfmot\) wraps tf_keras models only") as info:
            call()
        text = str(info.value)
        assert "Keras 3" in text and "import tf_keras as keras" in text and "int8-ptq" in text
        assert "\n" not in text and text.count(". ") == 0
    assert qat_refusal(plain(keras)) is None


def test_report_says_why_qat_is_not_offered_for_a_keras3_model(plain3):
    from workbench.cli.report import choose
    from workbench.core import recipes as registry

    skipped = choose(registry.get("qat-int8"), False, RAW.stats, 100, (0.0, 6.0), "test images",
                     qat_refusal(plain3))
    assert skipped.params is None and skipped.note.startswith("skipped: needs a model trained with")
    assert "wraps tf_keras models only" in skipped.note
    assert "tf_keras" not in choose(registry.get("qat-int8"), False, RAW.stats, 100, (0.0, 6.0), "x").note


def test_a_model_that_starts_with_rescaling_or_normalization_reads_0_to_255(k3, tutorial, plain3):
    L = k3.layers
    assert reads_raw_pixels(tutorial)  # augmentation in front of the Rescaling does nothing at inference
    assert "Rescaling ('rescale')" in input_range_note(tutorial) and "0..255" in input_range_note(tutorial)
    assert not reads_raw_pixels(plain3) and input_range_note(plain3) is None
    centred = k3.Sequential([k3.Input(SHAPE), L.Rescaling(1 / 127.5, offset=-1), L.Flatten(), L.Dense(2)])
    assert reads_raw_pixels(centred)
    widened = k3.Sequential([k3.Input(SHAPE), L.Rescaling(2.0, offset=-1), L.Flatten(), L.Dense(2)])
    assert not reads_raw_pixels(widened)  # maps 0..1 onto -1..1: not raw pixels
    inp = k3.Input(SHAPE)
    norm = L.Normalization(mean=[120.0, 115.0, 100.0], variance=[3600.0] * 3)
    assert reads_raw_pixels(k3.Model(inp, L.Dense(2)(L.Flatten()(norm(inp)))))  # functional, adapted on pixels
    legacy = keras.Sequential([keras.Input(SHAPE), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                               keras.layers.Dense(2)])
    assert reads_raw_pixels(legacy)  # the rule is the same for tf_keras models
    assert input_spec_for(tutorial) == (RAW, input_range_note(tutorial) + " (used since no input range was given)")
    assert input_spec_for(tutorial, InputSpec(0.0, 1.0)) == (InputSpec(0.0, 1.0), None)
    assert input_spec_for(plain3) == (InputSpec(), None)


def test_report_input_range_for_a_rescaling_model(tutorial, plain3):
    from workbench.cli.report import model_input_spec

    spec, note = model_input_spec(tutorial, None)
    assert spec == RAW and "reads raw pixels" in note
    spec, note = model_input_spec(tutorial, InputSpec(0.0, 1.0))
    assert spec == InputSpec(0.0, 1.0) and "--input-range 0 1 given, used as given" in note
    assert model_input_spec(tutorial, RAW) == (RAW, None)
    assert model_input_spec(plain3, None) == (InputSpec(), None)


def test_tutorial_layers_convert_and_run_as_keras_infers(tutorial, tutorial_int8, images):
    floats = convert(tutorial, "float32", spec=RAW)
    expected = tutorial.predict(RAW.normalize(images), verbose=0)  # augmentation and dropout inactive
    np.testing.assert_allclose(litert.run(floats, images, RAW).outputs, expected, atol=1e-5)
    assert not tutorial_int8.warnings
    got = litert.run(tutorial_int8, images, RAW).outputs
    assert np.abs(got - expected).max() < 0.05


def test_tutorial_model_per_layer_table(tutorial, tutorial_int8, images):
    report = layer_errors(tutorial_int8, tutorial, images, RAW)
    table = report.table()
    assert {"relu", "gap", "probs"} <= set(table.index)  # conv + BN + ReLU fused: the ReLU's output
    assert set(table.index) <= {layer.name for layer in tutorial.layers}
    assert np.isfinite(table["rmse"]).all() and (table["rmse_in_steps"] < 3).all()
    ranges = activation_ranges(tutorial, images, RAW)
    assert ranges.loc["rescale", "min"] >= 0.0 and ranges.loc["rescale", "max"] <= 1.0
    assert (ranges.loc["flip", ["min", "max"]] == ranges.loc["rescale", ["min", "max"]] * 255).all()


def test_run_recipes_reads_0_to_255_and_says_why_qat_is_not_run(tutorial, images):
    from workbench.core.recipe_table import recipe_table, run_recipes

    labels = np.arange(len(images)) % 3
    runs = run_recipes(tutorial, images, labels, representative=images, calibration_size=32,
                       recipes=["float32", "int8-ptq", "qat-int8"])
    assert [r.ok for r in runs] == [True, True, False]
    assert runs[0].outcome.startswith("ok; the model starts with Rescaling") and runs[1].outcome == "ok"
    assert runs[2].outcome.startswith("not run: needs a QAT model") and "wraps tf_keras models only" in runs[2].outcome
    expected = tutorial.predict(RAW.normalize(images), verbose=0).argmax(axis=1)
    assert (runs[0].result.predictions == expected).all()  # fed 0..255, as the model reads
    assert len(recipe_table(runs)) == 3


def test_debugger_suggestions_name_keras3_layers(plain3, images):
    from workbench.troubleshoot.layer_error import debugger_statistics, suggest_float_layers

    statistics = debugger_statistics(plain3, images[:16])
    assert set(suggest_float_layers(statistics, plain3, 2)) == {"conv", "probs"}  # the layers with weights


def test_report_and_evaluate_feed_a_rescaling_model_0_to_255(tmp_path, images, capsys):
    from workbench.cli.main import main

    k = keras
    k.utils.set_random_seed(2)
    model = k.Sequential([k.Input(SHAPE), k.layers.Rescaling(1 / 255.0, name="rescale"),
                          k.layers.Conv2D(4, 3, activation="relu"), k.layers.GlobalAveragePooling2D(),
                          k.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "scaled.keras")
    labels = model.predict(images.astype(np.float32), verbose=0).argmax(axis=1)  # what it says on raw pixels
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    assert main(["report", str(tmp_path / "scaled.keras"), "--data", str(tmp_path / "data.npz"), "--recipes",
                 "float32", "qat-int8", "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "input range [0, 255]" in said and "note: the model starts with Rescaling ('rescale')" in said
    assert "float32: 100.00 %" in said  # fed raw pixels, as the model reads them
    assert "wraps tf_keras" not in said  # a tf_keras model: QAT is offered, only this one is not a QAT model
    assert main(["evaluate", str(tmp_path / "scaled.keras"), "--data", str(tmp_path / "data.npz")]) == 0
    said = capsys.readouterr().out
    assert "reads raw pixels" in said and "accuracy: 1.0000" in said
