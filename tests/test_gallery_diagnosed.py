"""The loss verdicts re-diagnose the troubleshooting gallery's broken models, with no knowledge of which case it is.

Each case builds the gallery's model and conversion parameters (the session fixtures' cached models, the gallery's
``GalleryConfig`` and helpers at small sizes), runs ``run_recipes`` with the reference ``float32`` and the broken
row, and calls ``explain_loss`` with only what a user has: the model, the rows, the images and the input range. The
verdicts must name exactly the cause the gallery (or notebooks 04/05) documents for that case: ``LOSING`` maps each
case to the engine's cause key, citing where the gallery documents it. Fixes are named, not run (``try_fixes=False``):
their measurement is ``test_verdicts``'s subject.

Cases the gallery shows that do not lose (``NOT_LOSING``) must get no verdict: a symptom there is no loss.

Cases whose failure is a refusal (``REFUSED``) are not rows that lose: the converter, LiteRT or its loader raises,
so there is no model to measure and ``explain_loss`` has nothing to judge (``losing`` is ``None`` for a row that did
not convert). For those the row's outcome (or the refused call's error) carries the catalogue's diagnosis
(``diagnose``'s entry key), which is what the gallery documents for them. Per-channel weights on the uint8 path
are one: the engine has a cause for them (a uint8 model with per-channel scales that a runtime accepted), but LiteRT
refuses to prepare the gallery's model, so the row fails and its outcome names the catalogue entry.
"""

from __future__ import annotations

import warnings

import pytest

from conftest import TRAIN_EPOCHS, TRAIN_SIZE

EVAL = 400  # test images each row is measured on
CALIBRATION = 200

# case -> (model fixture, recipe, its parameters, the engine's cause key). The documented cause, per case:
LOSING = {
    # gallery 1 (lacking min/max): "float -> uint8, no ranges" silently came out float; its diagnosis is the
    # catalogue's "came-out-float" (test_gallery.test_1_lacking_min_max).
    "1 float model down the uint8 path, no ranges": ("float_model", "legacy-uint8", {}, "came-out-float"),
    # gallery 1: "default_ranges=(-1,1)" loses to (0,6) because the ranges clip the ReLUs' activations
    # (test_gallery.test_1_lacking_min_max, "clipped ReLUs").
    "1 default_ranges (-1, 1)": ("float_model", "legacy-uint8", {"default_ranges": (-1.0, 1.0)},
                                 "default-ranges-clip"),
    # notebook 05: a guessed default range too narrow for the float LeNet's activations (its sweep's first point).
    "05 default_ranges (0, 0.5)": ("float_model", "legacy-uint8", {"default_ranges": (0.0, 0.5)},
                                   "default-ranges-clip"),
    # gallery 2 / notebook 04 (wrong mean/std): the QAT LeNet trained on [0,1] converted with the stats of
    # [-1,1] and of [0,255] (gallery.SPEC_RANGES); "mean = the byte that means 0.0; std = 255 / (hi - lo)".
    "2 trained [0,1], stats of [-1,1]": ("qat_uint8", "legacy-uint8", (-1.0, 1.0), "input-stats"),
    "2 trained [0,1], stats of [0,255]": ("qat_uint8", "legacy-uint8", (0.0, 255.0), "input-stats"),
    # int16x8 is no gallery case: README ("Why a row loses") documents int16 activations on LiteRT's reference
    # kernels, at least 2x slower than the float model; the row keeps its accuracy and loses on speed.
    "int16x8 on the float model": ("float_model", "int16x8", {}, "slow-kernels"),
}

# case -> (model fixture, recipe, parameters, what the gallery documents that is not a loss)
NOT_LOSING = {
    # notebook 04: a QAT model with a learned input range ignores the stats asked for, and keeps its accuracy.
    "04 learned input range, stats of [-1,1]": ("qat_uint8_learned", "legacy-uint8", (-1.0, 1.0), "stats_ignored"),
    # gallery 3: Conv->BN->ReLU QAT on the legacy path leaves its CONV_2Ds float (islands), accuracy kept.
    "3 BatchNorm QAT down the legacy uint8 path": ("bn_qat_uint8", "legacy-uint8", {}, "ops_left_float"),
    # gallery 8: dynamic range keeps float activations (hybrid kernels) and the float model's accuracy.
    "8 dynamic range": ("float_model", "dynamic-range", {}, None),
}

# case -> (model fixture, recipe, parameters, the catalogue key the gallery documents), refused when converted or
# prepared: the row's outcome names the catalogue entry.
REFUSED_ROWS = {
    "5 per-channel QAT weights on the uint8 path": ("qat_int8", "legacy-uint8", {}, "per-channel-on-uint8"),
    "4 instance norm on the uint8 path": ("instance_norm", "legacy-uint8", {"default_ranges": (-6.0, 6.0)},
                                          "no-quantized-kernel"),
    "10 4-bit QAT": ("qat_int8_4bit", "qat-int8", {}, "low-bit-qat"),
}


@pytest.fixture(scope="module")
def cfg():
    from workbench.troubleshoot.casework import GalleryConfig

    return GalleryConfig(train_size=TRAIN_SIZE, epochs=TRAIN_EPOCHS, eval_size=EVAL, calibration_size=CALIBRATION)


@pytest.fixture(scope="module")
def bn_qat_uint8(mnist, cfg):
    from workbench.core.train import QatConfig
    from workbench.troubleshoot.variants import trained_variant

    return trained_variant("lenet-bn", mnist, cfg.train(), QatConfig("uint8-legacy"))


@pytest.fixture(scope="module")
def instance_norm(mnist, cfg):
    from workbench.troubleshoot.variants import trained_variant

    return trained_variant("instance-norm", mnist, cfg.train())


@pytest.fixture(scope="module")
def qat_int8_4bit(mnist, cfg):
    from workbench.core.train import QatConfig, trained_lenet

    return trained_lenet(mnist, cfg.train(), QatConfig("int8", bits=4))


@pytest.fixture(scope="module")
def rows(mnist, cfg):
    """``rows(model, recipe, params)``: the ``float32`` and the ``recipe`` rows, the reference converted once per
    model. ``params`` given as a range ``(lo, hi)`` are the mean/std of that range (``stats_for_range``)."""
    from workbench.core.recipe_table import run_recipes
    from workbench.core.stats import stats_for_range

    references = {}
    images, labels = mnist.test_images[: cfg.eval_size], mnist.test_labels[: cfg.eval_size]

    def run(model, recipe, params):
        if isinstance(params, tuple):
            stats = stats_for_range(*params)
            params = {"mean": stats.mean + 0.0, "std": stats.std}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = run_recipes(model, images, labels, recipes=["float32", recipe], parameters={recipe: params},
                               representative=mnist.train_images[: cfg.calibration_size],
                               calibration_size=cfg.calibration_size, converted=references.get(id(model), ()))
        references.setdefault(id(model), runs[:1])
        return runs

    return run


def _verdicts(model, runs, mnist, cfg):
    from workbench.core.data import InputSpec
    from workbench.core.samples import Samples
    from workbench.core.verdicts import explain_loss

    samples = Samples.of(mnist.test_images[: cfg.eval_size], mnist.test_labels[: cfg.eval_size])
    return explain_loss(model, runs, samples, InputSpec(), try_fixes=False)


@pytest.mark.parametrize("case", list(LOSING))
def test_a_losing_case_is_diagnosed_with_its_documented_cause(case, request, rows, mnist, cfg):
    fixture, recipe, params, cause = LOSING[case]
    model = request.getfixturevalue(fixture)
    runs = rows(model, recipe, params)
    assert runs[0].ok and runs[1].ok, [r.outcome for r in runs]
    verdicts = _verdicts(model, runs, mnist, cfg)
    assert [v.cause for v in verdicts] == [cause], [v.text() for v in verdicts]
    (verdict,) = verdicts
    assert verdict.recipe == recipe and verdict.record["loss"]  # the measured loss it explains, in the record


@pytest.mark.parametrize("case", list(NOT_LOSING))
def test_a_case_that_keeps_its_figures_gets_no_verdict(case, request, rows, mnist, cfg):
    from workbench.core.verdicts import losing

    fixture, recipe, params, symptom = NOT_LOSING[case]
    model = request.getfixturevalue(fixture)
    runs = rows(model, recipe, params)
    assert runs[1].ok, runs[1].outcome
    if symptom is not None:
        assert getattr(runs[1].converted.outcome, symptom), runs[1].outcome  # the gallery's symptom is there ...
    assert losing(runs[1], runs[0], mnist.test_labels[: cfg.eval_size]) is None  # ... and no loss
    assert _verdicts(model, runs, mnist, cfg) == []


@pytest.mark.parametrize("case", list(REFUSED_ROWS))
def test_a_refused_row_carries_the_catalogues_diagnosis(case, request, rows, mnist, cfg):
    from workbench.core import diagnose

    fixture, recipe, params, key = REFUSED_ROWS[case]
    model = request.getfixturevalue(fixture)
    runs = rows(model, recipe, params)
    row = runs[1]
    assert not row.ok and row.converted is None
    named = [e.key for e in diagnose.CATALOG if row.outcome.startswith(f"failed: {e.title}")]
    assert named == [key], row.outcome
    assert not [v for v in _verdicts(model, runs, mnist, cfg) if v.recipe == recipe]  # nothing to measure


def test_refusals_before_any_row_carry_the_catalogues_diagnosis(mnist, cfg, float_model):
    """Cases refused where ``run_recipes`` makes no row of them: a dynamic input shape (``run_recipes`` fixes it
    to the images' first), a batch-None LSTM (gallery 9), an op version the runtime lacks (gallery 16). The
    gallery's own ``attempt`` gives the explained error."""
    from workbench.core import litert
    from workbench.core.train import TrainConfig
    from workbench.troubleshoot.casework import attempt, convert_case
    from workbench.troubleshoot.variants import trained_variant

    dynamic = trained_variant("any-size", mnist, cfg.train())
    lstm = trained_variant("lstm", mnist, TrainConfig(epochs=cfg.lstm_epochs, train_size=cfg.lstm_train_size))
    newer = litert.with_op_version(convert_case(float_model, "float32", mnist, cfg), "CONV_2D", 99)
    for action, key in ((lambda: convert_case(dynamic, "float32", mnist, cfg), "dynamic-shape"),
                        (lambda: convert_case(lstm, "float32", mnist, cfg), "lstm-dynamic-batch"),
                        (lambda: litert.read_model(newer), "op-version")):
        _, error = attempt(action)
        assert error is not None and error.key == key, error
