"""New matplotlib figures that belong to the caller: no pyplot state, and they show themselves in Jupyter.

Every plotting function of the workbench (``plots``, ``layer_error.plot_layer_errors``,
``graph_tables.plot_op_chain``, ``report``) draws on the axes it is given, or on a
new figure made here when given ``ax=None``. A figure made here is a
``matplotlib.figure.Figure``: pyplot never hears of it, so nothing global
changes, nothing has to be closed, and no other figure is shown or replaced.

Jupyter draws a figure as an image only through a PNG formatter, which
matplotlib's inline backend registers the first time pyplot makes a figure (or
on ``%matplotlib inline``). ``Figure`` here also has ``_repr_png_``, so
``ax.figure`` as a cell's last expression, or ``display(ax.figure)``, shows the
image whether or not pyplot was ever used.
"""

from __future__ import annotations

import io
from typing import Any

# How a bar within noise of its reference is drawn (hatched, pale), in every figure that marks one.
NOISE_STYLE = {"hatch": "///", "alpha": 0.45, "edgecolor": "#555555"}

import numpy as np
from matplotlib.figure import Figure as _MatplotlibFigure


class Figure(_MatplotlibFigure):
    """A ``matplotlib.figure.Figure`` that Jupyter displays as a PNG."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(size: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A new figure of ``size`` inches, not registered with pyplot."""
    return Figure(figsize=size, layout=layout)


def new_axes(size: tuple[float, float], layout: str | None = "constrained") -> Any:
    """The single Axes of a new figure (``new_figure``); its figure is ``ax.figure``."""
    return new_figure(size, layout).subplots()


def panels(ax: Any, count: int, size: tuple[float, float], layout: str | None = "constrained") -> list[Any]:
    """The ``count`` axes a drawing of several panels uses: the given ones, or a new figure's, side by side.

    Raises:
        ValueError: ``ax`` is not ``None`` and does not hold exactly ``count`` axes.
    """
    if ax is None:
        return list(new_figure(size, layout).subplots(1, count))
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != count:
        raise ValueError(f"ax has {len(axes)} axes; allowed: {count} axes (one per panel) or None")
    return axes
