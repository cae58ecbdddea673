"""The uint8 input-stats arithmetic (``quantized_input_stats`` / mean and std).

A uint8 input tensor reads a byte ``q`` as the real value ``(q - mean) / std``;
in TFLite terms its quantization is ``scale = 1/std``, ``zero_point = mean``.
If training fed values in ``[lo, hi]`` the bytes 0..255 must span that range:
``std = 255 / (hi - lo)`` and ``mean`` is the byte that stands for 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass

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
