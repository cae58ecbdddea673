"""Plots: ax in, what was drawn on out, baseline on every accuracy plot, no global state touched."""

from __future__ import annotations

import inspect

import matplotlib
import numpy as np
import pandas as pd
import pytest

from workbench import InputStats, graph_tables, input_codes, layer_error, plots
from workbench.cli import demo_figure
from workbench.troubleshoot.layer_error import LayerError, LayerReport

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def rc_unchanged():
    before = dict(matplotlib.rcParams)
    yield
    assert dict(matplotlib.rcParams) == before, "a plot function changed matplotlib's global rcParams"
    import matplotlib.pyplot as plt

    plt.close("all")


def _baseline_lines(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if "float baseline" in str(line.get_label())]


RECIPES = pd.DataFrame({"recipe": ["float32", "int8-ptq", "legacy-uint8"], "accuracy_pct": [97.0, 96.5, 41.6],
                        "size_kb": [250.0, 68.0, 67.0]})
STATS = pd.DataFrame([{"mean": m, "std": s, "accuracy": 0.9 if (m, s) == (0.0, 255.0) else 0.3}
                      for m in (0.0, 127.5) for s in (1.0, 255.0)])


def test_accuracy_bars_draws_the_baseline_and_labels(output_dir):
    ax = plots.accuracy_bars(RECIPES, 0.97)
    assert _baseline_lines(ax) == ["float baseline 97.00 %"]
    assert ax.get_xlabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(RECIPES["recipe"])
    assert ax.get_xlim()[0] < 41.6
    ax.figure.savefig(output_dir / "plot_accuracy_bars.png")


def test_plots_draw_on_a_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    assert plots.size_vs_accuracy(RECIPES, 0.97, ax=ax) is ax
    assert fig.axes == [ax]
    assert ax.get_xlabel() == "model size (KB)" and _baseline_lines(ax)


def test_accuracy_curve_reads_fractions_and_references():
    frame = pd.DataFrame({"bits": [8, 2, 4], "accuracy": [0.98, 0.4, 0.97]})
    ax = plots.accuracy_curve(frame, "bits", 0.975, references={"QAT": 0.98}, xlabel="bits")
    curve = ax.get_lines()[0]
    assert list(curve.get_xdata()) == [2, 4, 8]
    assert list(curve.get_ydata()) == pytest.approx([40.0, 97.0, 98.0])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "float baseline 97.50 %" in labels and "QAT 98.00 %" in labels
    with pytest.raises(ValueError, match="x='colour'"):
        plots.accuracy_curve(frame, "colour", 0.9)


def test_baseline_must_be_a_fraction():
    with pytest.raises(ValueError, match="baseline"):
        plots.accuracy_bars(RECIPES, 97.0)


def test_stats_heatmap_marks_the_correct_point(output_dir):
    ax = plots.stats_heatmap(STATS, 0.97, correct=InputStats(0, 255))
    (star,) = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0, 1)  # mean 0 -> column 0, std 255 -> row 1
    assert ax.images[0].get_array()[1, 0] == pytest.approx(90.0)
    ax.figure.savefig(output_dir / "plot_stats_heatmap.png")


def test_confusion_pair_titles_carry_accuracy():
    a = np.eye(10, dtype=int) * 10
    b = a.copy()
    b[0, 0], b[0, 1] = 5, 5
    axes = plots.confusion_pair(a, b, titles=("float", "uint8")).axes
    assert axes[0].get_title() == "float: 100.00 % correct"
    assert axes[1].get_title() == "uint8: 95.00 % correct"
    with pytest.raises(ValueError, match=r"\(5, 10\); allowed: a square \(K, K\)"):
        plots.confusion_pair(a[:5], b)


def test_confusion_pair_any_class_count_with_names():
    a = np.eye(5, dtype=int) * 4
    names = ("hstripes", "vstripes", "diagonal", "disc", "band")
    figure = plots.confusion_pair(a, a, class_names=names)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(names)
    assert figure.axes[0].get_xlabel() == "predicted class" and figure.axes[0].images[0].get_array().shape == (5, 5)
    with pytest.raises(ValueError, match="reference is \\(5, 5\\) but quantized is \\(10, 10\\)"):
        plots.confusion_pair(a, np.eye(10, dtype=int))
    with pytest.raises(ValueError, match="class_names has 2 names for 5 classes"):
        plots.confusion_pair(a, a, class_names=("a", "b"))


def test_input_histogram_moves_in_place(test_set, output_dir):
    images = test_set[0][:200]
    ax = plots.input_histogram(InputStats(0, 255), images, (0.0, 1.0))
    patches = list(ax.patches)
    counts = input_codes.pixel_counts(images)
    inside = {p.get_gid(): p for p in patches}["inside"]
    assert inside.get_data().values.sum() == counts.sum()  # right stats: every pixel in range
    assert plots.update_input_histogram(ax, InputStats(0, 1), counts, (0.0, 1.0)) is ax
    assert list(ax.patches) == patches  # the same artists, moved
    outside = {p.get_gid(): p for p in patches}["outside"]
    assert outside.get_data().values.sum() == counts[2:].sum()  # only bytes 0 and 1 stay within [0, 1]
    assert "2 codes in range" in ax.get_title()
    ax.figure.savefig(output_dir / "plot_input_histogram.png")


def test_gauge_updates_bars():
    ax = plots.accuracy_gauge({"now": 0.5, "best": 0.9}, 0.95)
    assert plots.update_gauge(ax, {"now (moved)": 0.7, "best": 0.9}) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["now (moved)", "best"]
    bars = [p for p in ax.patches if p.get_gid() == "gauge"]
    assert [b.get_width() for b in bars] == pytest.approx([70.0, 90.0])
    assert sorted(t.get_text() for t in ax.texts) == [" 70.00 % ", " 90.00 % "]


def test_fake_quant_ranges_of_a_qat_model(qat_int8):
    table = input_codes.fake_quant_table(qat_int8)
    assert "input" in set(table["quantizer"])
    row = table[(table["layer"] == "conv1") & (table["quantizer"] == "kernel")].iloc[0]
    assert row["channels"] == 6 and row["min"] < 0 < row["max"]
    ax = plots.fake_quant_ranges(table)
    assert len(ax.patches) == len(table)


def test_fake_quant_table_refuses_a_float_model(float_model):
    with pytest.raises(ValueError, match="no fake-quant"):
        input_codes.fake_quant_table(float_model)


# Byte q is read as (q - mean) / std; which bytes land outside the training range [0, 1]:
@pytest.mark.parametrize("stats, in_range, wasted, read_outside", [
    (InputStats(0, 255), 256, 0, lambda q: np.zeros(q.shape, bool)),  # q / 255: every byte in [0, 1]
    (InputStats(0, 1), 2, 254, lambda q: q >= 2),  # q / 1: only bytes 0 and 1
    (InputStats(127.5, 127.5), 128, 128, lambda q: q <= 127),  # (q - 127.5) / 127.5 < 0 below byte 128
])
def test_code_usage_of_known_cases(test_set, stats, in_range, wasted, read_outside):
    pixels = test_set[0]
    usage = input_codes.code_usage(stats, (0.0, 1.0), pixels)
    assert (usage.codes_in_range, usage.wasted_codes) == (in_range, wasted)
    assert usage.code_range == pytest.approx((-stats.mean / stats.std, (255 - stats.mean) / stats.std))
    assert usage.unreachable == 0  # all three code ranges cover [0, 1]
    assert usage.clipped_fraction == pytest.approx(np.mean(read_outside(pixels.astype(int))), abs=1e-12)
    # black (0) and bright pixels are common in MNIST: the wrong stats clip a visible share of them
    assert (usage.clipped_fraction > 0.05) == (stats != InputStats(0, 255))


def test_code_usage_refuses_bad_input():
    with pytest.raises(ValueError, match="train_range"):
        input_codes.code_usage(InputStats(0, 255), (1.0, 0.0))
    with pytest.raises(ValueError, match="uint8"):
        input_codes.pixel_counts(np.zeros(4, dtype=np.float32))


# --- one contract for every plotting function ----------------------------------------------------

DEMO = pd.DataFrame({"recipe": ["float32", "int8-ptq", "legacy-uint8"], "model": ["float", "float", "qat-uint8-legacy"],
                     "accuracy_pct": [97.0, 96.5, 96.9], "size_kb": [250.0, 68.0, 67.0],
                     "activations": ["float32:10", "float32:1, int8:10", "uint8:9"]})


def _layer_reports() -> dict:
    def error(name: str, snr: float) -> LayerError:
        return LayerError(name, f"lenet/{name}/Relu", "CONV_2D", "int8", 0.05, -128, 0.01, snr, 0.03, 0.1)

    return {"int8": LayerReport((error("conv1", 30.0), error("conv2", 25.0)), count=10)}


# A table with paired comparisons (``sweep.compare``, ``demo.results_frame``): a reference, a row within
# noise, a significant one; spreads over three seeds.
COMPARED = pd.DataFrame({"recipe": ["float32", "int8-ptq", "legacy-uint8"], "model": ["float"] * 3,
                         "epochs": [1, 1, 1], "accuracy_pct": [97.1, 97.0, 94.4], "accuracy_std_pts": [0.1, 0.2, 0.5],
                         "delta_pts": [0.0, -0.1, -2.7], "ci_low_pts": [np.nan, -0.3, -3.1],
                         "ci_high_pts": [np.nan, 0.1, -2.3], "significant": [None, False, True],
                         "verdict": ["reference", "no significant difference", "significantly worse"],
                         "size_kb": [250.0, 70.0, 67.0], "activations": ["float32", "int8", "uint8"]})


def test_bars_hatch_what_is_within_noise_and_carry_error_bars(output_dir):
    ax = plots.accuracy_bars(COMPARED, 0.971)
    hatches = [bar.get_hatch() for bar in ax.patches]
    assert hatches == [None, "///", None]  # only the row within noise of its reference
    labels = sorted(t.get_text() for t in ax.texts)
    assert " 97.00 n.s." in labels and " 94.40" in labels
    (bars,) = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert "n.s.: no significant difference" in ax.get_title()
    fig = demo_figure.accuracy_size_figure(COMPARED)
    acc_ax, size_ax = fig.axes[:2]
    assert [bar.get_hatch() for bar in acc_ax.patches] == [None, "///", None]
    assert [bar.get_hatch() for bar in size_ax.patches] == [None, None, None]  # size is not a test
    assert any(c.__class__.__name__ == "ErrorbarContainer" for c in acc_ax.containers)
    fig.savefig(output_dir / "plot_demo_noise.png")


def test_difference_intervals_grey_what_is_within_noise(output_dir):
    ax = plots.difference_intervals(COMPARED)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["int8-ptq", "legacy-uint8"]  # the reference is left out
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["-0.10  n.s.", "-2.70"]
    with pytest.raises(ValueError, match="lacks column 'delta_pts'"):
        plots.difference_intervals(RECIPES)
    ax.figure.savefig(output_dir / "plot_difference_intervals.png")


def test_accuracy_curve_over_seeds_draws_the_spread_and_the_noise():
    frame = pd.DataFrame({"bits": [2, 8, 2, 8, 4, 4], "seed": [0, 0, 1, 1, 0, 1],
                          "accuracy": [0.40, 0.98, 0.50, 0.97, 0.96, 0.975],
                          "significant": [True, None, True, None, False, False]})
    ax = plots.accuracy_curve(frame, "bits", 0.975)
    curve = ax.get_lines()[0]
    assert list(curve.get_xdata()) == [2, 4, 8] and list(curve.get_ydata()) == pytest.approx([45.0, 96.75, 97.5])
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"differs from the reference", "no significant difference", "reference point"} <= set(labels)
    (hollow,) = [line for line in ax.get_lines() if line.get_label() == "no significant difference"]
    assert list(hollow.get_xdata()) == [4] and hollow.get_markerfacecolor() == "white"
    assert any(c.__class__.__name__ == "ErrorbarContainer" for c in ax.containers)


# Each public plotting function: how many panels it draws, and a call drawing on ``ax``.
PLOTS = {
    plots.accuracy_bars: (1, lambda ax, _: plots.accuracy_bars(RECIPES, 0.97, ax=ax)),
    plots.difference_intervals: (1, lambda ax, _: plots.difference_intervals(COMPARED, ax=ax)),
    plots.size_vs_accuracy: (1, lambda ax, _: plots.size_vs_accuracy(RECIPES, 0.97, ax=ax)),
    plots.confusion_pair: (2, lambda ax, _: plots.confusion_pair(np.eye(10, dtype=int), np.eye(10, dtype=int),
                                                                 ax=ax)),
    plots.accuracy_curve: (1, lambda ax, _: plots.accuracy_curve(STATS, "mean", 0.97, ax=ax)),
    plots.stats_heatmap: (1, lambda ax, _: plots.stats_heatmap(STATS, 0.97, correct=InputStats(0, 255), ax=ax)),
    plots.input_histogram: (1, lambda ax, _: plots.input_histogram(InputStats(0, 255), np.arange(256, dtype=np.uint8),
                                                                   (0.0, 1.0), ax=ax)),
    plots.accuracy_gauge: (1, lambda ax, _: plots.accuracy_gauge({"now": 0.5}, 0.95, ax=ax)),
    plots.fake_quant_ranges: (1, lambda ax, _: plots.fake_quant_ranges(
        pd.DataFrame({"layer": ["conv1"], "quantizer": ["kernel"], "min": [-0.5], "max": [0.7]}), ax=ax)),
    layer_error.plot_layer_errors: (1, lambda ax, _: layer_error.plot_layer_errors(_layer_reports(), ax=ax)),
    layer_error.plot_tensor_errors: (1, lambda ax, _: layer_error.plot_tensor_errors(
        {"int8": pd.DataFrame({"tensor": ["a", "b"], "kind": ["intermediate", "output"], "op": ["CONV_2D", "SOFTMAX"],
                               "position": [0, 5], "mse": [1e-4, 1e-5]})}, ax=ax)),
    graph_tables.plot_op_chain: (1, lambda ax, request: graph_tables.plot_op_chain(request.getfixturevalue("float_tflite"),
                                                                                ax=ax)),
    demo_figure.accuracy_size_figure: (2, lambda ax, _: demo_figure.accuracy_size_figure(DEMO, ax=ax)),
}
UPDATERS = {plots.update_input_histogram, plots.update_gauge}


def _public_functions(module) -> set:
    return {f for name, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")}


def test_every_public_plot_function_keeps_the_contract_test():
    """Every public function of ``plots``, and every function taking ``ax`` elsewhere, is checked below."""
    takes_ax = {f for module in (layer_error, graph_tables, demo_figure) for f in _public_functions(module)
                if "ax" in inspect.signature(f).parameters}
    assert _public_functions(plots) - UPDATERS | takes_ax == set(PLOTS)
    for function in PLOTS:
        assert inspect.signature(function).parameters["ax"].default is None, function.__name__


@pytest.mark.parametrize("function", list(PLOTS), ids=lambda f: f.__name__)
def test_plot_function_contract(function, request):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    count, draw = PLOTS[function]
    before = plt.get_fignums()
    fig = Figure()
    given = fig.subplots(1, count)
    got = draw(given, request)
    # given axes: it draws on them and returns what it drew on, the axes (one panel) or their figure
    assert got is (given if count == 1 else fig)
    assert all(ax.has_data() for ax in np.ravel(given)), "nothing was drawn on the given axes"
    assert plt.get_fignums() == before, "a pyplot figure was made although axes were given"
    # ax=None: a new figure that pyplot never hears of, shown by Jupyter as a PNG
    own = draw(None, request)
    assert isinstance(own, Axes if count == 1 else Figure)
    new = own.figure if count == 1 else own
    drawn = [own] if count == 1 else own.axes[:count]
    assert new is not fig and all(ax in new.axes and ax.has_data() for ax in drawn)
    assert plt.get_fignums() == before, "ax=None registered a figure with pyplot"
    assert new._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multi_panel_plots_refuse_the_wrong_number_of_axes():
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="ax has 1 axes; allowed: 2 axes"):
        plots.confusion_pair(np.eye(10, dtype=int), np.eye(10, dtype=int), ax=[Figure().subplots()])
    with pytest.raises(ValueError, match="ax has 3 axes; allowed: 2 axes"):
        demo_figure.accuracy_size_figure(DEMO, ax=Figure().subplots(1, 3))


def test_stats_heatmap_dots_the_cells_within_noise_of_the_reference():
    frame = STATS.assign(significant=[None if (m, s) == (0.0, 255.0) else (s == 1.0) for m, s in
                                      zip(STATS["mean"], STATS["std"])])
    ax = plots.stats_heatmap(frame, 0.97, correct=InputStats(0, 255))
    dotted = [p for p in ax.patches if p.get_hatch() == ".."]
    framed = [p for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(dotted) == 1 and dotted[0].get_xy() == (0.5, 0.5)  # (127.5, 255): column 1, row 1
    assert len(framed) == 1 and framed[0].get_xy() == pytest.approx((-0.45, 0.55))  # (0, 255): the reference
