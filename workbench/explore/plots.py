"""Matplotlib figures for the notebooks, readable on a workshop projector.

One contract for every drawing function here (and for ``layer_error.plot_layer_errors``,
``graph_tables.plot_op_chain`` and ``demo_figure.accuracy_size_figure``):

* it takes ``ax=None``; given axes it draws on them, with ``None`` it draws on a
  new figure (``figures.new_figure``: a ``matplotlib.figure.Figure`` pyplot never
  sees, so nothing needs closing);
* it returns what it drew on: the ``Axes`` for a one-panel plot (its figure is
  ``ax.figure``), the ``Figure`` for a plot of several panels (``confusion_pair``,
  whose ``ax`` is then a pair of axes). The ``update_*`` functions move what a
  drawing function drew, in place, and return the same ``Axes``;
* it touches no global matplotlib state: no pyplot figure, no ``rcParams``, no
  current axes.

In a notebook, end the cell with ``ax.figure`` (or the returned figure) to show it.

Accuracy is shown in percent and every accuracy plot draws the float baseline,
passed as a fraction (``EvalResult.accuracy``). Frames are the DataFrames
``sweep`` and ``demo.results_frame`` return: an accuracy column named ``*_pct``
is read as percent, any other as a fraction. A sweep without labels (``float_reference``) has no accuracy:
``accuracy_curve`` and ``stats_heatmap`` then draw its ``agreement`` with the float model (the float model
itself is 100 %), and their axes say so.

Honest comparisons (``core.compare``): where a frame has a ``significant`` column
(the paired test against its reference), a difference within noise is drawn as
such (hatched, pale bars; hollow markers; "n.s."), and the reference itself
(``significant`` empty) is drawn plainly. Spreads over seeds are error bars: the
``accuracy_std_pts`` column of a table, or several rows per x (a ``seed`` column) in a sweep.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.ticker import NullLocator

from . import input_codes
from .float_reference import AGREEMENT_LABEL, metric_of

from ..core import checks
from ..core.compare import is_reference, within_noise
from ..core.figures import NOISE_STYLE, new_axes, panels
from ..core.stats import InputStats

BASELINE_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.5}
FONT = 11


def accuracy_bars(frame, baseline: float, *, label: str = "recipe", accuracy: str = "accuracy_pct",
                  ax=None, title: str = "Test accuracy by recipe"):
    """Horizontal bars of accuracy per row, the float baseline as a dashed line.

    A ``significant`` column (``sweep.compare``, ``demo.results_frame``) hatches the rows whose difference
    from the reference is within noise and labels them "n.s."; an ``accuracy_std_pts`` column adds error
    bars (± one standard deviation over seeds).

    Args:
        frame: a DataFrame with a ``label`` and an ``accuracy`` column.
        baseline: the float model's accuracy (fraction 0..1).
        label, accuracy: column names.
        ax: axes to draw on; ``None`` makes a new figure.
        title: the axes title.
    """
    base = _baseline(baseline)
    ax = _axes(ax, (9, 0.5 * len(frame) + 1.8))
    acc = _percent(frame, accuracy)
    y = np.arange(len(frame))
    noise = _within_noise(frame)
    for i, a in enumerate(acc):
        ax.barh(i, a, color="#4c72b0" if a >= base - 0.5 else "#dd8452", **(NOISE_STYLE if noise[i] else {}))
    std = _std_pts(frame)
    if std is not None:
        ax.errorbar(acc, y, xerr=std, fmt="none", ecolor="black", capsize=3, linewidth=1, label="± std over seeds")
    for i, v in enumerate(acc):
        ax.text(v + (0 if std is None else std[i]), i, f" {v:.2f}" + (" n.s." if noise[i] else ""), va="center",
                fontsize=FONT - 2)
    ax.set_yticks(y, [str(v) for v in frame[label]], fontsize=FONT - 1)
    ax.invert_yaxis()
    ax.set_xlim(max(0.0, min(np.nanmin(acc), base) - 3), 100.5)
    _draw_baseline(ax, base, vertical=True)
    ax.set_xlabel("agreement with the float model (%)" if accuracy.startswith("agreement") else "test accuracy (%)",
                  fontsize=FONT)
    ax.set_title(title + (" (hatched, n.s.: no significant difference)" if any(noise) else ""), fontsize=FONT + 1)
    ax.legend(loc="lower left", fontsize=FONT - 2)
    return ax


def difference_intervals(frame, *, label: str = "recipe", ax=None, title: str = "Difference from the reference"):
    """Each row's accuracy difference from its reference with its 95 % interval (points), zero drawn.

    Rows within noise (``significant`` False) are grey hollow markers; the reference rows themselves
    (``significant`` empty) are left out.

    Args:
        frame: a table with ``delta_pts``, ``ci_low_pts``, ``ci_high_pts`` and ``significant``
            (``sweep.compare``, ``demo.results_frame``, a ``sweep`` frame).
        label: the column naming each row (a tuple-like row label is joined).
        ax: axes to draw on; ``None`` makes a new figure.
        title: the axes title.
    """
    for col in ("delta_pts", "ci_low_pts", "ci_high_pts", "significant", label):
        if col not in frame:
            raise ValueError(f"frame lacks column {col!r}; allowed: a table with paired comparisons "
                             "(delta_pts, ci_low_pts, ci_high_pts, significant)")
    rows = frame[[not is_reference(v) for v in frame["significant"]]]
    if not len(rows):
        raise ValueError("frame has no compared rows (every 'significant' is empty); allowed: a table with "
                         "at least one row compared with a reference")
    ax = _axes(ax, (9, 0.45 * len(rows) + 1.8))
    y = np.arange(len(rows))
    delta = np.asarray(rows["delta_pts"], dtype=float)
    low, high = np.asarray(rows["ci_low_pts"], dtype=float), np.asarray(rows["ci_high_pts"], dtype=float)
    for i, (d, lo, hi, sig) in enumerate(zip(delta, low, high, rows["significant"])):
        color = ("#c44e52" if d < 0 else "#55a868") if sig else "#888888"
        ax.errorbar(d, i, xerr=[[d - lo], [hi - d]], fmt="o", color=color, capsize=4, linewidth=2,
                    markerfacecolor=color if sig else "white", markersize=7)
        ax.annotate(f"{d:+.2f}" + ("" if sig else "  n.s."), (hi, i), textcoords="offset points", xytext=(6, -3),
                    fontsize=FONT - 2, color=color)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(y, [str(v) for v in rows[label]], fontsize=FONT - 1)
    ax.invert_yaxis()
    span = max(np.nanmax(np.abs(np.r_[low, high])), 0.1)
    ax.set_xlim(-1.25 * span, 1.6 * span)
    ax.set_xlabel("accuracy difference from the reference (points, 95 % interval)", fontsize=FONT)
    ax.set_title(f"{title}: grey hollow = no significant difference (exact McNemar)", fontsize=FONT)
    ax.grid(axis="x", alpha=0.3)
    return ax


def size_vs_accuracy(frame, baseline: float, *, label: str = "recipe", accuracy: str = "accuracy_pct",
                     size: str = "size_kb", ax=None):
    """Model size (KB) against accuracy, one labelled point per row, float baseline drawn."""
    base = _baseline(baseline)
    ax = _axes(ax, (8, 5))
    acc = _percent(frame, accuracy)
    sizes = np.asarray(frame[size], dtype=float)
    ax.scatter(sizes, acc, s=60, color="#4c72b0", zorder=3)
    for x, y, name in zip(sizes, acc, frame[label]):
        ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=FONT - 3)
    _draw_baseline(ax, base)
    ax.set_xlabel("model size (KB)", fontsize=FONT)
    ax.set_ylabel("test accuracy (%)", fontsize=FONT)
    ax.set_title("Size vs accuracy (up and left is better)", fontsize=FONT + 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=FONT - 2)
    return ax


def confusion_pair(reference: np.ndarray, quantized: np.ndarray, *,
                   titles: Sequence[str] = ("float", "uint8"), class_names: Sequence[str] | None = None, ax=None):
    """Two confusion matrices side by side (rows: true class, columns: predicted), count in each cell.

    Args:
        reference, quantized: ``(K, K)`` count matrices of the same size (``EvalResult.confusion``), any
            class count ``K >= 2``.
        titles: a title for each panel (accuracy is appended).
        class_names: ``K`` tick labels (``Dataset.class_names``); default ``0..K-1``. Beyond 20
            classes the counts are left out of the cells and every ``K // 20 + 1``-th class is labelled.
        ax: two axes to draw on; ``None`` makes a new figure.

    Returns:
        The ``Figure`` holding the two panels.
    """
    mats = [np.asarray(reference), np.asarray(quantized)]
    for name, m in zip(("reference", "quantized"), mats):
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
            raise ValueError(f"{name} has shape {m.shape}; allowed: a square (K, K) confusion matrix, K >= 2")
    if mats[0].shape != mats[1].shape:
        raise ValueError(f"reference is {mats[0].shape} but quantized is {mats[1].shape}; allowed: the same "
                         "classes in both")
    k = mats[0].shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names for {k} classes; allowed: one name per class")
    axes = panels(ax, 2, (12, 5.4) if k <= 12 else (16, 7.5))
    top = max(m.max() for m in mats)
    every = k // 20 + 1
    for panel, m, title in zip(axes, mats, titles):
        shown = np.log1p(m)
        panel.imshow(shown, cmap="Blues", vmin=0, vmax=np.log1p(max(top, 1)))
        if k <= 20:
            for (i, j), v in np.ndenumerate(m):
                if v:
                    panel.text(j, i, str(v), ha="center", va="center", fontsize=FONT - 4 if k <= 12 else FONT - 6,
                               color="white" if shown[i, j] > 0.6 * np.log1p(top) else "black")
        acc = 100 * np.trace(m) / max(m.sum(), 1)
        panel.set_title(f"{title}: {acc:.2f} % correct", fontsize=FONT + 1)
        ticks = list(range(0, k, every))
        rotate = 45 if max(len(names[t]) for t in ticks) > 2 else 0
        panel.set_xticks(ticks, [names[t] for t in ticks], rotation=rotate, fontsize=FONT - 2)
        panel.set_yticks(ticks, [names[t] for t in ticks], fontsize=FONT - 2)
        panel.set_xlabel("predicted class", fontsize=FONT)
        panel.set_ylabel("true class", fontsize=FONT)
    return axes[0].figure


def accuracy_curve(frame, x: str, baseline: float, *, accuracy: str = "accuracy", ax=None,
                   logx: bool = False, xlabel: str | None = None, label: str | None = None,
                   title: str | None = None, references: dict[str, float] | None = None):
    """Accuracy against one swept parameter, the float baseline drawn.

    Several rows at one ``x`` (a sweep over seeds) are drawn as their mean with ± one standard deviation
    error bars. With a ``significant`` column (the sweep's paired test against its reference point), points
    within noise of the reference are hollow and the reference is a star.

    Args:
        frame: a sweep DataFrame.
        x: the parameter column (e.g. ``bits``, ``calibration_size``, ``default_max``).
        baseline: the float model's accuracy (fraction).
        accuracy: the accuracy column.
        logx: a logarithmic x axis.
        xlabel: the x axis label (with units); defaults to ``x``.
        label: the legend entry of the curve.
        title: the axes title.
        references: other accuracies (fractions) drawn as dotted lines, e.g. ``{"QAT uint8": 0.98}``.
    """
    base = _baseline(baseline)
    if x not in frame:
        raise ValueError(f"x={x!r} is not a column; allowed: {list(frame.columns)}")
    accuracy, ylabel, name = _metric(frame, accuracy)
    ax = _axes(ax, (8, 4.8))
    points = frame.assign(_acc=_percent(frame, accuracy))
    grouped = points.groupby(x, sort=True)["_acc"]
    xs, mean = np.asarray(grouped.mean().index), grouped.mean().to_numpy()
    std = grouped.std(ddof=1).to_numpy() if (grouped.size() > 1).any() else None
    ax.plot(xs, mean, linewidth=2, color="#4c72b0", label=label or "quantized")
    if std is not None:
        ax.errorbar(xs, mean, yerr=np.nan_to_num(std), fmt="none", ecolor="#4c72b0", capsize=4, linewidth=1.5,
                    label=f"± std over {int(grouped.size().max())} seeds")
    if "significant" in frame:
        state = points.groupby(x, sort=True)["significant"].agg(_point_state).to_numpy()
        for kind, style in (("significant", {"marker": "o", "markerfacecolor": "#4c72b0"}),
                            ("noise", {"marker": "o", "markerfacecolor": "white"}),
                            ("reference", {"marker": "*", "markersize": 16, "markerfacecolor": "#c44e52"})):
            pick = state == kind
            if pick.any():
                text = {"significant": "differs from the reference", "noise": "no significant difference",
                        "reference": "reference point"}[kind]
                ax.plot(xs[pick], mean[pick], linestyle="none", markeredgecolor="#4c72b0",
                        markersize=style.pop("markersize", 8), label=text, **style)
    else:
        ax.plot(xs, mean, linestyle="none", marker="o", color="#4c72b0")
    _draw_baseline(ax, base)
    for (name, value), color in zip((references or {}).items(), ("#c44e52", "#55a868", "#8172b3")):
        ax.axhline(100 * checks.number(name, value, low=0, high=1), color=color, linestyle=":",
                   linewidth=2, label=f"{name} {100 * value:.2f} %")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{name} vs {xlabel or x}", fontsize=FONT + 1)
    ax.legend(loc="lower right", fontsize=FONT - 2)
    return ax


def stats_heatmap(frame, baseline: float, correct: InputStats | None = None, *, accuracy: str = "accuracy",
                  ax=None):
    """Accuracy over a mean x std grid, the correct stats marked with a star.

    A ``screened`` column (``screening.sweep``) hatches the cells whose accuracy is a subset estimate
    (``~`` before the number): those points were clearly worse than the best on a few images and were not
    evaluated on all of them.

    Args:
        frame: a ``sweep`` (or ``screening.sweep``) DataFrame with ``mean``, ``std`` and ``accuracy`` columns.
        baseline: the float model's accuracy (fraction), shown in the title and colour bar.
        correct: the right ``(mean, std)``; marked when it is on the grid.
        ax: axes to draw on; ``None`` makes a new figure.
    """
    base = _baseline(baseline)
    accuracy, label, name = _metric(frame, accuracy)
    for col in ("mean", "std", accuracy):
        if col not in frame:
            raise ValueError(f"frame lacks column {col!r}; allowed: a mean/std sweep DataFrame")
    table = frame.assign(_acc=_percent(frame, accuracy)).pivot_table(index="std", columns="mean", values="_acc")
    ax = _axes(ax, (9, 6))
    image = ax.imshow(table.values, origin="lower", cmap="viridis", vmin=0, vmax=100, aspect="auto")
    screened = np.zeros(table.shape, dtype=bool)
    if "screened" in frame:
        screened = frame.assign(_s=frame["screened"].astype(bool)).pivot_table(
            index="std", columns="mean", values="_s", aggfunc="any").reindex_like(table).fillna(False).to_numpy(bool)
    for (i, j), v in np.ndenumerate(table.values):
        if np.isfinite(v):
            ax.text(j, i, ("~" if screened[i, j] else "") + f"{v:.0f}", ha="center", va="center",
                    fontsize=FONT - 1 if table.size <= 100 else FONT - 4, color="black" if v > 60 else "white")
    ax.set_xticks(range(len(table.columns)), [f"{m:g}" for m in table.columns], rotation=45)
    ax.set_yticks(range(len(table.index)), [f"{s:g}" for s in table.index])
    ax.set_xlabel("mean (input byte that stands for 0.0)", fontsize=FONT)
    ax.set_ylabel("std (bytes per unit of input)", fontsize=FONT)
    bar = ax.figure.colorbar(image, ax=ax)
    bar.set_label(label, fontsize=FONT)
    bar.ax.axhline(base, **BASELINE_STYLE)
    if "significant" in frame:  # the sweep's paired test against its reference (by default the best point)
        marks = frame.assign(_noise=within_noise(frame["significant"]),
                             _ref=[is_reference(v) and np.isfinite(a) for v, a in zip(frame["significant"],
                                                                                     _percent(frame, accuracy))])
        noise = marks.pivot_table(index="std", columns="mean", values="_noise", aggfunc="all").reindex_like(table)
        ref = marks.pivot_table(index="std", columns="mean", values="_ref", aggfunc="any").reindex_like(table)
        from matplotlib.patches import Rectangle

        for (i, j), v in np.ndenumerate(noise.values):
            if v is True or v == 1:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="..", edgecolor="white",
                                       linewidth=0, label="_noise"))
            if ref.values[i, j] is True or ref.values[i, j] == 1:
                ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="red", linewidth=2,
                                       label="_reference"))
        ax.text(0.0, -0.16 if len(table.columns) <= 10 else -0.2, "dotted: no significant difference from the "
                "red-framed reference point (exact McNemar)", transform=ax.transAxes, fontsize=FONT - 2)
    handles = []
    if screened.any():
        from matplotlib.patches import Patch, Rectangle

        for i, j in zip(*np.nonzero(screened)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="#bbbbbb",
                                   linewidth=0, label="_screened"))
        sizes = sorted({int(n) for n in frame.loc[frame["screened"].astype(bool), "images_evaluated"]}) \
            if "images_evaluated" in frame else []
        on = f" on {', '.join(f'{n:,}' for n in sizes)} images" if sizes else ""
        handles.append(Patch(fill=False, hatch="//", edgecolor="#888888", label=f"~ screened: estimated{on}"))
    if correct is not None and correct.mean in table.columns and correct.std in table.index:
        handles += ax.plot(list(table.columns).index(correct.mean), list(table.index).index(correct.std),
                           marker="*", markersize=22, markerfacecolor="none", markeredgecolor="red",
                           markeredgewidth=2, linestyle="none",
                           label=f"correct stats ({correct.mean + 0.0:g}, {correct.std:g})")
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=FONT - 2)
    ax.set_title(f"{name} (%) over mean x std; float baseline {base:.2f} % (dashed on the colour bar)",
                 fontsize=FONT)
    return ax


def input_histogram(stats: InputStats, pixels: np.ndarray, train_range: tuple[float, float], *, ax=None):
    """The pixels as the model reads them, ``(q - mean)/std``, against the training range.

    Codes inside the training range are blue, codes outside it (clipped pixels,
    wasted codes) red; the training range is the shaded band. ``update_input_histogram``
    redraws it for new stats in place.
    """
    lo, hi = checks.range_pair("train_range", train_range)
    ax = _axes(ax, (8, 4.2))
    ax.axvspan(lo, hi, color="#55a868", alpha=0.15, label=f"trained on [{lo:g}, {hi:g}]")
    counts = input_codes.pixel_counts(pixels)
    ax.stairs(np.zeros(256), np.arange(257.0), fill=True, color="#4c72b0", gid="inside",
              label="codes in the training range")
    ax.stairs(np.zeros(256), np.arange(257.0), fill=True, color="#c44e52", gid="outside",
              label="codes outside it (clipped / wasted)")
    ax.set_xlabel("real input value the model sees, (q - mean) / std", fontsize=FONT)
    ax.set_ylabel("number of test pixels (log)", fontsize=FONT)
    ax.legend(loc="upper right", fontsize=FONT - 3)
    update_input_histogram(ax, stats, counts, (lo, hi))
    ax.set_ylim(0.8, counts.max() * 3)  # fixed first, so the log scale never autoscales an empty bar
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())  # decades are enough, and redraws stay fast
    return ax


def update_input_histogram(ax, stats: InputStats, counts: np.ndarray, train_range: tuple[float, float]):
    """Move the histogram drawn by ``input_histogram`` to new stats (no new artists); returns ``ax``."""
    lo, hi = train_range
    usage = input_codes.code_usage(stats, (lo, hi))
    edges = (np.arange(257.0) - 0.5 - stats.mean) / stats.std
    centers = (np.arange(256.0) - stats.mean) / stats.std
    tol = 0.01 / stats.std
    inside = (centers >= lo - tol) & (centers <= hi + tol)
    patches = {p.get_gid(): p for p in ax.patches}
    patches["inside"].set_data(np.where(inside, counts, 0), edges)
    patches["outside"].set_data(np.where(inside, 0, counts), edges)
    left, right = min(lo, edges[0]), max(hi, edges[-1])
    pad = 0.05 * (right - left)
    ax.set_xlim(left - pad, right + pad)
    clipped = counts[~inside].sum() / max(counts.sum(), 1)
    ax.set_title(f"mean={stats.mean + 0.0:g}, std={stats.std:.4g}: {usage.codes_in_range} codes in range, "
                 f"{usage.wasted_codes} wasted, {100 * clipped:.1f} % of pixels clipped", fontsize=FONT)
    return ax


def accuracy_gauge(values: dict[str, float], baseline: float, *, ax=None, title: str = "Accuracy",
                   xlabel: str = "accuracy (%)"):
    """A few named accuracies (fractions) as bars, the float baseline drawn; ``update_gauge`` moves them
    (``xlabel``: ``float_reference.AGREEMENT_LABEL`` for agreements with the float model)."""
    base = _baseline(baseline)
    ax = _axes(ax, (8, 0.6 * len(values) + 1.5))
    names = list(values)
    ax.barh(range(len(names)), [100 * values[n] for n in names], color="#4c72b0", gid="gauge")
    ax.set_yticks(range(len(names)), names, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    _draw_baseline(ax, base, vertical=True)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    ax.legend(loc="lower right", fontsize=FONT - 2)
    update_gauge(ax, values)
    return ax


def update_gauge(ax, values: dict[str, float]):
    """Set the bar lengths and value labels of an ``accuracy_gauge`` in place; returns ``ax``."""
    bars = [p for p in ax.patches if p.get_gid() == "gauge"]
    for text in [t for t in ax.texts if t.get_gid() == "gauge-label"]:
        text.remove()
    ax.set_yticks(range(len(bars)), list(values)[: len(bars)], fontsize=FONT)
    for bar, value in zip(bars, values.values()):
        bar.set_width(100 * value)
        inside = value > 0.2  # the label sits inside long bars, clear of the baseline
        ax.text(100 * value, bar.get_y() + bar.get_height() / 2, f" {100 * value:.2f} % " if inside
                else f" {100 * value:.2f} %", va="center", ha="right" if inside else "left",
                color="white" if inside else "black", fontsize=FONT, fontweight="bold", gid="gauge-label")
    return ax


def fake_quant_ranges(table, *, ax=None):
    """The ranges QAT learned, one horizontal bar per fake-quant (``input_codes.fake_quant_table`` rows)."""
    for col in ("layer", "quantizer", "min", "max"):
        if col not in table:
            raise ValueError(f"table lacks column {col!r}; allowed: a input_codes.fake_quant_table DataFrame")
    ax = _axes(ax, (9, 0.4 * len(table) + 1.5))
    y = np.arange(len(table))
    ax.barh(y, table["max"] - table["min"], left=table["min"], color="#8172b3")
    ax.set_yticks(y, [f"{l} / {q}" for l, q in zip(table["layer"], table["quantizer"])], fontsize=FONT - 2)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("learned range (real value)", fontsize=FONT)
    ax.set_title("What QAT inserted: fake-quant ranges learned in training", fontsize=FONT + 1)
    return ax


def _metric(frame, column: str) -> tuple[str, str, str]:
    """The column to draw, its axis label and its name: ``agreement`` for the default ``accuracy`` column of a
    sweep without labels (``float_reference.metric_of``), else ``column``."""
    if column == "accuracy" and metric_of(frame) == "agreement":
        return "agreement", AGREEMENT_LABEL, "Agreement with the float model"
    return column, "test accuracy (%)", "Accuracy"


def _within_noise(frame) -> list[bool]:
    """Per row: compared with a reference and not significantly different (``significant`` is False)."""
    return within_noise(frame["significant"]) if "significant" in frame else [False] * len(frame)


def _point_state(values) -> str:
    """A swept point over its seeds: the reference, within noise, or significantly different."""
    values = list(values)
    if all(is_reference(v) for v in values):
        return "reference"
    return "significant" if all(not is_reference(v) and bool(v) for v in values) else "noise"


def _std_pts(frame) -> np.ndarray | None:
    if "accuracy_std_pts" not in frame:
        return None
    std = np.asarray(frame["accuracy_std_pts"], dtype=float)
    return np.nan_to_num(std) if np.isfinite(std).any() else None


def _axes(ax, size: tuple[float, float]) -> Any:
    """The given axes, or the axes of a new figure of ``size`` inches."""
    return new_axes(size) if ax is None else ax


def _baseline(baseline: float) -> float:
    return 100 * checks.number("baseline", baseline, low=0, high=1)


def _draw_baseline(ax, base_pct: float, vertical: bool = False) -> None:
    label = f"float baseline {base_pct:.2f} %"
    (ax.axvline if vertical else ax.axhline)(base_pct, label=label, **BASELINE_STYLE)


def _percent(frame, column: str) -> np.ndarray:
    if column not in frame:
        raise ValueError(f"accuracy column {column!r} not in the frame; allowed: {list(frame.columns)}")
    values = np.asarray(frame[column], dtype=float)
    return values if column.endswith("_pct") else 100 * values
