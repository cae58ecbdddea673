"""Honest comparisons: is an accuracy difference between two models real, and how much do seeds move it?

This module owns the statistics behind every "model B is better than model A" the workbench prints:

* ``paired(reference, candidate, labels)`` — two models' predictions on the **same** labelled images. Each
  image is a pair (reference right or wrong, candidate right or wrong); only the *discordant* pairs (one
  right, the other wrong) carry information about the difference. The test is the exact McNemar test: a
  two-sided binomial test of the discordant pairs against 1/2 (``scipy.stats.binomtest``). The 95 % interval
  on the accuracy difference (candidate − reference) is the paired-t interval on the per-image correctness
  differences (``scipy.stats.ttest_rel(...).confidence_interval``), which for 0/1 outcomes is the Wald
  interval for the difference of paired proportions (Newcombe's method 1) with a t quantile. Both come from
  scipy; nothing here re-derives a distribution. The decision (``significant``) is the exact test's
  ``p < alpha``; the interval describes the size. The Wald interval is a little narrower than the exact
  test when there are few discordant pairs, so near ``p = alpha`` it can exclude 0 while the exact test
  does not reject: the verdict then reads "no significant difference (borderline)". With no discordant
  pair at all the interval is ``[0, 0]`` and ``p = 1``: the two models never disagreed.
* ``spread(values)`` — mean, standard deviation (``ddof=1``), min and max over training seeds.
* ``across_seeds(comparisons)`` — one verdict for N seeds, each compared on its own pair of models: the
  largest p-value, and "significant" only when every seed's difference is significant in the same direction.

On 10,000 test images a difference under about 0.2 points is usually noise; these functions say so instead
of leaving a reader to guess. Differences are reported in fractions here and in points (``*_pts``) in rows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

ALPHA = 0.05
NOT_SIGNIFICANT = "no significant difference"


@dataclass(frozen=True)
class PairedComparison:
    """Two models on the same images: the 2×2 table of right/wrong pairs, the difference, its test and interval.

    ``difference`` is candidate accuracy − reference accuracy (a fraction); ``ci_low``/``ci_high`` bound it
    (95 % by default); ``p_value`` is the exact McNemar test's.
    """

    n: int
    both_right: int
    reference_only: int  # the reference right, the candidate wrong
    candidate_only: int  # the candidate right, the reference wrong
    both_wrong: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float = ALPHA

    @property
    def reference_accuracy(self) -> float:
        return (self.both_right + self.reference_only) / self.n

    @property
    def candidate_accuracy(self) -> float:
        return (self.both_right + self.candidate_only) / self.n

    @property
    def discordant(self) -> int:
        """Images where exactly one of the two models is right: the only ones the test looks at."""
        return self.reference_only + self.candidate_only

    @property
    def significant(self) -> bool:
        """The exact test rejects "no difference" at ``alpha``."""
        return self.p_value < self.alpha

    @property
    def borderline(self) -> bool:
        """Not significant by the exact test, although the (approximate) interval excludes 0."""
        return not self.significant and (self.ci_low > 0 or self.ci_high < 0)

    @property
    def verdict(self) -> str:
        """``"no significant difference"`` (``" (borderline)"`` when the interval excludes 0 but the exact
        test does not reject), ``"significantly better"`` or ``"significantly worse"``."""
        if not self.significant:
            return NOT_SIGNIFICANT + (" (borderline)" if self.borderline else "")
        return "significantly better" if self.difference > 0 else "significantly worse"

    def summary(self) -> str:
        """One line, e.g. ``-2.79 points (95 % CI -3.12 to -2.46; p < 0.001): significantly worse``."""
        level = round(100 * (1 - self.alpha))
        return (f"{100 * self.difference:+.2f} points ({level} % CI {100 * self.ci_low:+.2f} to "
                f"{100 * self.ci_high:+.2f}; {format_p(self.p_value)}; {self.discordant} of {self.n:,} images "
                f"disagree): {self.verdict}")

    def row(self) -> dict[str, Any]:
        """The columns a table shows: ``delta_pts``, ``ci_low_pts``, ``ci_high_pts``, ``p_value``, ``significant``,
        ``discordant``, ``verdict``."""
        return {"delta_pts": round(100 * self.difference, 2), "ci_low_pts": round(100 * self.ci_low, 2),
                "ci_high_pts": round(100 * self.ci_high, 2), "p_value": self.p_value,
                "significant": self.significant, "discordant": self.discordant, "verdict": self.verdict}


def paired(reference: Any, candidate: Any, labels: Any, *, alpha: float = ALPHA) -> PairedComparison:
    """Compare two models' predictions on the same labelled images (exact McNemar test, 95 % interval).

    Args:
        reference, candidate: predicted class per image (arrays of N integers), or anything with a
            ``predictions`` attribute (an ``EvalResult``).
        labels: the N true labels.
        alpha: the test's level (the interval is ``1 - alpha``).

    Raises:
        ValueError: lengths that differ, no images, or ``alpha`` outside (0, 1).
    """
    labels = _vector("labels", labels)
    ref = _vector("reference", getattr(reference, "predictions", reference))
    cand = _vector("candidate", getattr(candidate, "predictions", candidate))
    for name, arr in (("reference", ref), ("candidate", cand)):
        if len(arr) != len(labels):
            raise ValueError(f"{name} has {len(arr)} predictions for {len(labels)} labels; "
                             "allowed: one prediction per labelled image")
    return paired_correct(ref == labels, cand == labels, alpha=alpha)


def paired_correct(reference_correct: Any, candidate_correct: Any, *, alpha: float = ALPHA) -> PairedComparison:
    """The same comparison from per-image correctness (booleans, one per image, same images in the same order).

    Raises:
        ValueError: lengths that differ, no images, values other than 0/1, or ``alpha`` outside (0, 1).
    """
    from scipy.stats import binomtest, ttest_rel

    alpha = _alpha(alpha)
    a = _booleans("reference_correct", reference_correct)
    b = _booleans("candidate_correct", candidate_correct)
    if len(a) != len(b):
        raise ValueError(f"candidate_correct has {len(b)} entries for {len(a)} in reference_correct; "
                         "allowed: the same images in the same order")
    both_right = int(np.sum(a & b))
    ref_only = int(np.sum(a & ~b))
    cand_only = int(np.sum(~a & b))
    both_wrong = len(a) - both_right - ref_only - cand_only
    difference = (cand_only - ref_only) / len(a)
    if ref_only + cand_only == 0:  # the models never disagree on correctness: nothing to test
        low = high = 0.0
        p_value = 1.0
    else:
        p_value = float(binomtest(cand_only, ref_only + cand_only, 0.5, alternative="two-sided").pvalue)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            interval = ttest_rel(b.astype(float), a.astype(float)).confidence_interval(1 - alpha)
        low, high = float(interval.low), float(interval.high)
    return PairedComparison(len(a), both_right, ref_only, cand_only, both_wrong, difference, low, high,
                            min(p_value, 1.0), alpha)


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation (``ddof=1``; NaN for one value), min, max and count of a few values."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def text(self, scale: float = 1.0, digits: int = 2) -> str:
        """``"97.15 ± 0.08 (97.05–97.24)"``, or just the value when there is one (``scale=100`` for percent)."""
        if self.n == 1:
            return f"{scale * self.mean:.{digits}f}"
        return (f"{scale * self.mean:.{digits}f} ± {scale * self.std:.{digits}f} "
                f"({scale * self.min:.{digits}f}–{scale * self.max:.{digits}f})")


def spread(values: Iterable[float]) -> Spread:
    """The spread of ``values`` (e.g. one accuracy per training seed).

    Raises:
        ValueError: no values, or a value that is not a finite number.
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("values is empty; allowed: at least one number (one per seed)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"values={arr.tolist()!r} has a value that is not finite; allowed: finite numbers")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
    return Spread(float(np.mean(arr)), std, float(np.min(arr)), float(np.max(arr)), int(arr.size))


def across_seeds(comparisons: Sequence[PairedComparison]) -> dict[str, Any]:
    """One verdict for a comparison repeated over seeds (each seed: its own reference and candidate models).

    Returns:
        ``delta_pts`` (mean over seeds) and ``delta_std_pts``, ``ci_low_pts``/``ci_high_pts`` (the widest
        per-seed interval: the lowest low, the highest high), ``p_value`` (the largest: the weakest seed),
        ``significant_seeds`` (``"k/N"``), ``significant`` (every seed significant, all in one direction)
        and ``verdict``. For one seed these are that seed's own values.

    Raises:
        ValueError: no comparisons.
    """
    comps = list(comparisons)
    if not comps or not all(isinstance(c, PairedComparison) for c in comps):
        raise ValueError(f"comparisons={comparisons!r}; allowed: a non-empty list of PairedComparison")
    deltas = spread(c.difference for c in comps)
    signs = {math.copysign(1, c.difference) for c in comps}
    k = sum(c.significant for c in comps)
    significant = k == len(comps) and len(signs) == 1
    if significant:
        verdict = "significantly better" if deltas.mean > 0 else "significantly worse"
    elif k == 0:
        verdict = NOT_SIGNIFICANT
    else:
        directions = {math.copysign(1, c.difference) for c in comps if c.significant}
        verdict = (f"{NOT_SIGNIFICANT} across seeds (significant in {k}/{len(comps)} seeds"
                   + (", in both directions)" if len(directions) > 1 else ")"))
    return {"delta_pts": round(100 * deltas.mean, 2),
            "delta_std_pts": round(100 * deltas.std, 2) if deltas.n > 1 else float("nan"),
            "ci_low_pts": round(100 * min(c.ci_low for c in comps), 2),
            "ci_high_pts": round(100 * max(c.ci_high for c in comps), 2),
            "p_value": max(c.p_value for c in comps), "significant": significant,
            "significant_seeds": f"{k}/{len(comps)}",
            "discordant": round(float(np.mean([c.discordant for c in comps])), 1),
            "verdict": verdict}


REFERENCE = "reference"  # the verdict of a reference row: the row the others are compared with


def comparison_columns(test: PairedComparison | Sequence[PairedComparison] | None = None, *,
                       verdict: str = REFERENCE, delta_pts: float = float("nan"), seeds: bool = False,
                       discordant: bool = True) -> dict[str, Any]:
    """The paired-comparison columns of one table row, the same names in every table, CSV and JSON.

    Args:
        test: the row's comparison with its reference (``PairedComparison.row()``), several seeds' comparisons
            (``across_seeds``), or ``None`` for a row without a test: the reference row itself (``verdict``
            ``"reference"``, ``delta_pts`` 0) or a row shown but not compared (its ``verdict`` says why,
            ``delta_pts`` is the plain accuracy difference or NaN).
        seeds: a row of a table over seeds: ``delta_std_pts`` and ``significant_seeds`` as well (blank when
            ``test`` is ``None``).
        discordant: keep the ``discordant`` column (images where exactly one model is right).

    Returns:
        ``delta_pts``, (``delta_std_pts``), ``ci_low_pts``, ``ci_high_pts``, ``p_value``, ``significant``
        (``None`` without a test), (``significant_seeds``), (``discordant``) and ``verdict``, in that order.
    """
    nan = float("nan")
    if isinstance(test, PairedComparison) and not seeds:
        row = test.row()
    elif test is not None:
        row = across_seeds([test] if isinstance(test, PairedComparison) else test)
    else:
        row = {"delta_pts": 0.0 if verdict == REFERENCE else delta_pts, "delta_std_pts": nan, "ci_low_pts": nan,
               "ci_high_pts": nan, "p_value": nan, "significant": None, "significant_seeds": "",
               "discordant": nan, "verdict": verdict}
        if not seeds:
            del row["delta_std_pts"], row["significant_seeds"]
    if not discordant:
        del row["discordant"]
    return row


def is_reference(significant: Any) -> bool:
    """A table's ``significant`` cell is empty (None, NaN, ""): the row is a reference, compared with nothing."""
    return significant is None or significant == "" or (isinstance(significant, float) and math.isnan(significant))


def within_noise(significant: Iterable[Any]) -> list[bool]:
    """Per row of a table's ``significant`` column: compared with a reference and not significantly different."""
    return [not is_reference(v) and not bool(v) for v in significant]


def format_p(p: float) -> str:
    """``"p < 0.001"``, ``"p = 0.032"`` or ``"p = 1"``; ``"–"`` for a missing value."""
    if p is None or not np.isfinite(p):
        return "–"
    if p < 0.001:
        return "p < 0.001"
    if p >= 0.9995:
        return "p = 1"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} is out of range; allowed: a number in (0, 1), e.g. 0.05")
    return float(alpha)


def _vector(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; allowed: one value per test image")
    return arr


def _booleans(name: str, value: Any) -> np.ndarray:
    arr = _vector(name, value)
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} has values other than 0/1 or True/False; allowed: per-image correctness")
        arr = arr.astype(bool)
    return arr
