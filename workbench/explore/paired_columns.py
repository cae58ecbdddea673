"""The paired columns of a sweep: every row tested against a reference point on the same images."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.compare import comparison_columns, paired


def check_against(against: Any, count: int) -> None:
    """Raise ``ValueError`` unless ``against`` is ``"best"``, ``None`` or a point position ``0..count-1``."""
    if against is None or against == "best":
        return
    if isinstance(against, bool) or not isinstance(against, (int, np.integer)) or not 0 <= against < count:
        raise ValueError(f"against={against!r}; allowed: 'best', None or a point position 0..{count - 1}")


def paired_columns(accuracy: list[float], predictions: list, labels: np.ndarray, against: Any,
                   point: list[int], seed: list[int]) -> list[dict[str, Any]]:
    """Each row against the reference point's row of the same seed (exact McNemar test, 95 % interval)."""
    if against is None:
        return [{} for _ in accuracy]
    means: dict[int, list[float]] = {}
    for p, a in zip(point, accuracy):
        means.setdefault(p, []).append(a)
    mean = {p: float(np.mean(v)) for p, v in means.items()}
    finite = {p: m for p, m in mean.items() if np.isfinite(m)}
    if against == "best":
        if not finite:
            return [{"reference_point": None} for _ in accuracy]
        ref = max(finite, key=lambda p: (finite[p], -p))  # ties: the first point
    else:
        ref = int(against)
    ref_rows = {s: i for i, (p, s) in enumerate(zip(point, seed)) if p == ref}
    out = []
    for i, (p, s) in enumerate(zip(point, seed)):
        cols: dict[str, Any] = {"reference_point": ref}
        j = ref_rows.get(s)
        if p == ref:
            cols.update(comparison_columns(discordant=False))
        elif j is None or predictions[i] is None or predictions[j] is None:
            cols.update(comparison_columns(verdict="not compared (no predictions)", discordant=False))
        else:
            cols.update(comparison_columns(paired(predictions[j], predictions[i], labels), discordant=False))
        out.append(cols)
    return out
