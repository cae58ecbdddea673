"""Where the bits go: the ranges QAT learns, and how the 256 input codes land on the training range.

``fake_quant_table`` lists what quantization-aware training inserted: one row
per fake-quant (weights, activations, the input) with the range it learned;
values outside a range are clipped, and ``2**bits`` levels are spread over it.

A uint8 input reads byte ``q`` as ``(q - mean) / std``. The model learned
its weights for values in the training range ``[lo, hi]``. Three things can
go wrong when the stats do not match that range:

* **clipped**: pixels whose value lands outside ``[lo, hi]``; the model never
  saw such values, and the fixed activation ranges after the first layer
  saturate on them;
* **wasted codes**: codes that stand for values outside ``[lo, hi]``, i.e.
  precision spent on values training never produced;
* **unreachable range**: the part of ``[lo, hi]`` no code can express (the
  input is squashed into a corner of what the model expects).

With the right stats all 256 codes span ``[lo, hi]`` exactly: nothing is
clipped, wasted or unreachable. Pixels of any image shape count alike (grayscale or
colour, every channel read with the same stats), and ``fake_quant_table`` reads any
tfmot QAT model (LeNet, the MobileNet-style net's per-channel ``kernel`` and
``depthwise_kernel`` quantizers, a user's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import checks
from ..core.stats import InputStats

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


def fake_quant_table(model: Any):
    """The fake-quant ranges of a QAT Keras model, one row per quantizer.

    Args:
        model: a QAT model (``train_qat`` / ``quantize_model`` / ``trained_lenet`` or ``trained_mobilenet``
            with ``qat=...``, or a user's tfmot model loaded with ``load_source``).

    Returns:
        A pandas DataFrame with ``layer``, ``quantizer`` (``kernel``,
        ``post_activation``, ``pre_activation`` or ``input``), ``min``, ``max``
        (over channels for per-channel weights) and ``channels``.

    Raises:
        ValueError: ``model`` has no fake-quant variables (a float model).
    """
    import pandas as pd

    rows = []
    for layer in getattr(model, "layers", []):
        found: dict[str, dict[str, np.ndarray]] = {}
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            for end in ("_min", "_max"):
                if name.endswith(end):
                    found.setdefault(name[: -len(end)], {})[end[1:]] = np.asarray(weight.numpy()).reshape(-1)
        for quantizer, pair in found.items():
            if set(pair) != {"min", "max"}:
                continue
            label = "input" if quantizer == layer.name else quantizer
            rows.append({"layer": layer.name.removeprefix("quant_"), "quantizer": label,
                         "min": float(pair["min"].min()), "max": float(pair["max"].max()),
                         "channels": int(pair["min"].size)})
    if not rows:
        raise ValueError(f"model {getattr(model, 'name', type(model).__name__)!r} has no fake-quant ranges; "
                         "allowed: a QAT model (train_qat / quantize_model)")
    return pd.DataFrame(rows)
