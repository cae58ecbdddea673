"""Why a row loses, measured on the digits LeNet: default ranges that clip its activations, wrong input stats, a
uint8 model that came out float, each with its fix converted and measured; a row that does not lose gets none."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from cli_support import DIGITS_CONFIG, digits

CASES = {  # legacy-uint8 parameters, measured on the digits LeNet's 359 test images (agreement with float32)
    "clipped": {"default_ranges": (0.0, 0.25)},  # 0.32: 60 % of the activation values lie outside
    "stats": {"default_ranges": (0.0, 6.0), "mean": 127.5, "std": 127.5},  # 0.84: stats for [-1, 1], trained on [0, 1]
    "float": {},  # came out float: no default ranges on a float model
}


@pytest.fixture(scope="module")
def case():
    from workbench.core.data import InputSpec
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples
    from workbench.core.train import TrainConfig, trained_lenet
    from workbench.core.verdicts import explain_loss

    data = digits()
    model = trained_lenet(data, TrainConfig(**DIGITS_CONFIG))
    images = data.test_images
    runs, rows = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, params in CASES.items():
            ran = run_recipes(model, images, recipes=["float32", "legacy-uint8"], converted=runs,
                              parameters={"legacy-uint8": params})
            runs = runs or ran[:1]
            rows[name] = ran[1]
        rows["fine"] = run_recipes(model, images, recipes=["float32", "dynamic-range"], converted=runs)[1]
    every = runs + list(rows.values())
    verdicts = explain_loss(model, every, Samples.of(images), InputSpec())
    return {"rows": rows, "runs": every, "verdicts": verdicts, "model": model, "images": images}


def _of(case, row, cause):
    found = [v for v in case["verdicts"] if v.recipe == "legacy-uint8" and v.cause == cause
             and v.record["before"] == pytest.approx(case["rows"][row].score)]
    assert len(found) == 1, [v.text() for v in case["verdicts"]]
    return found[0]


def test_losing_reads_the_thresholds(case):
    from workbench.core.verdicts import losing

    reference = case["runs"][0]
    assert losing(reference, reference) is None
    assert losing(case["rows"]["fine"], reference) is None
    assert "agreement" in losing(case["rows"]["clipped"], reference)
    assert losing(case["rows"]["float"], reference).startswith("came out float")


def test_default_ranges_that_clip_are_measured_and_a_range_from_the_activations_recovers(case):
    verdict = _of(case, "clipped", "default-ranges-clip")
    record = verdict.record
    assert record["share_outside"] > 0.5  # 60 % of the float activation values lie outside [0, 0.25]
    lo, hi = record["span"]
    assert lo < -5 and hi > 5  # the logits span about [-12.8, 12]
    assert record["worst_tensor"].startswith("lenet/probs")
    assert "clip the activations" in verdict.sentence and f"{100 * record['share_outside']:.1f} %" in verdict.sentence
    fix = verdict.fix
    assert fix.recipe == "legacy-uint8" and "percentile of the float activations" in fix.description
    assert fix.params["default_ranges"][0] < -5 and fix.params["default_ranges"][1] > 5
    assert fix.before < 0.5 and fix.after >= 0.98 and fix.after - fix.before > 0.5  # measured: 0.32 -> 0.99
    assert fix.sentence().startswith("fix tried: default_ranges (")
    json.dumps(verdict.summary())


def test_wrong_mean_std_is_measured_on_the_input_codes_and_the_right_stats_recover(case):
    verdict = _of(case, "stats", "input-stats")
    record = verdict.record
    assert record["kind"] == "pixels" and record["input_range"] == [0.0, 1.0]
    assert record["unused"] == pytest.approx(0.5)  # codes 0..127 stand for [-1, 0): training never saw them
    assert record["clipped"] > 0.5  # the black background (byte 0) is read as -1
    assert "50.0 % of the codes" in verdict.sentence
    fix = verdict.fix
    assert fix.params == {"mean": 0.0, "std": 255.0}
    assert fix.after >= 0.98 and fix.after > fix.before + 0.1  # measured: 0.84 -> 0.99


def test_a_row_that_came_out_float_says_which_tensors_and_gets_integer_activations(case):
    verdict = _of(case, "float", "came-out-float")
    assert len(verdict.record["float_tensors"]) == 10 and "lenet/conv1/Relu" in verdict.record["float_tensors"]
    assert "came out float" in verdict.sentence and "10 of 11" in verdict.sentence
    fix = verdict.fix
    assert fix.recipe == "legacy-uint8" and fix.after >= 0.98  # integer activations, close to the float model


def test_rows_that_do_not_lose_get_no_verdict(case):
    assert not [v for v in case["verdicts"] if v.recipe in ("float32", "dynamic-range")]
    assert json.loads(json.dumps([v.summary() for v in case["verdicts"]], allow_nan=False))  # JSON-ready records


def test_fixes_can_be_named_without_running(case):
    from workbench.core.samples import Samples
    from workbench.core.data import InputSpec
    from workbench.core.verdicts import explain_loss

    runs = case["runs"][:1] + [case["rows"]["clipped"]]
    (verdict,) = explain_loss(case["model"], runs, Samples.of(case["images"]), InputSpec(), try_fixes=False)
    assert verdict.fix.after is None and verdict.fix.sentence().startswith("fix named: default_ranges (")


def test_fix_sentence_and_value_codes():
    from workbench.core.stats import InputStats, value_codes
    from workbench.core.verdicts import Fix

    fix = Fix("default_ranges (-9.8, 11.2) from the 99.9th percentile of the float activations", "legacy-uint8",
              {"default_ranges": [-9.8, 11.2]}, "agreement", 0.13, 0.92)
    assert fix.sentence() == ("fix tried: default_ranges (-9.8, 11.2) from the 99.9th percentile of the float "
                              "activations -> agreement 0.920 (+0.79)")
    codes = value_codes(InputStats(0.0, 255.0), np.linspace(-1, 1, 1001))
    assert codes.clipped == pytest.approx(0.5, abs=0.01) and codes.unused == 0.0
    assert codes.data_range == (-1.0, 1.0) and codes.code_range == (0.0, 1.0)


def test_a_calibration_that_saturates_and_slow_int16_kernels_are_measured(case):
    """int8-ptq and int16x8 calibrated on 4 dark images: the inputs saturate their input quantization."""
    from workbench.core.data import InputSpec
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples
    from workbench.core.verdicts import explain_loss

    images = case["images"]
    dark = (digits().train_images[:4] // 8).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = run_recipes(case["model"], images, representative=dark, calibration_size=4,
                           recipes=["float32", "int8-ptq", "int16x8"], converted=case["runs"][:1])
    found = {(v.recipe, v.cause): v for v in explain_loss(case["model"], runs, Samples.of(images), InputSpec())}
    saturated = found[("int8-ptq", "saturation")]
    assert saturated.record["share"] > 0.05  # measured: 9 % of the input's int8 codes at -128 or 127
    assert saturated.fix.recipe == "int8-ptq" and saturated.fix.after >= 0.98  # calibrated on these inputs
    slow = found[("int16x8", "slow-kernels")]
    assert slow.record["reference_images_per_s"] > 2 * slow.record["images_per_s"]
    assert slow.fix.metric == "images_per_s" and slow.fix.after > slow.fix.before


def test_float_data_with_stats_that_clip_are_measured_on_the_values(case):
    from workbench.core.data import InputSpec
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples
    from workbench.core.verdicts import explain_loss

    values = InputSpec().normalize(case["images"])  # float inputs in [0, 1], fed as they are
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = run_recipes(case["model"], values, spec=InputSpec(0.0, 1.0), recipes=["float32", "legacy-uint8"],
                           parameters={"legacy-uint8": {"default_ranges": (-12.0, 10.0), "mean": 0.0, "std": 1020.0}})
    (verdict,) = explain_loss(case["model"], runs, Samples.of(values), InputSpec(0.0, 1.0))
    assert verdict.cause == "input-stats" and verdict.record["kind"] == "values"
    assert verdict.record["code_range"] == pytest.approx([0.0, 0.25])  # std 1020: codes stand for [0, 0.25]
    assert verdict.record["clipped"] > 0.3  # every value over 0.25 clips at code 255
    assert verdict.fix.params == {"mean": 0.0, "std": 255.0} and verdict.fix.after >= 0.98


def test_the_qat_recipe_is_named_when_nothing_post_training_recovers(case, monkeypatch):
    from workbench.core import verdicts
    from workbench.core.data import InputSpec
    from workbench.core.samples import Samples

    monkeypatch.setitem(verdicts.LOSS_THRESHOLDS, "agreement", 1.01)  # no model reaches it
    runs = case["runs"][:1] + [case["rows"]["clipped"]]
    (verdict,) = verdicts.explain_loss(case["model"], runs, Samples.of(case["images"]), InputSpec())
    assert verdict.fix.recipe == "qat-int8" and verdict.fix.after is None
    assert "train with quantization-aware training" in verdict.fix.sentence()
    assert [f["recipe"] for f in verdict.record["fixes_tried"]] == ["legacy-uint8", "int8-ptq"]


def test_a_net_fed_raw_pixels_loses_most_of_its_agreement_at_0_6_and_the_measured_range_recovers_it():
    """The issue's case: a float model whose activations run far beyond 6, of both signs (a small net trained on raw
    0..255 pixels, no normalisation, linear convolutions first) loses most of its agreement on the legacy uint8 path
    with (0, 6); the engine says the default ranges clip, with the share and the real span, and the range measured on
    the float activations recovers it."""
    from workbench.core.data import InputSpec
    from workbench.core.keras_compat import keras, tf
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples
    from workbench.core.verdicts import explain_loss

    data = digits()
    tf.random.set_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(16, 3), keras.layers.Conv2D(16, 3),  # linear: large, of both signs
                              keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train_images.astype(np.float32), data.train_labels, epochs=5, batch_size=64, verbose=0)
    spec = InputSpec(0.0, 255.0)  # the pixels as they are: stats (0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = run_recipes(model, data.test_images, spec=spec, recipes=["float32", "legacy-uint8"],
                           parameters={"legacy-uint8": {"default_ranges": (0.0, 6.0)}})
        verdicts = explain_loss(model, runs, Samples.of(data.test_images), spec)
    assert runs[1].fidelity.headline["agreement"].value < 0.4  # most of the agreement lost (measured 0.11-0.28)
    (clip,) = [v for v in verdicts if v.cause == "default-ranges-clip"]
    record = clip.record
    assert record["share_outside"] > 0.2 and record["span"][1] > 60, record  # the activations span far beyond 6
    assert f"{100 * record['share_outside']:.1f} %" in clip.sentence and "outside [0, 6]" in clip.sentence
    assert clip.fix.after > 0.9 and clip.fix.after > clip.fix.before + 0.4, clip.fix


def test_a_learned_input_range_that_misreads_the_pixels_is_measured_and_the_float_input_recovers(case):
    """The digits LeNet wrapped for QAT (uint8 scheme, input quantizer kept) with its learned input range set to
    [-1, 1] while its pixels mean [0, 1]: the legacy uint8 conversion reads the input bytes with that range and
    ignores the stats asked for, so the black background (byte 0) reads as -1. The engine names the learned range
    with the input codes it measures, and the QAT recipe with float input (the model quantizes [0, 1] itself)
    recovers the row."""
    from workbench.core.data import InputSpec
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples
    from workbench.core.train import QatConfig, quantize_model
    from workbench.core.verdicts import explain_loss

    model = quantize_model(case["model"], QatConfig("uint8-legacy", learned_input_range=True))
    quantizer = next(layer for layer in model.layers if type(layer).__name__ == "QuantizeLayer")
    for weight in quantizer.weights:  # the input quantizer's range: [-1, 1]
        if weight.name.endswith(("_min:0", "_max:0")):
            weight.assign(-1.0 if weight.name.endswith("_min:0") else 1.0)
    images = case["images"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = run_recipes(model, images, recipes=["float32", "legacy-uint8"])
        verdicts = explain_loss(model, runs, Samples.of(images), InputSpec())
    assert runs[1].converted.outcome.stats_ignored
    (verdict,) = [v for v in verdicts if v.recipe == "legacy-uint8"]
    record = verdict.record
    assert verdict.cause == "stats-ignored" and record["requested"] == [0.0, 255.0]
    assert record["stats"] == pytest.approx([127.5, 127.5], abs=1) and record["code_range"] == pytest.approx(
        [-1.0, 1.0], abs=0.01)
    assert record["unused"] == pytest.approx(0.5) and record["clipped"] > 0.5  # byte 0 (most pixels) reads as -1
    assert "learned its input range in QAT" in verdict.sentence and "outside [0, 1]" in verdict.sentence
    fix = verdict.fix
    assert fix.recipe == "qat-int8" and fix.params == {"io_type": "float32"}
    assert fix.before < 0.98 <= fix.after, fix


def test_a_fix_that_is_one_of_the_rows_takes_that_rows_figures(case):
    """With the rows calibrated on these samples, a calibrated fix whose recipe is a row's (but for a calibration size
    beyond the samples' count) is that row, not converted again; calibrated elsewhere, it converts."""
    import dataclasses

    from workbench.core import recipes
    from workbench.core.causes import Context
    from workbench.core.data import InputSpec
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import Samples

    images = case["images"][:60]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = run_recipes(case["model"], images, recipes=["float32", "int8-ptq"], representative=images)
    row = runs[1]
    fix = dataclasses.replace(row.converted.recipe, calibration_size=len(images))  # the row had 500 asked, 60 given
    assert fix != row.converted.recipe and recipes.get(fix.name).calibrated
    here = Context(case["model"], Samples.of(images), InputSpec(), runs[0], True, 99.9, 200, runs, True)
    assert here.reference.values is runs[0].outputs  # the reference's outputs, not run again
    assert here.same_row(fix) is row and here.measured(fix)[:2] == (row.converted, row.fidelity)
    elsewhere = Context(case["model"], Samples.of(images), InputSpec(), runs[0], True, 99.9, 200, runs, False)
    assert elsewhere.same_row(fix) is None
    converted, fid, _, error = elsewhere.measured(fix)
    assert not error and converted is not row.converted and converted.tflite == row.converted.tflite
