"""Argument checks shared by the public functions.

Each check raises ``ValueError`` naming the parameter, the value it got and
what is allowed, so a typo in a notebook cell reads as a sentence, not a
stack trace from deep inside TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, integer: bool = False) -> float:
    """Check that ``value`` is a finite number within ``[low, high]`` (or ``(low, high]``)."""
    allowed = _describe(low, high, low_open, integer)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name}={value!r} is not finite; allowed: {allowed}")
    if integer and int(value) != value:
        raise ValueError(f"{name}={value!r} is not a whole number; allowed: {allowed}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")
    if high is not None and value > high:
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}")
    return int(value) if integer else float(value)


def choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}")
    return value


def range_pair(name: str, value: Any, limit: float = 1e6) -> tuple[float, float]:
    """Check a ``(min, max)`` pair of finite numbers with ``min < max``, each within ``[-limit, limit]``.

    The limit keeps degenerate ranges (``±1e30``, where every real value lands on one
    quantization step) out; activations and inputs of real models sit far inside it.
    """
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a (min, max) pair; allowed: two finite numbers with min < max") from None
    lo = number(f"{name}[0] (min)", lo, low=-limit, high=limit)
    hi = number(f"{name}[1] (max)", hi, low=-limit, high=limit)
    if not lo < hi:
        raise ValueError(f"{name}={value!r} has min >= max; allowed: min < max")
    return lo, hi


def images(name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Check an image batch: uint8 pixels ``(N, H, W, C)`` (``(N, H, W)`` gains ``C = 1``), N >= 1.

    Args:
        name: the parameter's name, for the message.
        value: the array.
        shape: the ``(H, W, C)`` the model reads; ``None`` accepts any.
    """
    arr = value if getattr(value, "rows_on_demand", False) else np.asarray(value)  # data.NpyRows stays lazy
    if arr.ndim == 3:
        arr = arr.reshape(*arr.shape, 1)
    if arr.ndim != 4:
        raise ValueError(f"{name} has shape {arr.shape}; allowed: (N, H, W, C) or (N, H, W) images")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}: images of {tuple(arr.shape[1:])}, but the model reads "
                         f"{tuple(shape)}; allowed: (N, {', '.join(map(str, shape))})")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty; allowed: at least one image")
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} has dtype {arr.dtype}; allowed: uint8 pixels 0..255")
    return arr


def labels(name: str, value: Any, count: int, classes: int | None = None) -> np.ndarray:
    """Check integer class labels: ``count`` of them, each in ``0..classes-1``; returns int64."""
    arr = np.asarray(value).reshape(-1)
    if len(arr) != count:
        raise ValueError(f"{name} has {len(arr)} entries for {count} images; allowed: one label per image")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer)
                         or (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                             and np.all(arr == np.round(arr)))):
        raise ValueError(f"{name} has dtype {arr.dtype} with non-integer values; allowed: integer class indices")
    arr = arr.astype(np.int64)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        top = f"{classes - 1}" if classes is not None else "the class count - 1"
        if lo < 0 or (classes is not None and hi >= classes):
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} contains {bad}; allowed: class indices 0..{top}"
                             + (f" (the model has {classes} classes)" if classes is not None else ""))
    return arr


def _describe(low, high, low_open, integer) -> str:
    kind = "a whole number" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{kind} <= {high:g}"
    return kind


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (at most ``limit`` characters); its type's name when the
    message is empty, so a caller never gets an ``IndexError`` in place of the error it was reporting."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]


def keyed(name: str, value: str, items, what: str):
    """The item of ``items`` whose ``key`` is ``value``; otherwise a ``ValueError`` naming ``name``, the value,
    ``what`` the items are (``"in the catalog"``) and every key allowed."""
    for item in items:
        if item.key == value:
            return item
    raise ValueError(f"{name}={value!r} is not {what}; allowed: {', '.join(item.key for item in items)}")
