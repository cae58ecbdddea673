"""How close a quantized model's outputs stay to the float model's, for any model, with no labels needed.

``f`` is the float model's output and ``q`` the quantized model's, dequantized with its own scale and zero
point; both have the same shape, one row per input, ``(N, ...)``. Every sum and mean runs in float64.

- ``snr_db = 10·log10(Σ f² / Σ (q − f)²)`` over every element of the output and every input; ``inf`` when
  ``q == f`` exactly, ``-inf`` when ``f`` is all zeros and ``q`` is not.
- ``cosine``: the mean over the N inputs of ``f_i·q_i / (‖f_i‖ ‖q_i‖)``, each input's output flattened; a pair
  of all-zero rows counts 1.0, one all-zero row beside a non-zero one 0.0.
- ``max_abs = max |q − f|`` over every element.
- ``psnr = 10·log10(peak² / mean((q − f)²))`` with ``peak = max(f) − min(f)`` over the whole output (every
  element of every input); ``inf`` when equal. For image-to-image ("dense") outputs.
- classifiers (``(N, K)`` outputs, trailing dimensions flattened):
  ``agreement = mean(argmax q == argmax f)`` (ties go to the first class, numpy's ``argmax``), with its exact
  Clopper-Pearson binomial interval (``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``, 95 % by
  default), as an ``Estimate``;
  ``kl = mean_i Σ_k f_ik · ln(f_ik / q_ik)`` in nats, only when ``f``'s rows are probabilities
  (``is_probability``), else ``None``. ``q`` is clipped to at least ``KL_EPSILON = 1e-6`` (a quantized softmax
  writes exact zeros) and both rows are renormalised to sum to 1 before the log; terms with ``f_ik = 0`` are 0.

A row is a probability vector when it is non-negative and ``|Σ_k x_k − 1| ≤ min(K/512, 0.05)``: half a step
of 1/256 per class, the most that rounding each of K probabilities to a uint8 (or int8) softmax's grid of
scale 1/256 can move the sum, capped at 0.05 so a wide output that is not a softmax is not let through.
Measured: the 10-class MobileNet-style net on ``digits`` (1,797 images) run by LiteRT after ``legacy-uint8``
(uint8 output, scale 1/256) and after ``int8-ptq`` (int8 softmax, float output) sums to within 0.0078
(two steps) of 1, which 1e-3 would refuse; random softmax rows rounded to 1/256 reach 0.0117 for K = 10 and
0.047 for K = 100 (both inside the tolerance). Above about 500 classes a uint8 softmax can round most of its
mass to zero and is not recognised; a float softmax sums to 1 within ~1e-7 at any K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import checks

KINDS = ("classifier", "dense", "generic")
KL_EPSILON = 1e-6
HALF_STEP = 0.5 / 256  # half a step of a uint8/int8 softmax's output scale, 1/256
MAX_SUM_TOLERANCE = 0.05


@dataclass(frozen=True)
class Estimate:
    """A proportion over ``count`` inputs and its interval ``[low, high]``."""

    value: float
    low: float
    high: float
    count: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def snr_db(f: Any, q: Any) -> float:
    """Signal-to-noise ratio of ``q`` against ``f`` in dB: ``10·log10(Σ f² / Σ (q − f)²)`` over every element."""
    f, q = _pair(f, q)
    noise = float(np.sum((q - f) ** 2))
    signal = float(np.sum(f ** 2))
    return ratio_db(signal, noise)


def cosine(f: Any, q: Any) -> float:
    """Mean over inputs of the cosine similarity of each input's flattened outputs (zero rows: see the module)."""
    f, q = _rows(*_pair(f, q))
    nf = np.linalg.norm(f, axis=1)
    nq = np.linalg.norm(q, axis=1)
    both = nf * nq
    dot = np.einsum("ij,ij->i", f, q)
    sims = np.where(both > 0, dot / np.where(both > 0, both, 1.0), np.where((nf == 0) & (nq == 0), 1.0, 0.0))
    return float(np.mean(np.clip(sims, -1.0, 1.0)))


def max_abs(f: Any, q: Any) -> float:
    """The largest ``|q − f|`` over every element."""
    f, q = _pair(f, q)
    return float(np.max(np.abs(q - f)))


def agreement(f: Any, q: Any, level: float = 0.95) -> Estimate:
    """How often the quantized model's top class is the float model's, with the exact binomial interval.

    ``f``, ``q``: ``(N, K)`` classifier outputs (trailing dimensions flattened). ``level``: the interval's
    confidence level (Clopper-Pearson, ``scipy.stats.binomtest(k, n).proportion_ci(..., method="exact")``).
    """
    from scipy.stats import binomtest

    level = _level(level)
    f, q = _rows(*_pair(f, q))
    k = int(np.sum(np.argmax(f, axis=1) == np.argmax(q, axis=1)))
    n = len(f)
    interval = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return Estimate(value=k / n, low=float(interval.low), high=float(interval.high), count=n)


def is_probability(x: Any) -> bool:
    """Whether every row of ``x`` (``(N, ...)``, flattened per input) is non-negative and sums to 1.

    A row of K values may miss 1 by ``min(K/512, 0.05)``: half a step of 1/256 per class, what rounding to a
    uint8 or int8 softmax's grid can cost (measured on real LiteRT runs: see the module docstring).
    """
    x = _rows(_array("x", x))
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x < 0):
        return False
    return bool(np.all(np.abs(x.sum(axis=1) - 1.0) <= sum_tolerance(x.shape[1])))


def sum_tolerance(classes: int) -> float:
    """How far from 1 a probability row of ``classes`` values may sum: ``min(classes/512, 0.05)``."""
    return min(classes * HALF_STEP, MAX_SUM_TOLERANCE)


def kl(f: Any, q: Any) -> float | None:
    """Mean over inputs of ``KL(f‖q)`` in nats when ``f``'s rows are probabilities, else ``None``.

    ``q`` is clipped to at least ``KL_EPSILON`` (1e-6) and renormalised, ``f`` renormalised (a uint8 reference
    sums to 1 only within ``sum_tolerance``); a term with ``f = 0`` counts 0. An output against itself gives 0
    (within K·1e-6 when it holds exact zeros, which the clipping lifts).
    """
    f, q = _rows(*_pair(f, q))
    if not is_probability(f):
        return None
    p = f / f.sum(axis=1, keepdims=True)
    r = np.maximum(q, KL_EPSILON)
    r = r / r.sum(axis=1, keepdims=True)
    positive = p > 0
    terms = np.where(positive, p * (np.log(np.where(positive, p, 1.0)) - np.log(r)), 0.0)
    return max(0.0, float(np.mean(terms.sum(axis=1))))


def psnr(f: Any, q: Any) -> float:
    """Peak signal-to-noise ratio in dB: ``10·log10(peak² / mean((q − f)²))``, ``peak = max(f) − min(f)``."""
    f, q = _pair(f, q)
    mse = float(np.mean((q - f) ** 2))
    peak = float(np.max(f) - np.min(f))
    return ratio_db(peak ** 2, mse)


def output_metrics(f: Any, q: Any, kind: str) -> dict[str, Any]:
    """Every metric that fits one output of kind ``"classifier"``, ``"dense"`` or ``"generic"``.

    Always ``snr_db``, ``cosine``, ``max_abs``; a classifier adds ``agreement`` (an ``Estimate``) and ``kl``
    (``None`` unless ``f`` holds probabilities); a dense (image-to-image) output adds ``psnr``.

    Raises:
        ValueError: an unknown kind, shapes that differ, no input at all.
    """
    checks.choice("kind", kind, KINDS)
    f, q = _pair(f, q)
    found: dict[str, Any] = {"snr_db": snr_db(f, q), "cosine": cosine(f, q), "max_abs": max_abs(f, q)}
    if kind == "classifier":
        found["agreement"] = agreement(f, q)
        found["kl"] = kl(f, q)
    elif kind == "dense":
        found["psnr"] = psnr(f, q)
    return found


def ratio_db(signal: float, noise: float) -> float:
    """``10·log10(signal / noise)``: ``inf`` without noise, ``-inf`` with noise and no signal."""
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _array(name: str, value: Any) -> np.ndarray:
    x = np.asarray(value, dtype=np.float64)
    if x.ndim < 1:
        raise ValueError(f"{name} has shape {x.shape}; allowed: one row per input, (N, ...)")
    return x


def _pair(f: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both outputs as float64, checked to have one shape and at least one input."""
    f, q = _array("f", f), _array("q", q)
    if f.shape != q.shape:
        raise ValueError(f"the quantized output has shape {q.shape} and the float output {f.shape}; "
                         "allowed: the same shape, one row per input")
    if f.shape[0] == 0 or f.size == 0:
        raise ValueError(f"the outputs have shape {f.shape}; allowed: at least one input and one value")
    return f, q


def _rows(*arrays: np.ndarray):
    """Each array as ``(N, everything else)``."""
    flat = tuple(a.reshape(len(a), -1) for a in arrays)
    return flat[0] if len(flat) == 1 else flat


def _level(level: Any) -> float:
    value = checks.number("level", level, low=0, low_open=True, high=1)
    if value >= 1:
        raise ValueError(f"level={level!r} is out of range; allowed: 0 < level < 1")
    return value
