"""One position of an explorer's sliders: convert with its parameters, measure, and say what it gave.

``stats_view`` (mean/std) and ``range_view`` (default ranges) are what ``widgets``' explorers call on every
slider move, and what tests call directly. With labels a view measures the accuracy; without labels
(``labels=None``) the agreement with the float model (``float_reference``: the reference recipe's
conversion of the same model, its outputs on the same images) and ``snr_db``, the accuracy NaN. ``score``
is the figure an explorer shows: the accuracy, or without labels the agreement.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import checks, measure
from ..core import recipes as registry
from ..core.convert import ConvertedModel, QuantizationWarning, convert
from ..core.data import InputSpec
from ..core.evaluate import evaluate
from ..core.stats import InputStats
from ..core.stats_patch import GuardedConverter
from . import float_reference as floats
from .input_codes import CodeUsage, code_usage


@dataclass(frozen=True)
class StatsView:
    """One position of the mean/std sliders and what it gave."""

    requested: InputStats
    effective: InputStats  # what the model really reads its input with
    accuracy: float  # NaN without labels
    count: int
    usage: CodeUsage
    stats_ignored: bool
    converted: ConvertedModel = field(repr=False)
    predictions: np.ndarray | None = field(default=None, repr=False)  # on the live images, for paired tests
    agreement: float | None = None  # without labels: with the float model's classes (fraction)
    snr_db: float | None = None  # without labels: of the output against the float model's

    @property
    def score(self) -> float:
        """What the explorer shows: the accuracy, or without labels the agreement with the float model."""
        return self.accuracy if self.agreement is None else self.agreement


@dataclass(frozen=True)
class RangeView:
    """One position of the default-range sliders and what it gave."""

    default_ranges: tuple[float, float]
    accuracy: float  # NaN without labels
    count: int
    came_out_float: bool
    converted: ConvertedModel = field(repr=False)
    agreement: float | None = None  # without labels: with the float model's classes (fraction)
    snr_db: float | None = None

    @property
    def score(self) -> float:
        """What the explorer shows: the accuracy, or without labels the agreement with the float model."""
        return self.accuracy if self.agreement is None else self.agreement


def recipe_options(parameter: str) -> tuple[str, ...]:
    """The registered recipes an explorer can drive: those taking ``parameter`` (``"mean"``, ``"default_ranges"``)."""
    return registry.names(taking=parameter)


def stats_view(model_dir: Any, images: np.ndarray, labels: np.ndarray | None, mean: float, std: float,
               spec: InputSpec = InputSpec(), recipe: str = "legacy-uint8",
               default_ranges: tuple[float, float] | None = None,
               converter: GuardedConverter | None = None, reference: measure.Reference | None = None) -> StatsView:
    """Convert with ``(mean, std)``, evaluate on ``images``, and measure the input-code usage.

    ``default_ranges`` goes along for a float model (no QAT ranges), which would otherwise
    come out float and ignore the stats; recipes that do not take it get none. ``converter`` (a
    ``core.stats_patch.GuardedConverter`` of ``model_dir``, as the explorer keeps one) patches the
    stats into bytes a real conversion has checked instead of converting again. ``labels=None``: measured
    against the float model's outputs on ``images`` (``reference``, as an explorer keeps them; else taken here).

    Raises:
        ValueError: mean outside [0, 255], std <= 0, or bad images/labels.
    """
    requested = InputStats(mean, std)
    extra = {"default_ranges": default_ranges} if default_ranges is not None and \
        registry.get(recipe).takes("default_ranges") else {}
    converted = _convert(model_dir, recipe, spec, "mean", converter, mean=requested.mean, std=requested.std, **extra)
    accuracy, count, predictions, fidelity = measured(model_dir, converted, images, labels, spec, reference)
    effective = converted.effective_stats or requested
    usage = code_usage(effective, (spec.lo, spec.hi), images)
    return StatsView(requested, effective, accuracy, count, usage, converted.stats_ignored, converted,
                     predictions, **fidelity)


def range_view(model_dir: Any, images: np.ndarray, labels: np.ndarray | None, lo: float, hi: float,
               spec: InputSpec = InputSpec(), recipe: str = "legacy-uint8",
               reference: measure.Reference | None = None) -> RangeView:
    """Convert with ``default_ranges=(lo, hi)`` and evaluate on ``images`` (``labels=None``: as ``stats_view``).

    Raises:
        ValueError: ``lo >= hi`` or bad images/labels.
    """
    lo, hi = checks.range_pair("default_ranges", (lo, hi))
    converted = _convert(model_dir, recipe, spec, "default_ranges", None, default_ranges=(lo, hi))
    accuracy, count, _, fidelity = measured(model_dir, converted, images, labels, spec, reference)
    return RangeView((lo, hi), accuracy, count, converted.came_out_float, converted, **fidelity)


def measured(model: Any, converted: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec,
             reference: measure.Reference | None = None) -> tuple[float, int, np.ndarray | None, dict[str, Any]]:
    """``(accuracy, count, predictions, fidelity)`` of ``converted`` on ``images``: with labels ``evaluate``'s
    (``fidelity`` empty), without them the accuracy NaN and ``{"agreement": ..., "snr_db": ...}`` against the
    float model (``reference``, else the float conversion of ``model`` run here)."""
    if labels is not None:
        result = evaluate(converted, images, labels, spec)
        return result.accuracy, result.count, result.predictions, {}
    images = checks.images("images", images)
    ref = reference if reference is not None else floats.float_reference(model, images, spec)
    columns, predictions = floats.fidelity_columns(ref, measure.outputs_of(converted, images, spec))
    return math.nan, len(images), predictions, {"agreement": columns["agreement"], "snr_db": columns["snr_db"]}


def _convert(model_dir: Any, recipe: str, spec: InputSpec, parameter: str, converter: GuardedConverter | None,
             **params: Any) -> ConvertedModel:
    checks.choice("recipe", recipe, recipe_options(parameter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # shown in the readout instead
        if converter is not None:
            return converter(registry.recipe(recipe, **params))
        return convert(model_dir, recipe, spec=spec, **params)
