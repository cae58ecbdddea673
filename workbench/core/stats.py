"""The uint8 input-stats arithmetic (``quantized_input_stats`` / mean and std).

A uint8 input tensor reads a byte ``q`` as the real value ``(q - mean) / std``;
in TFLite terms its quantization is ``scale = 1/std``, ``zero_point = mean``.
If training fed values in ``[lo, hi]`` the bytes 0..255 must span that range:
``std = 255 / (hi - lo)`` and ``mean`` is the byte that stands for 0.0.

How one ``(mean, std)`` uses the 256 codes is measured here too: ``code_usage`` for raw pixels fed as
bytes (pixels read as a value outside the training range, codes standing for values training never
produced), ``value_codes`` for real values quantized with the stats (values clipped at code 0 or 255,
codes no value lands on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import checks


@dataclass(frozen=True)
class InputStats:
    """The ``(mean, std)`` pair the legacy converter's ``quantized_input_stats`` takes."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        checks.number("mean", self.mean, low=0, high=255)
        checks.number("std", self.std, low=0, low_open=True)

    @property
    def scale(self) -> float:
        return 1.0 / self.std

    @property
    def zero_point(self) -> int:
        return int(round(self.mean))

    def real_range(self) -> tuple[float, float]:
        """The real interval the bytes 0..255 can represent."""
        return ((0 - self.mean) / self.std, (255 - self.mean) / self.std)

    def to_real(self, q: np.ndarray) -> np.ndarray:
        """What the model sees for bytes ``q``: ``(q - mean) / std``."""
        return (np.asarray(q, dtype=np.float32) - self.mean) / self.std

    def to_bytes(self, real: np.ndarray) -> np.ndarray:
        """Quantize real values with these stats (rounded, clipped to 0..255)."""
        q = np.round(np.asarray(real, dtype=np.float64) * self.std + self.mean)
        return np.clip(q, 0, 255).astype(np.uint8)

    @classmethod
    def from_quantization(cls, scale: float, zero_point: int) -> "InputStats":
        """The stats a converted model actually uses, from its input tensor's quantization."""
        checks.number("scale", scale, low=0, low_open=True)
        return cls(mean=float(zero_point), std=1.0 / float(scale))


def stats_for_range(lo: float, hi: float) -> InputStats:
    """The stats that map bytes 0..255 onto the training range ``[lo, hi]``.

    >>> stats_for_range(0.0, 1.0)
    InputStats(mean=0.0, std=255.0)
    >>> stats_for_range(-1.0, 1.0)
    InputStats(mean=127.5, std=127.5)
    """
    lo, hi = checks.range_pair("input range", (lo, hi))
    std = 255.0 / (hi - lo)
    mean = -lo * std + 0.0  # + 0.0 turns -0.0 (lo = 0) into 0.0
    if not 0 <= mean <= 255:
        raise ValueError(
            f"input range=({lo:g}, {hi:g}) does not contain 0.0, so no byte can stand for the real value 0 "
            "(a uint8 input reads byte q as (q - mean) / std with mean in 0..255); allowed: lo <= 0 <= hi, "
            "e.g. (0, 1) or (-1, 1)")
    return InputStats(mean=float(mean), std=float(std))


CODES = np.arange(256, dtype=np.float64)


@dataclass(frozen=True)
class CodeUsage:
    """What one ``(mean, std)`` does to the input codes and to a set of pixels.

    Attributes:
        stats: the stats the model reads its input with.
        train_range: ``(lo, hi)`` the model was trained on.
        code_range: the real values of bytes 0 and 255.
        codes_in_range: how many of the 256 codes stand for a value in the training range.
        wasted_codes: ``256 - codes_in_range``.
        unreachable: fraction of the training range no code reaches (0 = fully covered).
        clipped_fraction: fraction of the given pixels read as a value outside the training range.
        step: the real distance between two neighbouring codes (``1/std``).
    """

    stats: InputStats
    train_range: tuple[float, float]
    code_range: tuple[float, float]
    codes_in_range: int
    wasted_codes: int
    unreachable: float
    clipped_fraction: float
    step: float

    def summary(self) -> dict[str, float]:
        """One flat row for a table."""
        return {"mean": self.stats.mean + 0.0, "std": self.stats.std, "codes_in_range": self.codes_in_range,
                "wasted_codes": self.wasted_codes, "unreachable_pct": round(100 * self.unreachable, 1),
                "clipped_pct": round(100 * self.clipped_fraction, 2)}


def code_usage(stats: InputStats, train_range: tuple[float, float],
               pixels: np.ndarray | None = None) -> CodeUsage:
    """Measure how ``stats`` maps the uint8 codes (and ``pixels``) onto ``train_range``.

    Args:
        stats: the ``(mean, std)`` of the uint8 input.
        train_range: ``(lo, hi)``, the float range training fed the model.
        pixels: raw uint8 pixels (any shape); ``None`` reports no clipping.

    Returns:
        ``CodeUsage``.

    Raises:
        ValueError: ``stats`` is not an ``InputStats`` or ``train_range`` is not ``lo < hi``.
    """
    if not isinstance(stats, InputStats):
        raise ValueError(f"stats={stats!r}; allowed: an InputStats(mean, std)")
    lo, hi = checks.range_pair("train_range", train_range)
    real = (CODES - stats.mean) / stats.std
    tol = 0.01 / stats.std  # a hundredth of a code: float32 scales are not exact
    inside = (real >= lo - tol) & (real <= hi + tol)
    code_lo, code_hi = float(real[0]), float(real[-1])
    covered = max(0.0, min(hi, code_hi) - max(lo, code_lo))
    clipped = 0.0
    if pixels is not None:
        counts = pixel_counts(pixels)
        clipped = float(counts[~inside].sum() / max(counts.sum(), 1))
    return CodeUsage(stats=stats, train_range=(lo, hi), code_range=(code_lo, code_hi),
                     codes_in_range=int(inside.sum()), wasted_codes=int((~inside).sum()),
                     unreachable=float(1.0 - covered / (hi - lo)), clipped_fraction=clipped,
                     step=float(1.0 / stats.std))


def pixel_counts(pixels: np.ndarray) -> np.ndarray:
    """How many pixels take each byte value 0..255 (length-256 int array).

    Raises:
        ValueError: ``pixels`` is not uint8.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"pixels has dtype {arr.dtype}; allowed: uint8 (raw bytes 0..255)")
    return np.bincount(arr.reshape(-1), minlength=256)


@dataclass(frozen=True)
class ValueCodes:
    """What quantizing real values with one ``(mean, std)`` does to them: ``code = round(x * std + mean)``.

    Attributes:
        stats: the stats of the uint8 input.
        data_range: the smallest and largest value given.
        code_range: the real values of codes 0 and 255.
        clipped: share of the values whose code falls below 0 or above 255 (clipped to them).
        unused: share of the 256 codes no value lands on.
    """

    stats: InputStats
    data_range: tuple[float, float]
    code_range: tuple[float, float]
    clipped: float
    unused: float


def value_codes(stats: InputStats, values: Any) -> ValueCodes:
    """Quantize ``values`` (real numbers, any shape, at least one) with ``stats`` and count what clips and what
    goes unused (``ValueCodes``)."""
    if not isinstance(stats, InputStats):
        raise ValueError(f"stats={stats!r}; allowed: an InputStats(mean, std)")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not x.size:
        raise ValueError("values is empty; allowed: at least one real value")
    codes = np.round(x * stats.std + stats.mean)
    clipped = float(np.mean((codes < 0) | (codes > 255)))
    used = np.unique(np.clip(codes, 0, 255)).size
    return ValueCodes(stats, (float(x.min()), float(x.max())), stats.real_range(), clipped, 1.0 - used / 256)
