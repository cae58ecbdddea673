"""The demo's figure: accuracy and size of every recipe against the float baseline.

It keeps the plotting contract of ``plots``: ``ax=None`` draws a new figure
(not registered with pyplot), and a drawing of several panels returns its ``Figure``.
"""

from __future__ import annotations


def accuracy_size_figure(frame, ax=None):
    """Two panels: accuracy per recipe (float baseline drawn) and model size in KB.

    Args:
        frame: ``demo.results_frame`` output (columns recipe, accuracy_pct, size_kb).
        ax: two axes to draw on (accuracy, size); ``None`` makes a new figure.

    Returns:
        The matplotlib ``Figure`` holding the two panels (not shown, no global state touched).
    """
    from ..core.figures import panels

    ax_acc, ax_size = panels(ax, 2, (11, 4.8))
    labels = [f"{r} ({m})" if m != "float" else r for r, m in zip(frame["recipe"], frame["model"])]
    y = range(len(frame))
    base = float(frame["accuracy_pct"].iloc[0])
    colors = ["#4c72b0" if "float" in str(a) and "int" not in str(a) else "#dd8452" for a in frame["activations"]]
    ax_acc.barh(y, frame["accuracy_pct"], color=colors)
    ax_acc.axvline(base, color="black", linestyle="--", linewidth=1.2, label=f"float baseline {base:.2f} %")
    lo = max(0.0, min(frame["accuracy_pct"].min(), base) - 2)
    ax_acc.set_xlim(lo, 100)
    ax_acc.set_yticks(list(y), labels, fontsize=9)
    ax_acc.invert_yaxis()
    ax_acc.set_xlabel("test accuracy (%)")
    ax_acc.set_title("Accuracy by recipe")
    ax_acc.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=9, frameon=False)
    for i, v in enumerate(frame["accuracy_pct"]):
        ax_acc.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax_size.barh(y, frame["size_kb"], color=colors)
    ax_size.set_yticks(list(y), [""] * len(frame))
    ax_size.invert_yaxis()
    ax_size.set_xlabel("model size (KB)")
    ax_size.set_title("Size by recipe (blue: float activations, orange: integer)")
    for i, v in enumerate(frame["size_kb"]):
        ax_size.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    return ax_acc.figure
