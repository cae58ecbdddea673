"""Converted models side by side on one test set: a table, each ``EvalResult`` and each paired test.

``compare_models`` is also ``sweep.compare`` (its name in the notebooks); the statistics are ``core.compare``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..core import checks
from ..core.compare import comparison_columns, paired
from ..core.data import InputSpec


@dataclass(frozen=True)
class Comparison:
    """Several converted models on one test set: a table and each ``EvalResult``."""

    table: Any  # pandas DataFrame, one row per model, the reference first
    results: dict[str, Any]
    baseline: float  # the first (reference) model's accuracy
    tests: dict[str, Any] = field(default_factory=dict)  # label -> core.compare.PairedComparison

    def summary(self) -> str:
        """One line per compared model: its difference from the reference, interval, p-value and verdict."""
        reference = self.table["model"].iloc[0]
        lines = []
        for _, row in self.table.iloc[1:].iterrows():
            name = row["model"]
            if name in self.tests:
                lines.append(f"{name} vs {reference}: {self.tests[name].summary()}")
            else:
                lines.append(f"{name} vs {reference}: {row['verdict']}")
        return "\n".join(lines)


def compare_models(models: Mapping[str, Any], images: np.ndarray, labels: np.ndarray,
                   spec: InputSpec = InputSpec(), epochs: Mapping[str, int] | None = None) -> Comparison:
    """Evaluate converted models side by side; the first one is the reference (usually float32).

    Every other model is compared with the reference on the same images (``core.compare``: exact
    McNemar test and 95 % interval). Two trained models are compared only at the same training
    budget: given ``epochs``, a row whose budget differs from the reference's is shown but not tested.

    Args:
        models: ``{label: ConvertedModel}`` in display order.
        images, labels: the uint8 test set.
        spec: the float range the models were trained on.
        epochs: ``{label: training epochs}`` of each model's trained source (optional; adds an
            ``epochs`` column and the budget check).

    Returns:
        ``Comparison`` whose table has ``model``, ``recipe``, ``accuracy_pct``, ``delta_pts``,
        ``ci_low_pts``, ``ci_high_pts``, ``p_value``, ``significant`` (empty for the reference),
        ``verdict``, ``size_kb``, ``images_per_s``, ``agreement_pct``, ``input`` (and ``epochs``).

    Raises:
        ValueError: no models, bad images/labels, or ``epochs`` missing a model.
    """
    import pandas as pd

    from ..core.evaluate import evaluate

    if not models:
        raise ValueError("models is empty; allowed: a dict {label: ConvertedModel} with at least one entry")
    if epochs is not None:
        missing = [name for name in models if name not in epochs]
        if missing:
            raise ValueError(f"epochs has no entry for {missing}; allowed: one budget per model in models")
    labels = checks.labels("labels", labels, len(checks.images("images", images)))
    results, rows, tests, reference, ref_name = {}, [], {}, None, None
    for name, model in models.items():
        result = evaluate(model, images, labels, spec, reference=reference)
        if reference is None:
            reference, ref_name = result, name
        results[name] = result
        row = {"model": name, "recipe": model.recipe.label(), "accuracy_pct": round(100 * result.accuracy, 2)}
        if epochs is not None:
            row["epochs"] = epochs[name]
        if result is reference:
            row.update(comparison_columns(discordant=False))
        elif epochs is not None and epochs[name] != epochs[ref_name]:
            row.update(comparison_columns(
                verdict=f"not compared: {epochs[name]} vs {epochs[ref_name]} training epochs",
                delta_pts=round(100 * (result.accuracy - reference.accuracy), 2), discordant=False))
        else:
            tests[name] = paired(reference, result, labels)
            row.update(comparison_columns(tests[name], discordant=False))
        row.update({"size_kb": round(model.size_kb, 1), "images_per_s": round(result.images_per_second),
                    "agreement_pct": None if result.agreement is None else round(100 * result.agreement, 2),
                    "input": model.input.dtype})
        rows.append(row)
    return Comparison(pd.DataFrame(rows), results, reference.accuracy, tests)
