"""Screening sweeps: a big grid ranked on small nested image subsets, only the contenders evaluated on every image.

``sweep(model, points, images, labels)`` runs the exact ``sweep.sweep`` in rounds. The evaluation set is put
in a fixed random order (``seed``); round one evaluates every point on the first few hundred images of that
order, each later round evaluates the points still in the race on a longer prefix (the subsets are nested),
and the last round evaluates the survivors on the whole set, in its own order, so those rows are exactly the
exact sweep's rows (and share its point cache).

The rule that drops a point, and why it is honest:

* after a round on ``n`` images, every point with ``k`` correct gets the exact (Clopper-Pearson) binomial
  interval ``[ci_low, ci_high]`` (``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``);
* a point is dropped when its ``ci_high`` is below the largest ``ci_low`` of that round: it is clearly worse
  than some other point, not merely lower on this subset;
* every interval uses the confidence ``1 - alpha / (points x screening rounds)`` (Bonferroni over every
  interval the screening may compute), so with probability at least ``1 - alpha`` *all* of them hold at once.
  Each subset is a random sample of the test set, drawn without replacement, and such a sample varies less
  than the binomial the interval assumes: each interval covers the point's accuracy on the **whole** test set.
  Then a dropped point's full-set accuracy is at most its ``ci_high``, below another point's ``ci_low``, at
  most that point's full-set accuracy: a dropped point is never the exact sweep's best point, and the best
  point is evaluated on every image.

The result has the exact sweep's columns (one row per point, in order) plus ``images_evaluated``, ``screened``
(``True``: the row's accuracy is a subset estimate) and ``ci_low``/``ci_high`` (the interval above, at the same
confidence, on the images the row was evaluated on; the ``screening`` entry of ``frame.attrs`` records
``alpha``, the confidence, the rounds and the seed). The paired columns compare every row with the best point on
that row's own images. Screening saves evaluations, not conversions: each round converts its points again
(cheap when the conversions are).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..core import checks
from ..core.data import InputSpec
from . import sweep as exact

ALPHA = 0.05
MIN_ROUND = 100
EXTRA_COLUMNS = ("images_evaluated", "screened", "ci_low", "ci_high")


def default_stages(count: int) -> tuple[int, ...]:
    """The screening rounds for ``count`` images: 5 % and 20 % of them (at least 100 each), only those below ``count``.

    >>> default_stages(10000)
    (500, 2000)
    >>> default_stages(2000)
    (100, 400)
    """
    count = checks.number("count", count, low=1, integer=True)
    sizes = sorted({max(MIN_ROUND, count // 20), max(MIN_ROUND, count // 5)})
    return tuple(s for s in sizes if s < count)


def clopper_pearson(correct: int, total: int, confidence: float) -> tuple[float, float]:
    """The exact binomial interval for ``correct`` of ``total`` at ``confidence`` (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def sweep(model: Any, points: exact.Points, images: np.ndarray, labels: np.ndarray, *,
          stages: Sequence[int] | None = None, alpha: float = ALPHA, seed: int = 0,
          recipe: Any = "legacy-uint8", spec: InputSpec = InputSpec(), representative: np.ndarray | None = None,
          reference: Any = None, executor: Executor | str | None = "auto", cache: Any = None,
          progress: bool = True, desc: str = "screening"):
    """A mean/std (or any conversion) grid, screened on nested subsets; the contenders get every image.

    Args:
        model, points, images, labels, recipe, spec, representative, reference, cache, progress: as
            ``sweep.sweep`` (``reference`` predictions are subset with the images).
        stages: image counts of the screening rounds, increasing, each below ``len(images)``
            (default ``default_stages(len(images))``: 500 and 2,000 of 10,000); ``()`` is the exact sweep.
        alpha: the chance, over all intervals together, that any of them misses (0 < alpha < 1).
        seed: the fixed random order of the evaluation set the subsets are taken from.
        executor: ``"auto"`` (one process pool for all rounds when there are several cores and
            points), ``None`` (run here) or any ``Executor`` (used by every round).
        desc: the progress bars' label.

    Returns:
        The ``sweep.sweep`` DataFrame plus ``images_evaluated``, ``screened``, ``ci_low``, ``ci_high``
        (see the module docstring); ``frame.attrs["screening"]`` records the rule's parameters.

    Raises:
        ValueError: bad stages, alpha or seed, and everything ``sweep.sweep`` refuses, before any work.
    """
    import pandas as pd

    if not (executor is None or executor == "auto" or isinstance(executor, Executor)):
        raise ValueError(f"executor={executor!r}; allowed: 'auto', None or a concurrent.futures.Executor")
    alpha = checks.number("alpha", alpha, low=0, high=1, low_open=True)
    if alpha >= 1:
        raise ValueError(f"alpha={alpha!r} is out of range; allowed: 0 < alpha < 1")
    seed = checks.number("seed", seed, low=0, integer=True)
    pts = check_points(points, recipe, spec)
    shape, classes = exact.model_io(model)
    images = checks.images("images", images, shape=shape)
    labels = checks.labels("labels", labels, len(images), classes)
    count = len(images)
    sizes = default_stages(count) if stages is None else _stages(stages, count)
    ref = None if reference is None else np.asarray(getattr(reference, "predictions", reference)).reshape(-1)
    if ref is not None and len(ref) != count:
        raise ValueError(f"reference has {len(ref)} predictions for {count} images")
    confidence = 1 - alpha / (len(pts) * max(len(sizes), 1))
    order = np.random.default_rng(seed).permutation(count)
    common = dict(recipe=recipe, spec=spec, representative=representative, cache=cache, progress=progress)

    own = None
    if executor == "auto":
        workers = min(os.cpu_count() or 1, len(pts))
        executor = own = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) \
            if workers > 1 else None
    rows: dict[int, dict[str, Any]] = {}
    rounds: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, list[int]]] = []  # subset and its dropped points
    alive = list(range(len(pts)))
    try:
        for size in sizes:
            if not alive:
                break
            pick = order[:size]
            sub = (np.ascontiguousarray(images[pick]), labels[pick], None if ref is None else ref[pick])
            frame = exact.sweep(model, [pts[i] for i in alive], sub[0], sub[1], reference=sub[2],
                                executor=executor, desc=f"{desc}: {len(alive)} points on {size:,} images", **common)
            low, high = _intervals(frame["accuracy"], size, confidence)
            finite = np.isfinite(low)
            bar = low[finite].max() if finite.any() else np.inf
            dropped = []
            for j, i in enumerate(alive):
                if not finite[j] or high[j] < bar:  # refused conversions are not evaluated again
                    rows[i] = _row(frame, j, alive, size if finite[j] else 0, finite[j], low[j], high[j])
                    dropped.append(i)
            rounds.append((*sub, dropped))
            alive = [i for i in alive if i not in rows]
        if alive:
            frame = exact.sweep(model, [pts[i] for i in alive], images, labels, reference=ref, executor=executor,
                                desc=f"{desc}: {len(alive)} points on all {count:,} images", **common)
            low, high = _intervals(frame["accuracy"], count, confidence)
            for j, i in enumerate(alive):
                rows[i] = _row(frame, j, alive, count if np.isfinite(low[j]) else 0, False, low[j], high[j])
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
    best = _best(rows)
    if best is not None and cache is not False:
        _pair_with_best(model, pts, rows, rounds, best, common)
    frame = pd.DataFrame([rows[i] for i in range(len(pts))])
    frame["images_evaluated"] = frame["images_evaluated"].astype(int)
    frame["screened"] = frame["screened"].astype(bool)
    frame.attrs["screening"] = {"alpha": alpha, "confidence": confidence, "stages": [*sizes, count], "seed": seed}
    return frame


def describe(frame) -> str:
    """One line on what a screening sweep evaluated, e.g. ``56 points: 41 screened out on 500 images, ...``."""
    for col in EXTRA_COLUMNS:
        if col not in frame:
            raise ValueError(f"frame lacks column {col!r}; allowed: a screening.sweep DataFrame")
    parts = []
    for size, group in frame[frame["images_evaluated"] > 0].groupby("images_evaluated"):
        screened = int(group["screened"].sum())
        parts.append(f"{screened} screened out on {size:,} images" if screened else
                     f"{len(group)} evaluated on all {size:,} images")
    failed = int((frame["images_evaluated"] == 0).sum())
    if failed:
        parts.append(f"{failed} refused by the converter or runtime")
    info = frame.attrs.get("screening", {})
    tail = "" if "confidence" not in info else (f" (each interval at {100 * info['confidence']:.4g} % confidence, "
                                                f"all of them together at least {100 * (1 - info['alpha']):g} %)")
    return f"{len(frame)} points: " + ", ".join(parts) + tail


def check_points(points: exact.Points, recipe: Any = "legacy-uint8", spec: InputSpec = InputSpec()) -> list[dict]:
    """The points as a list of dicts, each checked as ``sweep.sweep`` checks it (keys and values), with no work.

    Raises:
        ValueError: no points, an unknown key, or a value the recipe refuses.
    """
    from dataclasses import replace

    from ..core.convert import Recipe

    pts = _points(points)
    base = Recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ValueError(f"recipe={recipe!r}; allowed: a Recipe or a recipe name")
    for p in pts:
        unknown = set(p) - set(exact.CONVERT_KEYS)
        if unknown:
            raise ValueError(f"unknown sweep key(s) {sorted(unknown)}; allowed: {', '.join(exact.CONVERT_KEYS)}")
        params = dict(p)
        if ("mean" in params) != ("std" in params):
            params.setdefault("mean", spec.stats.mean)
            params.setdefault("std", spec.stats.std)
        if params.get("default_ranges") is not None:
            params["default_ranges"] = tuple(checks.range_pair("default_ranges", params["default_ranges"]))
        replace(base, **params)
    return pts


def _points(points: Any) -> list[dict[str, Any]]:
    if isinstance(points, Mapping):
        pts = exact.grid(**points)
    else:
        try:
            pts = [dict(p) for p in points]
        except (TypeError, ValueError):
            raise ValueError(f"points={points!r}; allowed: a dict of value lists or a list of dicts") from None
    if not pts:
        raise ValueError("points is empty; allowed: at least one point")
    return pts


def _stages(stages: Iterable[int], count: int) -> tuple[int, ...]:
    try:
        sizes = [checks.number("stages", s, low=1, high=count - 1, integer=True) for s in stages]
    except TypeError:
        raise ValueError(f"stages={stages!r} is not a list of image counts; allowed: increasing counts "
                         f"below {count}") from None
    except ValueError as err:
        raise ValueError(f"stages={list(stages)!r}: {err}; allowed: increasing image counts 1..{count - 1} "
                         f"(below the evaluation set's {count})") from None
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"stages={sizes!r} is not increasing; allowed: increasing image counts below {count}")
    return tuple(sizes)


def _intervals(accuracy, total: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    acc = np.asarray(accuracy, dtype=float)
    low, high = np.full(len(acc), np.nan), np.full(len(acc), np.nan)
    for j, a in enumerate(acc):
        if np.isfinite(a):
            low[j], high[j] = clopper_pearson(round(a * total), total, confidence)
    return low, high


def _row(frame, j: int, alive: list[int], images: int, screened: bool, low: float, high: float) -> dict[str, Any]:
    row = frame.iloc[j].to_dict()
    if row.get("reference_point") is not None and np.isfinite(row["reference_point"]):
        row["reference_point"] = alive[int(row["reference_point"])]  # the round's position -> the grid's
    return {**row, "images_evaluated": images, "screened": bool(screened), "ci_low": low, "ci_high": high}


def _best(rows: dict[int, dict[str, Any]]) -> int | None:
    full = {i: r["accuracy"] for i, r in rows.items() if not r["screened"] and np.isfinite(r["accuracy"])}
    return max(full, key=lambda i: (full[i], -i)) if full else None  # ties: the first point, as sweep.best_point


def _pair_with_best(model, pts, rows, rounds, best: int, common: dict) -> None:
    """Each screened row tested against the best point on the row's own images (the point cache makes this cheap)."""
    keep = ("reference_point", "delta_pts", "ci_low_pts", "ci_high_pts", "p_value", "significant", "verdict")
    for images, labels, ref, dropped in rounds:
        done = [i for i in dropped if rows[i]["screened"]]
        if not done:
            continue
        frame = exact.sweep(model, [pts[best]] + [pts[i] for i in done], images, labels, reference=ref,
                            executor=None, against=0, **{**common, "progress": False})
        for j, i in enumerate(done, start=1):
            rows[i].update({k: frame.iloc[j][k] for k in keep if k in frame})
            rows[i]["reference_point"] = best
