"""Answers that stop when they are sure: a recipe measured on growing random subsets of the inputs until the interval
of its difference from the reference is narrow enough, or excludes no difference.

``plan(precision, count)`` fixes, once per call of ``recipe_table.run_recipes``, one seeded permutation of the inputs
and the looks: the first ``FIRST`` inputs of it, then twice as many at each look, then all of them. Every recipe is
measured on the same prefix of that permutation, so every row stays paired with the reference's same inputs (the
reference itself is measured on every input). ``measured`` runs one conversion look by look, feeding only the new
inputs of each look, and stops at the first look where it is sure:

* with labels, the paired accuracy difference against the reference (``compare.paired_correct``: the exact McNemar
  test and the paired interval) excludes 0 and the exact test rejects: the row is surely better or worse;
* without labels, the agreement with the float model's classes (``fidelity.agreement``, the exact binomial
  interval; the reference agrees with itself, so its difference is the agreement minus 1) has its interval
  below 1;
* or the interval lies within ``±precision`` points of its estimate. With labels and no input on which exactly one
  of the two is right, the paired interval is the single point 0 and says nothing of its width; there the bound is
  the share of inputs whose class differs (``1 -`` the agreement's low end), which the accuracy difference never
  exceeds.

Looking several times inflates the chance of a wrong answer; the level is kept by a Bonferroni split: each of the
``K`` looks that can stop (every look but the last) uses ``alpha / K`` (``compare.ALPHA`` = 0.05), so the chance
that any stopping claim is wrong is at most ``alpha``. A row that never is sure runs to the last look and is
measured on every input, in order, as without a precision. The figures of a stopped row (accuracy, agreement and its
95 % interval, the paired test in the report) are the usual ones computed on the inputs it used, paired with the
reference's same inputs; the split-level interval that stopped it is in its words (``Stop.words``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import checks, fidelity, measure
from .compare import ALPHA, format_p, paired_correct
from .samples import Samples

FIRST = 50  # inputs at the first look
SEED = 0  # of the one permutation every recipe of a call shares


def sizes(count: int, first: int = FIRST) -> tuple[int, ...]:
    """How many inputs each look has seen: ``first``, twice that, ... and finally ``count``."""
    looks, n = [], max(1, min(first, count))
    while n < count:
        looks.append(n)
        n *= 2
    return (*looks, count)


@dataclass(frozen=True, eq=False)
class Plan:
    """The looks of one call: ``precision`` in points, the inputs seen at each look, the order they are taken in."""

    precision: float
    sizes: tuple[int, ...]
    order: np.ndarray
    alpha: float = ALPHA

    @property
    def count(self) -> int:
        return self.sizes[-1]

    @property
    def look_alpha(self) -> float:
        """The level of each look that can stop: ``alpha`` split over them (Bonferroni)."""
        return self.alpha / max(1, len(self.sizes) - 1)


def plan(precision: float | None, count: int, *, alpha: float = ALPHA, first: int = FIRST,
         seed: int = SEED) -> Plan | None:
    """The looks for ``count`` inputs, or ``None`` (``precision=None``: every input, as without early stopping).

    Raises:
        ValueError: ``precision`` not a number > 0.
    """
    if precision is None:
        return None
    precision = checks.number("precision", precision, low=0, low_open=True)
    return Plan(precision, sizes(count, first), np.random.default_rng(seed).permutation(count), alpha)


@dataclass(frozen=True, eq=False)
class Stop:
    """A row measured on part of the inputs: which (``rows``, in the order taken), of how many, and why in words.
    ``reference``: the reference's ``EvalResult`` on the same rows (with labels), for the paired figures."""

    rows: np.ndarray
    count: int
    words: str
    reference: Any = None

    def said_after(self, outcome: str) -> str:
        """A row's ``outcome`` with where and why it stopped (in its place when it is only ``"ok"``)."""
        return self.words if outcome == "ok" else f"{outcome.rstrip('.')}; {self.words}"

    def take(self, values: Any) -> Any:
        """``values`` (one per input) on the rows this row used."""
        return None if values is None else np.asarray(values)[self.rows]


@dataclass(frozen=True, eq=False)
class Measured:
    """One conversion's outputs and fidelity, on every input (``stop`` ``None``) or on the rows it stopped at."""

    outputs: measure.Outputs
    fidelity: measure.Fidelity | None
    stop: Stop | None = None

    def take(self, values: Any) -> Any:
        """``values`` (one per input) on the inputs measured."""
        return values if self.stop is None or values is None else self.stop.take(values)


def measured(plan: Plan | None, reference: measure.Reference, converted: Any, samples: Samples, spec: Any) -> Measured:
    """``converted`` on ``samples``: every input when ``plan`` is ``None`` (or the reference has no classes to pair
    with), else look by look until it is sure (see the module)."""
    task = reference.task
    if plan is None or reference.values is None or task.roles[task.main] != "classifier" or len(plan.sizes) < 2:
        ran = measure.outputs_of(converted, samples, spec)
        return Measured(ran, reference.fidelity(ran))
    values: tuple[np.ndarray, ...] = ()
    seconds, seen = 0.0, 0
    for n in plan.sizes:
        ran = measure.outputs_of(converted, samples.take(plan.order[seen:n]), spec)
        values = ran.values if not values else tuple(np.concatenate(pair) for pair in zip(values, ran.values))
        seconds, seen = seconds + ran.seconds, n
        outputs = measure.Outputs(ran.names, values, seconds)
        if n == plan.count:
            break
        rows = plan.order[:n]
        words = sure(plan, reference, outputs, rows)
        if words:
            base = measure.Outputs(reference.values.names, tuple(v[rows] for v in reference.values.values))
            return Measured(outputs, measure.measure(base, outputs, task, samples.take(rows)),
                            Stop(rows, plan.count, words))
    back = np.argsort(plan.order)  # never sure: every input, back in its own order
    outputs = measure.Outputs(outputs.names, tuple(v[back] for v in outputs.values), seconds)
    return Measured(outputs, reference.fidelity(outputs))


def sure(plan: Plan, reference: measure.Reference, outputs: measure.Outputs, rows: np.ndarray) -> str:
    """Why a look on ``rows`` is sure, in words (``""``: not yet): the interval of the difference from the
    reference, at the look's level, excludes 0 or lies within ``±plan.precision`` points of its estimate."""
    main = reference.task.main
    base = measure.Outputs(reference.values.names, tuple(v[rows] for v in reference.values.values))
    f = base.values[main]
    q = outputs.values[measure.align(base, outputs)[main]]  # the reference on the same rows: shapes match
    level = 1 - plan.look_alpha
    agree = fidelity.agreement(f, q, level=level)
    labels = reference.samples.labels
    said = f"at {100 * level:.4g} %: alpha {plan.alpha:g} split over {len(plan.sizes) - 1} looks"
    start = f"stopped early at {len(rows)} of {plan.count}"
    if labels is not None:
        truth = labels[rows]
        test = paired_correct(_classes(f) == truth, _classes(q) == truth, alpha=plan.look_alpha)
        estimate, low, high = test.difference, test.ci_low, test.ci_high
        if test.significant and (low > 0 or high < 0):
            return (f"{start}: accuracy {100 * estimate:+.2f} pts against the reference, interval "
                    f"{100 * low:+.2f} to {100 * high:+.2f} excludes 0, {format_p(test.p_value)} ({said})")
        if not test.discordant:  # the paired interval is the point 0: the class disagreement bounds the difference
            low, high = agree.low - 1, 1 - agree.low
    else:
        estimate, low, high = agree.value - 1, agree.low - 1, agree.high - 1
        if high < 0:
            return (f"{start}: agreement {agree.value:.3f} with the float model, interval [{agree.low:.3f}, "
                    f"{agree.high:.3f}] below 1 ({said})")
    reach = 100 * max(estimate - low, high - estimate)
    if reach < plan.precision:
        return f"{start}: interval ±{reach:.2f} pts, narrower than ±{plan.precision:g} ({said})"
    return ""


def _classes(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1).argmax(axis=1)
