"""Answers that stop when they are sure (``core.early_stop``): a row clearly equal to the reference and one clearly
worse stop after part of the inputs and say so, their figures are those of the inputs they used paired with the
reference's same inputs, and without a precision every input is used as before."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from cli_support import DIGITS_CONFIG, all_images, digits

RECIPES = ["float32", "float16", "legacy-uint8"]
BAD_RANGES = {"legacy-uint8": {"mean": 0.0, "std": 255.0, "default_ranges": (0.0, 0.5)}}  # clips most activations


@pytest.fixture(scope="module")
def case():
    from workbench.core.recipe_table import run_recipes
    from workbench.core.train import TrainConfig, trained_lenet

    data = digits()
    model = trained_lenet(data, TrainConfig(**DIGITS_CONFIG))
    images, labels = all_images(data)
    early = run_recipes(model, images, labels, recipes=RECIPES, parameters=BAD_RANGES, precision=2)
    full = run_recipes(model, images, labels, recipes=RECIPES, parameters=BAD_RANGES, converted=early)
    return {"model": model, "images": images, "labels": labels, "early": {r.name: r for r in early},
            "full": {r.name: r for r in full}}


def test_a_row_clearly_equal_and_one_clearly_worse_stop_early_and_say_so(case):
    from workbench.core.recipe_table import recipe_table

    count = len(case["labels"])
    runs = case["early"]
    assert runs["float32"].early is None and runs["float32"].images_used == count  # the reference: every input
    for name in ("float16", "legacy-uint8"):
        assert runs[name].early is not None and runs[name].images_used < count / 2, runs[name].outcome
        assert runs[name].outcome.startswith(f"stopped early at {runs[name].images_used} of {count}: ")
    assert "narrower than ±2" in runs["float16"].outcome  # equal within the precision
    assert "excludes 0" in runs["legacy-uint8"].outcome and runs["legacy-uint8"].result.accuracy < 0.8  # worse
    table = recipe_table(list(runs.values()))
    assert table["images_used"].tolist() == [r.images_used for r in runs.values()]


def test_without_a_precision_every_input_is_used(case):
    count = len(case["labels"])
    for run in case["full"].values():
        assert run.early is None and run.images_used == count and "stopped" not in run.outcome


def test_a_stopped_row_has_the_figures_of_its_own_inputs_paired_with_the_reference(case):
    from workbench.core import fidelity, measure
    from workbench.core.compare import paired
    from workbench.core.recipe_table import data_spec, recipe_table
    from workbench.core.samples import Samples

    runs = case["early"]
    table = recipe_table(list(runs.values())).set_index("recipe")
    spec, _ = data_spec(case["model"], Samples.of(case["images"]))
    reference = runs["float32"].converted
    for name in ("float16", "legacy-uint8"):
        run = runs[name]
        rows = run.early.rows
        assert not np.array_equal(np.sort(rows), np.arange(len(rows)))  # a random subset, not the first inputs
        images, labels = case["images"][rows], case["labels"][rows]
        ref_out, out = (measure.outputs_of(m, images, spec) for m in (reference, run.converted))
        ref_classes, classes = (o.values[0].argmax(axis=1) for o in (ref_out, out))
        assert run.result.accuracy == np.mean(classes == labels)
        assert run.early.reference.accuracy == np.mean(ref_classes == labels)  # the reference on the same inputs
        test = paired(ref_classes, classes, labels)
        assert table.loc[run.label, "delta_pts"] == round(100 * test.difference, 2)
        agree = fidelity.agreement(ref_out.values[0], out.values[0])
        assert run.fidelity.headline["agreement"] == agree and run.fidelity.count == len(rows)


def test_without_labels_the_agreement_with_the_float_model_decides(case):
    from workbench.core.recipe_table import run_recipes

    runs = {r.name: r for r in run_recipes(case["model"], case["images"], recipes=RECIPES, parameters=BAD_RANGES,
                                           converted=list(case["early"].values()), precision=2)}
    assert runs["float32"].early is None and runs["float32"].images_used == len(case["images"])
    worse, same = runs["legacy-uint8"], runs["float16"]
    assert worse.images_used < len(case["images"]) / 2 and "below 1" in worse.outcome, worse.outcome
    assert same.images_used < len(case["images"]) / 2 and "narrower than ±2" in same.outcome, same.outcome
    for run in (worse, same):  # the same inputs as with labels: one order for every call, every row
        assert np.array_equal(run.early.rows, case["early"]["float16"].early.rows[:run.images_used])
        assert run.fidelity.count == run.images_used and run.result is None


def test_the_report_takes_precision_and_says_how_many_inputs_each_row_used(case, tmp_path, capsys, monkeypatch):
    from workbench.cli import report
    from workbench.cli.main import main
    from workbench.core.compare import paired

    asked = {}

    def measured(*args, precision=None, **kwargs):  # the runs above (run_recipes is tested above): no conversions
        asked["precision"] = precision
        return [case["early"][name] for name in ("float32", "float16")]

    monkeypatch.setattr(report, "run_recipes", measured)
    case["model"].save(tmp_path / "lenet.h5")
    np.savez(tmp_path / "digits.npz", images=case["images"], labels=case["labels"])
    code = main(["report", str(tmp_path / "lenet.h5"), "--data", str(tmp_path / "digits.npz"), "--recipes", "float32",
                 "float16", "--precision", "2", "--no-fix", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert code == 0 and asked["precision"] == 2.0, printed.err[-2000:]
    rows = {r["recipe"]: r for r in csv.DictReader((tmp_path / "out" / "report.csv").open())}
    assert int(rows["float32"]["images_used"]) == len(case["labels"])
    used = case["early"]["float16"].early
    assert int(rows["float16"]["images_used"]) == len(used.rows) and "stopped early at" in rows["float16"]["outcome"]
    test = paired(used.reference, case["early"]["float16"].result, used.take(case["labels"]))
    assert float(rows["float16"]["p_value"]) == pytest.approx(test.p_value)
    header = next(line for line in printed.out.splitlines() if "recipe" in line and "images/s" in line)
    assert " images " in f"{header} "  # the table says how many inputs each row used


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_bad_precision_is_refused_before_any_work(value, tmp_path, capsys):
    from workbench.cli.main import main
    from workbench.core.recipe_table import run_recipes

    code = main(["report", str(tmp_path / "missing.keras"), "--data", str(tmp_path / "missing.npz"),
                 "--precision", value])
    err = capsys.readouterr().err
    assert code == 2 and f"--precision={float(value)!r}" in err and "allowed: a finite number > 0" in err, err
    with pytest.raises(ValueError, match="precision=.*allowed: a finite number > 0"):
        run_recipes("missing.keras", np.zeros((4, 8, 8, 1), np.uint8), precision=float(value))


def test_a_model_with_two_outputs_named_otherwise_on_the_legacy_path_stops_on_its_main_output():
    """The v1 converter names and orders a two-output model's outputs otherwise: each look pairs them with the
    reference's on the same inputs (their shapes match only there)."""
    import tf_keras as keras

    from workbench.core.recipe_table import run_recipes

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(5, activation="softmax", name="a")(x),
                                 keras.layers.Dense(3, name="b")(x)])
    images = np.random.default_rng(0).integers(0, 256, (120, 8, 8, 1), dtype=np.uint8)
    runs = run_recipes(model, images, recipes=["float32", "legacy-uint8"], precision=5,
                       parameters={"legacy-uint8": {"default_ranges": (0.0, 6.0)}})
    assert all(r.ok for r in runs), [r.outcome for r in runs]
    assert runs[1].early is not None and runs[1].images_used < len(images)
