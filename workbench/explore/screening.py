"""Screening sweeps: a big grid ranked on small nested image subsets, only the contenders evaluated on every image.

``sweep(model, points, images, labels)`` runs the exact ``sweep.sweep`` in rounds. The evaluation set is put
in a fixed random order (``seed``); round one evaluates every point on the first few hundred images of that
order, each later round evaluates the points still in the race on the next images of it (so each point's
images are a prefix of the order: nested subsets, none evaluated twice), and the last round gives the
survivors the rest of the set. Their rows then hold exactly what the exact sweep gives: the accuracy over every
image and the paired test against the best point on every image.

The rule that drops a point, and why it is honest:

* after a round, a point right on ``k`` of the ``n`` images it has seen gets the exact (Clopper-Pearson)
  binomial interval ``[ci_low, ci_high]`` (``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``);
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
``alpha``, the confidence, the rounds and the seed). ``convert_s`` and ``eval_s`` add up the point's rounds; the
paired columns compare every row with the best point on that row's own images. Screening saves evaluations,
not conversions: each round converts its points again, which costs little where the mean/std patch applies
(``core.stats_patch``: a few milliseconds a point instead of a conversion).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Iterable, Sequence

import numpy as np

from ..core import checks
from ..core.compare import ALPHA
from ..core.data import InputSpec
from ..core.model_io import model_io
from . import float_reference as floats
from . import sweep as exact
from .conversion_sweep import float_reference_for

MIN_ROUND = 100
EXTRA_COLUMNS = ("images_evaluated", "screened", "ci_low", "ci_high")


def default_stages(count: int) -> tuple[int, ...]:
    """The screening rounds for ``count`` images: 1/64, 1/16 and 1/4 of them (at least 100 each, each round at
    least twice the one before), only those below ``count``.

    Each round multiplies the images by four: on the 7x7 mean/std grid of the legacy uint8 LeNet (10,000 test
    images) most points are out after the first round, and these rounds evaluate 92,178 images where rounds of
    5 % and 20 % evaluate 110,000 (the exact sweep: 560,000).

    >>> default_stages(10000)
    (156, 625, 2500)
    >>> default_stages(2000)
    (100, 500)
    """
    count = checks.number("count", count, low=1, integer=True)
    sizes: list[int] = []
    for size in (max(MIN_ROUND, count // 64), max(MIN_ROUND, count // 16), max(MIN_ROUND, count // 4)):
        if size < count and (not sizes or size >= 2 * sizes[-1]):
            sizes.append(size)
    return tuple(sizes)


def clopper_pearson(correct: int, total: int, confidence: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson) binomial interval for ``correct`` of ``total`` at ``confidence``.

    The same interval as ``scipy.stats.binomtest(correct, total).proportion_ci(confidence, method="exact")``, from
    its closed form in beta quantiles (``scipy.special.betaincinv``): microseconds instead of a root search.
    """
    from scipy.special import betaincinv

    k, n, tail = int(correct), int(total), (1 - confidence) / 2
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, tail))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - tail))
    return low, high


def sweep(model: Any, points: exact.Points, images: np.ndarray, labels: np.ndarray | None = None, *,
          stages: Sequence[int] | None = None, alpha: float = ALPHA, seed: int = 0,
          recipe: Any = "legacy-uint8", spec: InputSpec = InputSpec(), representative: np.ndarray | None = None,
          reference: Any = None, executor: Executor | str | None = "auto", cache: Any = None,
          progress: bool = True, desc: str = "screening"):
    """A mean/std (or any conversion) grid, screened on nested subsets; the contenders get every image.

    Args:
        model, points, images, labels, recipe, spec, representative, reference, cache, progress: as
            ``sweep.sweep`` (``reference`` predictions are subset with the images). ``labels=None``: the
            float model's outputs are taken once on every image (``float_reference``) and each round measures
            its points against their rows: the intervals are on the ``agreement`` with the float model's
            classes (a binomial, as accuracy is), ``snr_db`` adds up the rounds' signal and noise.
        stages: image counts of the screening rounds, increasing, each below ``len(images)``
            (default ``default_stages(len(images))``: 156, 625 and 2,500 of 10,000); ``()`` is the exact sweep.
        alpha: the chance, over all intervals together, that any of them misses (0 < alpha < 1).
        seed: the fixed random order of the evaluation set the subsets are taken from.
        executor: as ``sweep.sweep``, for every round: ``"auto"`` (conversions here, patched where the
            guard allows, evaluations on the session's warm LiteRT-only pool), ``None`` (run here) or any
            ``Executor``.
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
    io = model_io(model)
    shape, classes = io.image_shape, io.classes
    images = checks.images("images", images, shape=shape)
    float_ref = power = None
    if labels is not None:
        labels = checks.labels("labels", labels, len(images), classes)
    elif reference is not None:
        raise ValueError("reference= with labels=None: without labels every point's agreement is with the float "
                         "model; allowed: reference=None, or labels")
    else:
        float_ref = float_reference_for(model, images, spec, cache)
        labels, power = floats.predictions(float_ref), floats.signal_power(float_ref)
    metric = "accuracy" if float_ref is None else "agreement"
    count = len(images)
    sizes = default_stages(count) if stages is None else _stages(stages, count)
    ref = None if reference is None else np.asarray(getattr(reference, "predictions", reference)).reshape(-1)
    if ref is not None and len(ref) != count:
        raise ValueError(f"reference has {len(ref)} predictions for {count} images")
    confidence = 1 - alpha / (len(pts) * max(len(sizes), 1))
    order = np.random.default_rng(seed).permutation(count)
    common = dict(recipe=recipe, spec=spec, representative=representative, cache=cache, progress=progress)

    seen = labels[order]  # the labels in the random order; every point's images are a prefix of it
    power = None if power is None else power[order]
    parts: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(pts))}  # each round's row of a point
    rows: dict[int, dict[str, Any]] = {}
    alive, bounds = list(range(len(pts))), [0, *sizes, count]
    for lo, hi in zip(bounds, bounds[1:]):
        if not alive:
            break
        pick = order[lo:hi]
        frame = exact.sweep(model, [pts[i] for i in alive], np.ascontiguousarray(images[pick]),
                            None if float_ref is not None else labels[pick],
                            reference=None if ref is None else ref[pick], executor=executor, against=None,
                            predictions=True, desc=f"{desc}: {len(alive)} points on images {lo:,}-{hi:,}",
                            float_reference=None if float_ref is None else floats.subset(float_ref, pick), **common)
        for j, i in enumerate(alive):
            parts[i].append(frame.iloc[j].to_dict())
        done = [i for i in alive if not np.isfinite(parts[i][-1][metric])]  # refused: never again
        for i in done:
            rows[i] = _combined(parts[i], seen, ref, order, 0, False, confidence, power)
        alive = [i for i in alive if i not in done]
        if hi == count:
            for i in alive:
                rows[i] = _combined(parts[i], seen, ref, order, hi, False, confidence, power)
            break
        ranked = {i: _combined(parts[i], seen, ref, order, hi, True, confidence, power) for i in alive}
        bar = max((r["ci_low"] for r in ranked.values()), default=np.inf)
        for i, row in ranked.items():
            if row["ci_high"] < bar:
                rows[i] = row
        alive = [i for i in alive if i not in rows]
    _pair_with_best(rows, parts, seen, metric)
    frame = pd.DataFrame([rows[i] for i in range(len(pts))])
    frame["images_evaluated"] = frame["images_evaluated"].astype(int)
    frame["screened"] = frame["screened"].astype(bool)
    frame.attrs["screening"] = {"alpha": alpha, "confidence": confidence, "stages": [*sizes, count], "seed": seed}
    if float_ref is not None:
        frame.attrs["metric"] = "agreement"
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

    pts = exact.as_points(points)
    base = Recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ValueError(f"recipe={recipe!r}; allowed: a Recipe or a recipe name")
    for p in pts:
        params = dict(p)
        if ("mean" in params) != ("std" in params):
            params.setdefault("mean", spec.stats.mean)
            params.setdefault("std", spec.stats.std)
        if params.get("default_ranges") is not None:
            params["default_ranges"] = tuple(checks.range_pair("default_ranges", params["default_ranges"]))
        replace(base, **params)
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


PAIRED = ("reference_point", "delta_pts", "ci_low_pts", "ci_high_pts", "p_value", "significant", "verdict")


def _combined(parts: list[dict[str, Any]], seen: np.ndarray, ref: np.ndarray | None, order: np.ndarray,
              images: int, screened: bool, confidence: float, power: np.ndarray | None = None) -> dict[str, Any]:
    """One point's row from its rounds: accuracy (and agreement) over all its images, the interval on them;
    without labels (``power``: each image's float signal power, in the random order) the agreement with the
    float model, its 95 % interval and ``snr_db`` over all its images."""
    row = {k: v for k, v in parts[-1].items() if k != "predictions"}
    row.update(convert_s=round(sum(p["convert_s"] for p in parts), 4),
               eval_s=round(sum(p["eval_s"] for p in parts), 4), cached=all(bool(p["cached"]) for p in parts))
    predictions = None
    low = high = float("nan")
    if images:
        predictions = np.concatenate([p["predictions"] for p in parts])
        if power is not None:
            right = int(np.sum(predictions == seen[:images]))
            low95, high95 = clopper_pearson(right, images, 0.95)
            sizes = np.cumsum([0] + [len(p["predictions"]) for p in parts])
            snr = floats.combined_snr_db([(p["snr_db"], float(power[a:b].sum()))
                                          for p, a, b in zip(parts, sizes, sizes[1:])])
            row.update(agreement=right / images, agreement_low=low95, agreement_high=high95, snr_db=snr)
        else:
            row["accuracy"] = float(np.mean(predictions == seen[:images]))
        if ref is not None:
            row["agreement"] = float(np.mean(ref[order[:images]] == predictions))
        low, high = clopper_pearson(int(np.sum(predictions == seen[:images])), images, confidence)
    return {**row, "images_evaluated": images, "screened": screened, "ci_low": low, "ci_high": high,
            "_predictions": predictions}


def _pair_with_best(rows: dict[int, dict[str, Any]], parts, seen: np.ndarray, metric: str = "accuracy") -> None:
    """The paired columns of ``sweep.sweep``: every row against the best point, on the row's own images."""
    from ..core.compare import comparison_columns, paired

    full = {i: r[metric] for i, r in rows.items() if not r["screened"] and r["images_evaluated"]}
    best = max(full, key=lambda i: (full[i], -i)) if full else None  # ties: the first point, as sweep.best_point
    for i, row in list(rows.items()):
        mine = row.pop("_predictions")
        if best is None:
            test = {"reference_point": None}
        elif i == best:
            test = {"reference_point": best, **comparison_columns(discordant=False)}
        elif mine is None:
            test = {"reference_point": best,
                    **comparison_columns(verdict="not compared (no predictions)", discordant=False)}
        else:
            reference = np.concatenate([p["predictions"] for p in parts[best]])[: len(mine)]
            test = {"reference_point": best,
                    **comparison_columns(paired(reference, mine, seen[: len(mine)]), discordant=False)}
        # the exact sweep's columns in its order, then the screening's
        rows[i] = {**{k: v for k, v in row.items() if k not in EXTRA_COLUMNS}, **test,
                   **{k: row[k] for k in EXTRA_COLUMNS}}
