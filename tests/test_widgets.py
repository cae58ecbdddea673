"""Widgets without a browser: a slider move gives what convert + evaluate give directly."""

from __future__ import annotations

import os
import warnings

import matplotlib
import pytest

from workbench import InputSpec, convert, evaluate, widgets
from workbench import sweep as sw
from workbench.core import parallel
from workbench.core.compare import paired
from workbench.explore import background

matplotlib.use("Agg")
LIVE = 500


@pytest.fixture(scope="module")
def explorer(uint8_folder, test_set):
    return widgets.stats_explorer(uint8_folder, *test_set, baseline=0.97, live_size=LIVE)


def test_explorer_starts_at_the_correct_stats(explorer, uint8_folder, test_set):
    images, labels = test_set
    direct = evaluate(convert(uint8_folder, "legacy-uint8", mean=0, std=255), images[:LIVE], labels[:LIVE])
    assert explorer.engine.best.accuracy == direct.accuracy
    assert explorer.controls["mean"].description == "mean" and explorer.controls["mean"].value == 0
    assert explorer.controls["std"].value == pytest.approx(255)
    assert "accuracy" in explorer.readout.value and explorer.image.value[:4] == b"\x89PNG"


def test_mean_slider_move_equals_convert_plus_evaluate(explorer, uint8_folder, test_set):
    images, labels = test_set
    before_text, before_png = explorer.readout.value, explorer.image.value
    explorer.controls["mean"].value = 127.5
    direct = evaluate(convert(uint8_folder, "legacy-uint8", mean=127.5, std=explorer.controls["std"].value),
                      images[:LIVE], labels[:LIVE])
    assert explorer.engine.view.accuracy == direct.accuracy
    assert explorer.engine.view.count == LIVE
    assert f"{100 * direct.accuracy:.2f} %" in explorer.readout.value
    assert explorer.readout.value != before_text and explorer.image.value != before_png
    assert explorer.engine.view.accuracy < explorer.engine.best.accuracy
    # the readout tests the move against the correct stats on the same live images
    test = paired(explorer.engine.best.predictions, direct.predictions, labels[:LIVE])
    assert test.summary() in explorer.readout.value
    assert ("within noise" in explorer.readout.value) == (not test.significant)


def test_slider_moves_past_the_check_are_patched_bytes_equal_to_a_conversion(uint8_folder, test_set):
    engine = widgets.StatsExplorer(uint8_folder, *test_set, live_size=LIVE)
    for mean, std in [(127.5, 255.0), (64.0, 5.62), (127.5, 5.62)]:  # the second move is the check conversion
        view = engine.update(mean, std)
        assert view.converted.tflite == convert(uint8_folder, "legacy-uint8", mean=mean, std=std).tflite
    assert engine.converter.checked is True and (engine.converter.converted, engine.converter.patched) == (2, 2)


def test_a_move_within_noise_is_called_so(explorer):
    explorer.controls["mean"].value = 0.0
    explorer.controls["std"].value = 256.0  # one step from the correct 255: the same predictions, or nearly
    assert "no significant difference" in explorer.readout.value and "within noise" in explorer.readout.value
    explorer.controls["std"].value = 1.0
    assert "significantly worse" in explorer.readout.value


def test_std_slider_and_the_range_formula(explorer):
    explorer.controls["std"].value = 1.0
    assert explorer.engine.view.usage.codes_in_range == 2
    explorer.controls["range"].value = (-1.0, 1.0)  # assumes [-1, 1]: the formula gives (127.5, 127.5)
    assert explorer.controls["mean"].value == pytest.approx(127.5)
    assert explorer.controls["std"].value == pytest.approx(127.5, rel=1e-2)
    assert explorer.engine.view.requested.mean == pytest.approx(127.5)
    explorer.controls["range"].value = (0.5, 1.0)  # no byte can stand for 0.0
    assert "does not contain 0.0" in explorer.readout.value


def test_full_button_evaluates_everything(explorer, uint8_folder, test_set):
    images, labels = test_set
    explorer.controls["mean"].value = 0.0
    explorer.controls["std"].value = 255.0
    explorer.controls["full"].click()
    direct = evaluate(convert(uint8_folder, "legacy-uint8", mean=0, std=255), images, labels)
    assert explorer.engine.evaluate_full() == direct.accuracy
    assert f"{len(images):,} images: {100 * direct.accuracy:.2f} %" in explorer.ui.children[2].children[1].value


def test_learned_input_range_says_the_stats_are_ignored(qat_uint8_learned, test_set):
    engine = widgets.StatsExplorer(qat_uint8_learned, *test_set, live_size=LIVE)
    first = engine.best.accuracy
    view = engine.update(127.5, 1.0)
    assert view.stats_ignored and view.accuracy == first
    assert "ignored" in engine.readout()


def test_range_slider_equals_convert_plus_evaluate(float_model, test_set):
    images, labels = test_set
    ui = widgets.range_explorer(float_model, images, labels, baseline=0.97, compare={"QAT uint8": 0.98},
                                live_size=LIVE)
    ui.controls["max"].value = 2.0
    direct = evaluate(convert(float_model, "legacy-uint8", default_ranges=(0.0, 2.0)), images[:LIVE], labels[:LIVE])
    assert ui.engine.view.accuracy == direct.accuracy and not ui.engine.view.came_out_float
    assert "accuracy" in ui.readout.value and "(0, 2)" in ui.readout.value


def test_bad_slider_values_are_refused(uint8_folder, test_set):
    with pytest.raises(ValueError, match="std"):
        widgets.stats_view(uint8_folder, *test_set, mean=0, std=0)
    with pytest.raises(ValueError, match="min >= max"):
        widgets.range_view(uint8_folder, *test_set, lo=3, hi=1)
    with pytest.raises(ValueError, match="live_size"):
        widgets.StatsExplorer(uint8_folder, *test_set, spec=InputSpec(), live_size=0)


def test_sliders_keep_working_while_a_sweep_runs_in_the_background(uint8_folder, test_set, tmp_path):
    images, labels = test_set
    ui = widgets.stats_explorer(uint8_folder, images, labels, baseline=0.97, live_size=LIVE, cache=tmp_path,
                                grid_size=2)
    ui.controls["sweep"].click()
    handle = ui.engine.background
    assert ui.controls["sweep"].disabled
    with pytest.raises(ValueError, match="a background sweep is still running"):
        ui.engine.sweep_in_background()
    with pytest.raises(ValueError, match="a background sweep is still running"):
        ui.sweep_in_background()
    running = []
    for mean in (10.0, 40.0, 127.5, 200.0):
        ui.controls["mean"].value = mean  # converts and evaluates here while the workers sweep
        running.append(not handle.done())
        direct = evaluate(convert(uint8_folder, "legacy-uint8", mean=mean, std=255), images[:LIVE], labels[:LIVE])
        assert ui.engine.view.accuracy == direct.accuracy and f"{100 * direct.accuracy:.2f} %" in ui.readout.value
    frame = handle.result(timeout=600)
    assert running[0], "the sweep finished before the first slider move: nothing ran concurrently"
    points = sw.stats_grid(InputSpec(), 2)
    exact = sw.sweep(uint8_folder, points, images, labels, executor=None, cache=tmp_path, progress=False)
    assert exact["cached"].all()  # the background sweep computed and stored every point, on all images
    assert list(frame["accuracy"]) == list(exact["accuracy"]) and handle.points_done == len(points)
    best = exact.loc[exact["accuracy"].idxmax()]
    status = ui.controls["sweep_status"].value
    assert f"swept {len(points)} points" in status and f"{100 * best['accuracy']:.2f} %" in status
    shown = ui.controls["sweep_output"].outputs
    assert len(shown) == 1 and "image/png" in shown[0]["data"] and not ui.controls["sweep"].disabled
    # the same grid screened on subsets first: the rows screened out say so, the best point is the same
    # evaluated by LiteRT-only workers at a lower priority, never by a TensorFlow-importing process
    pool = ui.engine.pool
    loaded = pool.executor().submit(eval, "sorted(m for m in __import__('sys').modules if m.startswith("
                                          "('tensorflow', 'keras', 'tf_keras')))").result()
    assert loaded == [] and pool.pids()
    assert all(os.getpriority(os.PRIO_PROCESS, pid) >= os.getpriority(os.PRIO_PROCESS, 0) + background.NICE
               for pid in pool.pids())
    screened = ui.sweep_in_background(screen=True).result(timeout=600)  # what the button does, from code
    assert ui.controls["screen"].value and ui.engine.pool is pool  # the workers stay warm from one sweep to the next
    assert "screened" in screened and sw.best_point(screened)["accuracy"] == best["accuracy"]
    assert "points:" in ui.controls["sweep_status"].value and len(ui.controls["sweep_output"].outputs) == 1
    ui.engine.close()
    assert ui.engine.pool is None


def test_an_on_done_error_is_told_and_keeps_the_result():
    pool = parallel.WorkerPool(1)  # never started: the run evaluates nothing

    def fail(handle):
        raise KeyError("drawing failed")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = background.BackgroundSweep(lambda: "frame", pool, on_done=fail)
        assert handle.result(timeout=60) == "frame"
    assert isinstance(handle.callback_error, KeyError) and handle.error is None
    assert any("on_done raised KeyError" in str(w.message) and "result is kept" in str(w.message) for w in caught)
    failing = background.BackgroundSweep(lambda: 1 / 0, pool, on_done=fail)
    with pytest.raises(ZeroDivisionError):  # the sweep's own error stands, not the callback's
        failing.result(timeout=60)
    assert isinstance(failing.callback_error, KeyError) and pool.pids() == []
