"""Screening sweeps: the exact sweep's best point, intervals that hold the exact accuracies, fewer images evaluated."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from workbench import InputSpec, InputStats, plots
from workbench import sweep as sw
from workbench.explore import screening

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def standard(uint8_folder, test_set):
    """The standard 7x7 stats grid, exact and screened, on the same images (the point cache makes reruns cheap)."""
    grid = sw.stats_grid(InputSpec(), 7)
    exact = sw.sweep(uint8_folder, grid, *test_set, executor=None, progress=False)
    screened = screening.sweep(uint8_folder, grid, *test_set, executor=None, progress=False)
    return grid, exact, screened


def test_screening_finds_the_exact_best_point(standard, test_set):
    grid, exact, screened = standard
    best, found = sw.best_point(exact), sw.best_point(screened)
    assert (found["mean"], found["std"]) == (best["mean"], best["std"])
    assert found["accuracy"] == best["accuracy"] and found["images_evaluated"] == len(test_set[0])
    assert list(screened[["mean", "std"]].itertuples(index=False, name=None)) == [(p["mean"], p["std"]) for p in grid]
    assert list(screened.columns[: len(exact.columns)]) == list(exact.columns)
    # it did screen: most points never saw the whole set, the hopeless (0, 1) only the first round
    rounds = screening.default_stages(len(test_set[0]))
    assert screened["screened"].sum() >= len(grid) // 2
    assert screened.loc[(screened["mean"] == 0) & (screened["std"] == 1), "images_evaluated"].item() == rounds[0]
    assert set(screened["images_evaluated"]) <= {*rounds, len(test_set[0])}


def test_every_interval_contains_the_exact_accuracy(standard):
    _, exact, screened = standard
    full = ~screened["screened"]
    # rows evaluated on every image are the exact sweep's rows
    assert (screened.loc[full, "accuracy"] == exact.loc[full, "accuracy"]).all()
    for column in ("delta_pts", "p_value", "verdict", "reference_point"):
        assert (screened.loc[full, column].fillna(-1) == exact.loc[full, column].fillna(-1)).all(), column
    # all intervals together hold with probability >= 95 % over the random image order; the order is fixed
    # (seed 0), so for a given model this either holds or not, every run
    within = (screened["ci_low"] <= exact["accuracy"]) & (exact["accuracy"] <= screened["ci_high"])
    assert within.all(), screened.loc[~within, ["mean", "std", "accuracy", "ci_low", "ci_high"]].assign(
        exact=exact["accuracy"][~within])
    # a screened row is clearly worse than the best: its interval tops out below the best's full-set accuracy
    best = exact["accuracy"].max()
    assert (screened.loc[screened["screened"], "ci_high"] < best).all()
    info = screened.attrs["screening"]
    assert info["confidence"] == pytest.approx(1 - 0.05 / (len(screened) * 2))
    assert "screened out on" in screening.describe(screened)


def test_screened_rows_are_tested_against_the_best_point_on_their_own_images(standard, uint8_folder, test_set):
    _, exact, screened = standard
    best = int(exact["accuracy"].idxmax())
    assert (screened["reference_point"] == best).all()
    assert screened.loc[best, "verdict"] == "reference"
    assert screened[(screened["mean"] == 0) & (screened["std"] == 1)].iloc[0]["verdict"] == "significantly worse"
    # the same comparison made directly on the images a row was screened on (the first ones of the fixed order),
    # for the last row screened in each round: its rounds' pieces add up to it
    order = np.random.default_rng(0).permutation(len(test_set[0]))
    top = {"mean": float(screened.loc[best, "mean"]), "std": float(screened.loc[best, "std"])}
    rows = screened[screened["screened"]].groupby("images_evaluated").tail(1)
    assert len(rows) == 2  # one per screening round
    for _, row in rows.iterrows():
        pick = order[: int(row["images_evaluated"])]
        point = {"mean": float(row["mean"]), "std": float(row["std"])}
        direct = sw.sweep(uint8_folder, [top, point], test_set[0][pick], test_set[1][pick], executor=None,
                          progress=False, against=0)
        assert direct.loc[1, "accuracy"] == row["accuracy"]
        assert (direct.loc[1, "delta_pts"], direct.loc[1, "p_value"]) == (row["delta_pts"], row["p_value"])


def test_heatmap_hatches_the_screened_cells(standard):
    _, _, screened = standard
    ax = plots.stats_heatmap(screened, 0.97, correct=InputStats(0, 255))
    hatched = [p for p in ax.patches if p.get_label() == "_screened"]
    assert len(hatched) == screened["screened"].sum()
    assert any("screened" in text.get_text() for text in ax.get_legend().get_texts())


@pytest.mark.parametrize("correct,total", [(0, 1), (1, 1), (0, 156), (3, 156), (150, 156), (156, 156), (9579, 10000)])
@pytest.mark.parametrize("confidence", [0.95, 0.9997])
def test_clopper_pearson_is_scipys_exact_interval(correct, total, confidence):
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="exact")
    assert screening.clopper_pearson(correct, total, confidence) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_clopper_pearson_known_values():
    low, high = screening.clopper_pearson(100, 100, 0.95)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 100))
    low, high = screening.clopper_pearson(0, 50, 0.99)
    assert low == 0.0 and high == pytest.approx(1 - 0.005 ** (1 / 50))


@pytest.mark.parametrize("kwargs, message", [
    ({"stages": [400, 100]}, r"stages=\[400, 100\] is not increasing"),
    ({"stages": [2000]}, r"stages=\[2000\].*below the evaluation set's 2000"),
    ({"stages": 5}, "stages=5 is not a list"),
    ({"alpha": 0}, "alpha=0 is out of range"),
    ({"alpha": 1.0}, "alpha=1.0 is out of range"),
    ({"seed": -1}, "seed=-1 is out of range"),
    ({"executor": "threads"}, "executor='threads'"),
])
def test_bad_arguments_are_refused_before_any_work(uint8_folder, test_set, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        screening.sweep(uint8_folder, {"mean": [0.0]}, *test_set, cache=tmp_path, progress=False, **kwargs)
    assert not (tmp_path / "sweeps").exists()


def test_a_refused_conversion_is_a_row_with_an_error(qat_int8, test_set):
    # the default cache keeps the model's export between runs; refused points are never cached
    frame = screening.sweep(qat_int8, {"mean": [0.0, 127.5]}, *test_set, executor=None, progress=False)
    assert frame["accuracy"].isna().all() and (frame["images_evaluated"] == 0).all()
    assert not frame["screened"].any() and math.isnan(frame.loc[0, "ci_low"])
    assert "refused" in screening.describe(frame)
