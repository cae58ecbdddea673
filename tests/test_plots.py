"""Plots: ax in, figure/axes out, baseline on every accuracy plot, no global state touched."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from workbench import InputStats, input_codes, plots

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
    fig, ax = plots.accuracy_bars(RECIPES, 0.97)
    assert _baseline_lines(ax) == ["float baseline 97.00 %"]
    assert ax.get_xlabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(RECIPES["recipe"])
    assert ax.get_xlim()[0] < 41.6
    fig.savefig(output_dir / "plot_accuracy_bars.png")


def test_plots_draw_on_a_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    got_fig, got_ax = plots.size_vs_accuracy(RECIPES, 0.97, ax=ax)
    assert got_fig is fig and got_ax is ax
    assert ax.get_xlabel() == "model size (KB)" and _baseline_lines(ax)


def test_accuracy_curve_reads_fractions_and_references():
    frame = pd.DataFrame({"bits": [8, 2, 4], "accuracy": [0.98, 0.4, 0.97]})
    fig, ax = plots.accuracy_curve(frame, "bits", 0.975, references={"QAT": 0.98}, xlabel="bits")
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
    fig, ax = plots.stats_heatmap(STATS, 0.97, correct=InputStats(0, 255))
    (star,) = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0, 1)  # mean 0 -> column 0, std 255 -> row 1
    assert ax.images[0].get_array()[1, 0] == pytest.approx(90.0)
    fig.savefig(output_dir / "plot_stats_heatmap.png")


def test_confusion_pair_titles_carry_accuracy():
    a = np.eye(10, dtype=int) * 10
    b = a.copy()
    b[0, 0], b[0, 1] = 5, 5
    fig, axes = plots.confusion_pair(a, b, titles=("float", "uint8"))
    assert axes[0].get_title() == "float: 100.00 % correct"
    assert axes[1].get_title() == "uint8: 95.00 % correct"
    with pytest.raises(ValueError, match="10, 10"):
        plots.confusion_pair(a[:5], b)


def test_input_histogram_moves_in_place(test_set, output_dir):
    images = test_set[0][:200]
    fig, ax = plots.input_histogram(InputStats(0, 255), images, (0.0, 1.0))
    patches = list(ax.patches)
    counts = input_codes.pixel_counts(images)
    inside = {p.get_gid(): p for p in patches}["inside"]
    assert inside.get_data().values.sum() == counts.sum()  # right stats: every pixel in range
    plots.update_input_histogram(ax, InputStats(0, 1), counts, (0.0, 1.0))
    assert list(ax.patches) == patches  # the same artists, moved
    outside = {p.get_gid(): p for p in patches}["outside"]
    assert outside.get_data().values.sum() == counts[2:].sum()  # only bytes 0 and 1 stay within [0, 1]
    assert "2 codes in range" in ax.get_title()
    fig.savefig(output_dir / "plot_input_histogram.png")


def test_gauge_updates_bars():
    fig, ax = plots.accuracy_gauge({"now": 0.5, "best": 0.9}, 0.95)
    plots.update_gauge(ax, {"now (moved)": 0.7, "best": 0.9})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["now (moved)", "best"]
    bars = [p for p in ax.patches if p.get_gid() == "gauge"]
    assert [b.get_width() for b in bars] == pytest.approx([70.0, 90.0])
    assert sorted(t.get_text() for t in ax.texts) == [" 70.00 % ", " 90.00 % "]


def test_fake_quant_ranges_of_a_qat_model(qat_int8):
    table = input_codes.fake_quant_table(qat_int8)
    assert "input" in set(table["quantizer"])
    row = table[(table["layer"] == "conv1") & (table["quantizer"] == "kernel")].iloc[0]
    assert row["channels"] == 6 and row["min"] < 0 < row["max"]
    fig, ax = plots.fake_quant_ranges(table)
    assert len(ax.patches) == len(table)


def test_fake_quant_table_refuses_a_float_model(float_model):
    with pytest.raises(ValueError, match="no fake-quant"):
        input_codes.fake_quant_table(float_model)


@pytest.mark.parametrize("stats, in_range, wasted, clipped_max", [
    (InputStats(0, 255), 256, 0, 0.0),
    (InputStats(0, 1), 2, 254, 1.0),
    (InputStats(127.5, 127.5), 128, 128, 1.0),
])
def test_code_usage_of_known_cases(test_set, stats, in_range, wasted, clipped_max):
    usage = input_codes.code_usage(stats, (0.0, 1.0), test_set[0])
    assert (usage.codes_in_range, usage.wasted_codes) == (in_range, wasted)
    assert usage.clipped_fraction <= clipped_max
    if stats == InputStats(0, 255):
        assert usage.clipped_fraction == 0 and usage.unreachable == 0
    else:
        assert usage.clipped_fraction > 0.05  # black or bright pixels land outside [0, 1]


def test_code_usage_refuses_bad_input():
    with pytest.raises(ValueError, match="train_range"):
        input_codes.code_usage(InputStats(0, 255), (1.0, 0.0))
    with pytest.raises(ValueError, match="uint8"):
        input_codes.pixel_counts(np.zeros(4, dtype=np.float32))
