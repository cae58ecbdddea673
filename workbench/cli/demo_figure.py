"""The demo's figure: accuracy and size of every recipe against its equal-budget float reference.

It keeps the plotting contract of ``plots``: ``ax=None`` draws a new figure
(not registered with pyplot), and a drawing of several panels returns its ``Figure``.
Rows whose difference from their reference is within noise (``significant`` False)
are drawn hatched and pale; with several seeds each bar carries its standard deviation.
"""

from __future__ import annotations

import numpy as np

from ..core.figures import NOISE_STYLE


def accuracy_size_figure(frame, ax=None, metric: str = "test accuracy (%)", top: float | None = 100.0):
    """Two panels: accuracy per recipe (each float reference drawn) and model size in KB.

    Args:
        frame: ``demo.results_frame`` output (columns recipe, model, accuracy_pct, size_kb, activations;
            optional ``accuracy_std_pts`` for error bars, ``significant`` and ``verdict`` for the noise marks).
        ax: two axes to draw on (accuracy, size); ``None`` makes a new figure.
        metric, top: what ``accuracy_pct`` holds (e.g. the agreement with the float model, or its SNR in dB
            for data without labels) and its axis' upper end (``None``: the data's).

    Returns:
        The matplotlib ``Figure`` holding the two panels (not shown, no global state touched).
    """
    from ..core.figures import panels

    ax_acc, ax_size = panels(ax, 2, (11, 0.45 * len(frame) + 2.6))
    labels = [f"{r} ({m})" if m != "float" else r for r, m in zip(frame["recipe"], frame["model"])]
    y = np.arange(len(frame))
    acc = np.asarray(frame["accuracy_pct"], dtype=float)
    colors = ["#4c72b0" if "float" in str(a) and "int" not in str(a) else "#dd8452" for a in frame["activations"]]
    noise = _within_noise(frame)
    std = np.asarray(frame["accuracy_std_pts"], dtype=float) if "accuracy_std_pts" in frame else np.full(len(y), np.nan)
    xerr = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
    for i in y:
        style = NOISE_STYLE if noise[i] else {}
        ax_acc.barh(i, acc[i], color=colors[i], **style)
        ax_size.barh(i, frame["size_kb"].iloc[i], color=colors[i])
    if xerr is not None:
        ax_acc.errorbar(acc, y, xerr=xerr, fmt="none", ecolor="black", capsize=3, linewidth=1,
                        label="± std over seeds")
    references = _references(frame)
    for (name, value), style in zip(references.items(), ("--", ":")):
        ax_acc.axvline(value, color="black", linestyle=style, linewidth=1.2,
                       label=f"{name} {value:.2f}{' %' if top == 100.0 else ''}")
    finite = acc[np.isfinite(acc)]
    lo = max(0.0, min(np.nanmin(acc - (xerr if xerr is not None else 0)), *references.values()) - 2) \
        if len(finite) else 0.0
    ax_acc.set_xlim(lo, top if top is not None else (1.1 * float(finite.max()) if len(finite) else 1.0))
    ax_acc.set_yticks(list(y), labels, fontsize=9)
    ax_acc.invert_yaxis()
    ax_acc.set_xlabel(metric)
    ax_acc.set_title("Accuracy by recipe (hatched: no significant difference from its reference)", fontsize=10)
    ax_acc.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=9, frameon=False, ncol=2)
    for i, v in enumerate(acc):
        ax_acc.text(v + (xerr[i] if xerr is not None else 0), i, f" {v:.2f}" + (" n.s." if noise[i] else ""),
                    va="center", fontsize=8)
    ax_size.set_yticks(list(y), [""] * len(frame))
    ax_size.invert_yaxis()
    ax_size.set_xlabel("model size (KB)")
    ax_size.set_title("Size by recipe (blue: float activations, orange: integer)", fontsize=10)
    for i, v in enumerate(frame["size_kb"]):
        ax_size.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    return ax_acc.figure


def _within_noise(frame) -> list[bool]:
    """Rows whose difference from their reference is not significant (reference rows are not)."""
    from ..core.compare import within_noise

    return within_noise(frame["significant"]) if "significant" in frame else [False] * len(frame)


def _references(frame) -> dict[str, float]:
    """The float reference rows' accuracies, by name (the first row when the frame names none)."""
    refs = frame[frame["verdict"] == "reference"] if "verdict" in frame and "epochs" in frame else frame.iloc[:0]
    if not len(refs):
        return {"float baseline": float(frame["accuracy_pct"].iloc[0])}
    return {f"{model} ({epochs} epoch{'s' if int(epochs) != 1 else ''})": float(acc)
            for model, epochs, acc in zip(refs["model"], refs["epochs"], refs["accuracy_pct"])}
