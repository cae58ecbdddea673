"""Grid points of a sweep: every combination of a few axes, the mean/std grid, points checked and made plain."""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

import numpy as np

from ..core import checks
from ..core.data import InputSpec

CONVERT_KEYS = ("mean", "std", "default_ranges", "calibration_size", "io_type")
TRAIN_KEYS = ("bits", "qat_epochs", "scheme", "learned_input_range")
Points = Mapping[str, Iterable[Any]] | Iterable[Mapping[str, Any]]


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the given axes, as a list of points.

    >>> grid(mean=[0, 127.5], std=[255])
    [{'mean': 0, 'std': 255}, {'mean': 127.5, 'std': 255}]

    Raises:
        ValueError: no axes, or an axis with no values.
    """
    if not axes:
        raise ValueError("grid() got no axes; allowed: keyword lists such as mean=[...], std=[...]")
    values = {}
    for name, vals in axes.items():
        vals = list(vals) if not isinstance(vals, (str, bytes)) else [vals]
        if not vals:
            raise ValueError(f"grid axis {name}=[] is empty; allowed: at least one value")
        values[name] = vals
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def stats_grid(spec: InputSpec = InputSpec(), size: int = 7) -> list[dict[str, float]]:
    """A mean x std grid (mean 0..255 linear, std 1..1000 log) that contains the correct stats and (0, 1).

    Args:
        spec: the training range; its correct ``(mean, std)`` is added to the axes.
        size: values per axis before the correct point is added (2..40).
    """
    size = checks.number("size", size, low=2, high=40, integer=True)
    right = spec.stats
    means = sorted({*np.round(np.linspace(0, 255, size), 2).tolist(), right.mean})
    stds = sorted({*np.round(np.geomspace(1, 1000, size), 2).tolist(), 1.0, right.std})
    return grid(mean=means, std=stds)


def as_points(points: Points, allowed: tuple[str, ...] = CONVERT_KEYS, other: str = "sweep_training"
              ) -> list[dict[str, Any]]:
    """A grid dict or a list of dicts as a list of points with plain values, every key in ``allowed``.

    Raises:
        ValueError: not a dict or list of dicts, no points, a key not in ``allowed`` (naming ``other``, the
            sweep that takes it).
    """
    if isinstance(points, Mapping):
        pts = grid(**points)
    else:
        try:
            pts = [dict(p) for p in points]
        except (TypeError, ValueError):
            raise ValueError(f"points={points!r}; allowed: a dict of value lists or a list of dicts") from None
    if not pts:
        raise ValueError("points is empty; allowed: at least one point")
    pts = [{k: _plain(v) for k, v in p.items()} for p in pts]  # values taken from numpy or a DataFrame
    for p in pts:
        unknown = set(p) - set(allowed)
        if unknown:
            hint = f" ({other}() takes {sorted(unknown)})" if unknown <= set(CONVERT_KEYS + TRAIN_KEYS) else ""
            raise ValueError(f"unknown sweep key(s) {sorted(unknown)}{hint}; allowed: {', '.join(allowed)}")
    return pts


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (in tuples too); anything else as it is."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def best_point(frame, column: str = "accuracy") -> dict[str, Any]:
    """The row with the highest ``column`` as a dict (ties: the first); a sweep without labels is ranked by its
    ``agreement`` with the float model in place of the accuracy it does not have."""
    from .float_reference import metric_of

    if column == "accuracy":
        column = metric_of(frame)
    if column not in frame or frame[column].isna().all():
        raise ValueError(f"column={column!r} has no values; allowed: one of {list(frame.columns)}")
    return frame.loc[frame[column].idxmax()].to_dict()
