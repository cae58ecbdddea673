"""Sweeps, screening and the explorers without labels: every point measured against the float model."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from workbench import convert, plots, widgets
from workbench import sweep as sw
from workbench.explore import screening
from workbench.explore.float_reference import AGREEMENT_LABEL

matplotlib.use("Agg")
POINTS = [{"mean": 0.0, "std": 255.0}, {"mean": 0.0, "std": 1.0}, {"mean": 127.5, "std": 127.5}]  # right, bad, off
SIZE = 500


@pytest.fixture(scope="module")
def small(test_set):
    images, labels = test_set
    return images[:SIZE], labels[:SIZE]


def test_a_sweep_without_labels_measures_agreement_and_ranks_as_with_labels(uint8_folder, small, tmp_path):
    images, labels = small
    same = sw.sweep(uint8_folder, [{}], images, recipe="float32", executor=None, cache=tmp_path, progress=False)
    assert same.loc[0, "agreement"] == 1.0 and same.loc[0, "snr_db"] == math.inf
    assert same.loc[0, "agreement_low"] < 1.0 == same.loc[0, "agreement_high"]

    free = sw.sweep(uint8_folder, POINTS, images, None, executor=None, cache=tmp_path, progress=False)
    assert free["accuracy"].isna().all() and free.attrs["metric"] == "agreement"
    cols = list(free.columns)
    assert cols[cols.index("agreement"):cols.index("agreement") + 4] == ["agreement", "agreement_low",
                                                                         "agreement_high", "snr_db"]
    assert (free["agreement_low"] <= free["agreement"]).all() and (free["agreement"] <= free["agreement_high"]).all()
    assert free.loc[0, "agreement"] > 0.95 and free.loc[1, "agreement"] < free.loc[0, "agreement"] - 0.2
    assert free.loc[1, "snr_db"] < free.loc[0, "snr_db"]
    assert sw.best_point(free)["std"] == 255.0
    assert free.loc[1, "significant"] is True or free.loc[1, "significant"] == True  # noqa: E712 - paired vs float

    labelled = sw.sweep(uint8_folder, POINTS, images, labels, executor=None, cache=tmp_path, progress=False)
    assert "snr_db" not in labelled and labelled["accuracy"].notna().all()
    assert labelled["accuracy"].idxmin() == free["agreement"].idxmin()  # the same worst point

    heat = plots.stats_heatmap(free, 1.0)
    assert heat.figure.axes[-1].get_ylabel() == AGREEMENT_LABEL
    curve = plots.accuracy_curve(free, "std", 1.0)
    assert curve.get_ylabel() == AGREEMENT_LABEL and curve.lines[0].get_ydata().max() > 95


def test_the_point_cache_keeps_labelled_and_unlabelled_rows_apart(uint8_folder, small, tmp_path):
    images, labels = small
    for first, second in ((labels, None), (None, labels)):
        folder = tmp_path / ("labelled-first" if first is not None else "unlabelled-first")
        run = [sw.sweep(uint8_folder, POINTS[:2], images, given, executor=None, cache=folder, progress=False)
               for given in (first, second, first, second)]
        assert not run[0]["cached"].any() and not run[1]["cached"].any()  # the other kind's rows are not reused
        assert run[2]["cached"].all() and run[3]["cached"].all()
        for frame, given in zip(run, (first, second, first, second)):
            assert ("snr_db" in frame) == (given is None)
            assert frame["accuracy"].notna().all() == (given is not None)


def test_no_float_model_and_a_reference_without_labels_are_refused(uint8_folder, small, tmp_path):
    images, labels = small
    with pytest.raises(ValueError, match="no float model"):
        sw.sweep(convert(uint8_folder, "float32"), POINTS, images, None, cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match="reference= with labels=None"):
        sw.sweep(uint8_folder, POINTS, images, None, reference=labels, cache=tmp_path, progress=False)


def test_screening_without_labels_drops_a_clearly_bad_point_early(uint8_folder, test_set, tmp_path):
    images = test_set[0]
    frame = screening.sweep(uint8_folder, POINTS, images, None, executor=None, cache=tmp_path, progress=False)
    first = screening.default_stages(len(images))[0]
    assert frame.attrs["metric"] == "agreement" and frame["accuracy"].isna().all()
    bad = frame.loc[1]
    assert bad["screened"] and bad["images_evaluated"] == first and bad["ci_high"] < frame.loc[0, "ci_low"]
    right = frame.loc[0]
    assert not right["screened"] and right["images_evaluated"] == len(images)
    assert right["ci_low"] <= right["agreement"] <= right["ci_high"]
    # the survivor's rounds add up to what the exact sweep measures on every image
    exact = sw.sweep(uint8_folder, POINTS[:1], images, None, executor=None, cache=tmp_path, progress=False)
    assert right["agreement"] == exact.loc[0, "agreement"]
    assert right["agreement_low"] == pytest.approx(exact.loc[0, "agreement_low"])
    assert right["snr_db"] == pytest.approx(exact.loc[0, "snr_db"], rel=1e-6)
    assert "screened out on" in screening.describe(frame)


def test_explorers_without_labels_show_the_agreement(uint8_folder, small, tmp_path):
    images, _ = small
    view = widgets.stats_view(uint8_folder, images[:200], None, 0, 1)
    assert math.isnan(view.accuracy) and 0 < view.agreement < 0.9 and view.score == view.agreement
    ranged = widgets.range_view(uint8_folder, images[:200], None, 0, 6)
    assert ranged.agreement > 0.9 and ranged.snr_db is not None

    explorer = widgets.stats_explorer(uint8_folder, images, None, live_size=200, cache=tmp_path)
    engine = explorer.engine
    assert engine.baseline == 1.0 and engine.best.agreement > 0.95
    assert "agreement with the float model now" in explorer.readout.value
    assert engine._gauge.get_xlabel() == AGREEMENT_LABEL
    explorer.controls["mean"].value = 127.5
    assert engine.view.agreement < engine.best.agreement
    assert "against the correct stats" in explorer.readout.value
    explorer.controls["full"].click()
    full = engine.evaluate_full()
    assert 0 < full < 1 and "agreement with the float model on all" in explorer.ui.children[2].children[1].value

    ranges = widgets.RangeExplorer(uint8_folder, images, None, live_size=200, cache=tmp_path)
    assert ranges.view.agreement > 0.9 and "agreement with the float model now" in ranges.readout()
    assert np.isnan(ranges.view.accuracy)
