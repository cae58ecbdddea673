"""The conversion sweep: each point converts the model with a recipe's parameters and LiteRT evaluates it."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ..core import artifacts, checks, measure, parallel
from ..core.convert import Recipe
from ..core.data import InputSpec
from ..core.fixed_input import fit_to_images
from ..core.model_io import model_io
from ..core.stats_patch import GuardedConverter
from . import float_reference as floats
from .fingerprints import array_fingerprint, is_tflite, source_fingerprint, sweep_source
from .grid import CONVERT_KEYS, Points, as_points
from .paired_columns import check_against, paired_columns
from . import point_cache
from .point_cache import decoded, encode_predictions


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs for one conversion point (picklable: paths and arrays only).

    ``model`` is what ``sweep_source`` returns: a SavedModel folder path, a ``SavedModel``
    (folder and signature) or a ``FrozenGraph`` (file, arrays, shapes).
    """

    model: Any
    recipe: Recipe
    spec: InputSpec
    images: np.ndarray
    labels: np.ndarray | None
    representative: np.ndarray | None = None
    reference: np.ndarray | None = None
    num_threads: int | None = None
    floats: measure.Reference | None = None  # without labels: the float model's outputs on ``images``


def run_point(task: PointTask) -> dict[str, Any]:
    """Convert and evaluate one point: the task a caller's own ``concurrent.futures.Executor`` runs (it imports
    TensorFlow and reads the model's folder, so same machine only; the default pool and a Dask cluster get
    ``.tflite`` bytes instead, ``core.parallel``).

    Returns:
        The measured columns; a conversion the converter or runtime refuses gives
        ``accuracy`` NaN and the first line of the explanation in ``error``. Without labels (``task.floats``):
        ``accuracy`` NaN and the fidelity to the float model (``float_reference``).
    """
    from ..core.convert import QuantizationWarning, convert
    from ..core.diagnose import QuantizationError
    from ..core.evaluate import evaluate

    row = _empty_row()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)  # kept as columns
            converted = convert(task.model, task.recipe, spec=task.spec, representative=task.representative)
        if task.floats is not None:
            outputs = measure.outputs_of(converted, task.images, task.spec, num_threads=task.num_threads)
        else:
            result = evaluate(converted, task.images, task.labels, task.spec, reference=task.reference,
                              num_threads=task.num_threads)
    except QuantizationError as err:
        row["error"] = checks.first_line(err)
        return row
    eff = converted.effective_stats
    if task.floats is not None:
        columns, predicted = floats.fidelity_columns(task.floats, outputs)
        row.update(size_kb=round(converted.size_kb, 2), came_out_float=converted.came_out_float,
                   stats_ignored=converted.stats_ignored, effective_mean=float("nan") if eff is None else eff.mean,
                   effective_std=float("nan") if eff is None else eff.std, convert_s=round(converted.seconds, 4),
                   eval_s=round(outputs.seconds, 4), predictions=encode_predictions(predicted), **columns)
        return row
    row.update(accuracy=result.accuracy, size_kb=round(converted.size_kb, 2),
               agreement=float("nan") if result.agreement is None else result.agreement,
               came_out_float=converted.came_out_float, stats_ignored=converted.stats_ignored,
               effective_mean=float("nan") if eff is None else eff.mean,
               effective_std=float("nan") if eff is None else eff.std,
               convert_s=round(converted.seconds, 4), eval_s=round(result.seconds, 4),
               predictions=encode_predictions(result.predictions))
    return row


def sweep(model: Any, points: Points, images: np.ndarray, labels: np.ndarray | None = None, *,
          recipe: Recipe | str = "legacy-uint8", spec: InputSpec = InputSpec(),
          representative: np.ndarray | None = None, reference: Any = None,
          executor: Executor | str | None = "auto", cache: str | os.PathLike | bool | None = None,
          progress: bool = True, desc: str = "sweep", against: str | int | None = "best",
          predictions: bool = False, client: Any = None, patch_stats: bool = True,
          float_reference: measure.Reference | None = None):
    """Convert and evaluate ``model`` at every point of a grid, each point tested against a reference point.

    How the work is split: this process converts every point (a legacy uint8 mean/std point is written
    straight into the bytes of an earlier conversion once a real conversion proved the patch byte-identical,
    ``core.stats_patch``); evaluators run the ``.tflite`` bytes (``core.parallel``) while the next point
    converts. Workers never import TensorFlow and never read a local path. The evaluation step on its own
    (e.g. a screening pass over an image subset, through the same warm pool or cluster):
    ``core.parallel.evaluate_models(list_of_tflite_bytes, images, client=...)``, or
    ``core.parallel.evaluator(...)`` with ``point_row`` to build rows as evaluations finish.

    Args:
        model: a Keras model (exported once into the cache, keyed by its weights), a
            SavedModel folder or ``sources.SavedModel`` (its signature is kept), a
            ``sources.FrozenGraph`` (a frozen ``.pb`` with its arrays), or the path of a
            ``.keras``/``.h5`` file (see ``sweep_source``).
        points: ``{"mean": [...], "std": [...]}`` (every combination) or a list of
            dicts. Keys: ``mean``, ``std`` (a missing one takes the ``spec``'s correct
            value), ``default_ranges`` (``(min, max)`` pairs), ``calibration_size``, ``io_type``.
        images, labels: the uint8 evaluation set, images of the shape the model reads
            and labels ``0..K-1`` (checked before any work where the model's shape and
            class count are known, and by every point's evaluation otherwise). ``labels=None``: every
            point is measured against the float model (``float_reference``: the reference recipe's
            conversion, run once and cached): ``accuracy`` is NaN, ``agreement`` is the share of images
            on which the point's class is the float model's, with ``agreement_low``/``agreement_high``
            (exact 95 % interval) and ``snr_db``; the float model's classes stand in for the labels in
            the paired test, ``against="best"`` is the point of highest agreement. A classifier only.
        recipe: the base recipe the points override (default ``legacy-uint8``).
        spec: the float range the model was trained on (``Dataset.spec``).
        representative: uint8 calibration images (``int8-ptq`` / ``int16x8``).
        reference: predictions (or an ``EvalResult``) to report agreement with (with labels only).
        executor: ``"auto"`` (the warm LiteRT-only process pool of ``core.parallel`` when there are
            several cores and points; it stays warm for the next sweep), ``None`` (everything here, one
            point after another), a Dask ``client.get_executor()`` (same as ``client=``), or any other
            ``concurrent.futures.Executor`` (each task converts and evaluates one point there: same
            machine only, since it reads the model's folder; a task that fails is that point's ``error``).
        cache: the artifact folder; ``False`` disables the point cache. Cached points are not recomputed
            (nor sent to a cluster).
        progress: show a tqdm progress bar (and, with a cluster, print its dashboard link).
        desc: the progress bar's label.
        against: the reference point every row is compared with on the same images (exact McNemar
            test, ``core.compare``): ``"best"`` (the most accurate point), a row position, or ``None``.
        predictions: add each point's predicted classes as a ``predictions`` column (arrays; ``None`` for a
            refused point), for comparisons of one's own (``screening`` combines image subsets with them).
        client: a ``dask.distributed.Client`` or a scheduler address (``"tcp://host:8786"``): evaluate the
            points on that cluster. The images are scattered to every worker once; each task carries one
            model's bytes; a worker lost mid-sweep loses no point (Dask recomputes its tasks).
        patch_stats: write mean/std points into the bytes of a checked conversion (``False``: convert
            every point).
        float_reference: without labels, the float model's outputs on ``images`` when already taken
            (``float_reference.float_reference``; a screening round passes its rows), else taken here.

    Returns:
        A pandas DataFrame, one row per point in order: the point's parameters,
        then ``accuracy``, ``agreement``, ``size_kb``, ``came_out_float``,
        ``stats_ignored``, ``effective_mean``, ``effective_std``, ``convert_s``,
        ``eval_s``, ``error``, ``cached`` and the comparison with the reference point:
        ``reference_point`` (its row position), ``delta_pts``, ``ci_low_pts``,
        ``ci_high_pts``, ``p_value``, ``significant`` (empty on the reference row) and ``verdict``.
        ``frame.attrs`` says how the points ran: ``evaluator`` (``serial``, ``pool``, ``dask``,
        ``executor``), ``workers``, ``converted`` and ``patched`` (points converted for real / patched).

    Raises:
        ValueError: an unknown key, a bad parameter value, a ``.tflite`` (nothing to
            convert), images of another shape than the model reads, labels out of range, a bad
            ``against``, a ``client`` that is neither a Client nor a reachable scheduler address;
            ``labels=None`` for a ``.tflite`` (no float model to measure against), with ``reference``, or for
            a model that is not a classifier, or whose float conversion fails.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if not (executor is None or executor == "auto" or isinstance(executor, Executor)):
        raise ValueError(f"executor={executor!r}; allowed: 'auto', None or a concurrent.futures.Executor")
    if client is None:
        client = parallel.client_of(executor)
    elif not (parallel.is_client(client) or isinstance(client, str)):
        raise ValueError(f"client={client!r}; allowed: a dask.distributed Client or a scheduler address "
                         "such as 'tcp://10.0.0.5:8786'")
    pts = as_points(points, CONVERT_KEYS, "sweep_training")
    check_against(against, len(pts))
    base = Recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ValueError(f"recipe={recipe!r}; allowed: a Recipe or a recipe name")
    recipes = [_recipe_for(base, p, spec) for p in pts]
    if labels is None and is_tflite(model):
        raise ValueError("model is a .tflite and labels=None: there is no float model to measure its points "
                         "against (and nothing left to convert); allowed: labels with the model it was converted "
                         "from, or that model alone (a Keras model or .keras/.h5 file, a SavedModel folder)")
    described = model_io(model)
    shape, classes = described.image_shape, described.classes
    images = checks.images("images", images, shape=shape)
    if labels is not None:
        labels = checks.labels("labels", labels, len(images), classes)
    elif reference is not None:
        raise ValueError("reference= with labels=None: without labels every point's agreement is with the float "
                         "model; allowed: reference=None, or labels")
    ref = None if reference is None else np.asarray(getattr(reference, "predictions", reference)).reshape(-1)
    if ref is not None and len(ref) != len(images):
        raise ValueError(f"reference has {len(ref)} predictions for {len(images)} images")
    if representative is not None:
        representative = checks.images("representative", representative, shape=shape)
    model = fit_to_images(model, images)  # a model that reads any size: the images' size
    source = sweep_source(model, None if cache is False else cache)
    store = None if cache is False else artifacts.cache_dir(cache) / "sweeps"
    model_fp = source_fingerprint(source)
    eval_fp = array_fingerprint(images, labels, ref)
    rep_fp = None if representative is None else array_fingerprint(representative)
    kind = "sweep-point" if labels is not None else "sweep-point-against-float"  # a row of one never serves the other
    keys = [artifacts.config_key(kind, model_fp, r, spec, eval_fp,
                                 rep_fp if r.spec.calibrated else None) for r in recipes]
    float_ref = None
    if labels is None:
        float_ref = float_reference or floats.float_reference(source, images, spec, store, model_fp)
        labels = floats.predictions(float_ref)  # the float model's classes stand in for the labels

    rows: list[dict | None] = [point_cache.load(store, k, len(images)) for k in keys]
    pending = [i for i, row in enumerate(rows) if row is None]
    owned = None
    if client is not None and pending:
        client, own = parallel.connect(client)
        owned = client if own else None
    bar = tqdm(total=len(pts), initial=len(pts) - len(pending), desc=desc, unit="point", disable=not progress)

    def rep_for(i: int) -> np.ndarray | None:
        if representative is not None and recipes[i].spec.calibrated:
            return representative[: recipes[i].calibration_size]
        return None

    def done(i: int, row: dict) -> None:
        if float_ref is not None:
            row = _against_float(row)
        if store is not None and not row["error"]:
            point_cache.store(store, keys[i], row)
        rows[i] = {**row, "cached": False}
        bar.update(1)

    attrs: dict[str, Any] = {"evaluator": "serial", "workers": 1, "converted": 0, "patched": 0}
    try:
        if isinstance(executor, Executor) and client is None:
            attrs.update(evaluator="executor", converted=len(pending))
            _run_on_executor(executor, pending, source, recipes, spec, images, labels, ref, rep_for, done, float_ref)
        elif pending:
            mode = "serial" if executor is None and client is None else "auto"
            converter = _guarded_converter(source, spec, model_fp, patch_stats)
            before = converter.converted, converter.patched
            with parallel.evaluator(images, spec, mode=mode, client=client, tasks=len(pending),
                                    keep_outputs=float_ref is not None) as ev:
                attrs.update(evaluator=ev.kind, workers=ev.workers)
                if ev.kind == "dask" and progress:
                    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
                _run_points(ev, converter, pending, recipes, rep_for, labels, ref, done, float_ref)
            attrs.update(converted=converter.converted - before[0], patched=converter.patched - before[1])
    finally:
        if owned is not None:
            owned.close()
        bar.close()
    preds = [decoded(row.pop("predictions", None), len(images)) for row in rows]
    metric = [row["accuracy" if float_ref is None else "agreement"] for row in rows]
    tests = paired_columns(metric, preds, labels, against, list(range(len(rows))), [0] * len(rows))
    frame = pd.DataFrame([{**_point_columns(p, r), **row, **test}
                          for p, r, row, test in zip(pts, recipes, rows, tests)])
    if predictions:
        frame["predictions"] = pd.Series(preds, index=frame.index, dtype=object)
    frame.attrs.update(attrs)
    if float_ref is not None:
        frame.attrs["metric"] = "agreement"
    return frame


def float_reference_for(model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
                        cache: str | os.PathLike | bool | None = None) -> measure.Reference:
    """The float model's outputs on ``images``, as ``sweep`` takes them without labels (cached with its points):
    what a screening sweep takes once for all its rounds and an explorer for its live images.

    Raises:
        ValueError: a ``.tflite`` (no float model), or what ``float_reference.float_reference`` refuses.
    """
    if is_tflite(model):
        raise ValueError("model is a .tflite and labels=None: there is no float model to measure it against; "
                         "allowed: labels, or the model it was converted from")
    source = sweep_source(fit_to_images(model, images), None if cache is False else cache)
    store = None if cache is False else artifacts.cache_dir(cache) / "sweeps"
    return floats.float_reference(source, images, spec, store, source_fingerprint(source))


def _empty_row() -> dict[str, Any]:
    return {"accuracy": float("nan"), "agreement": float("nan"), "size_kb": float("nan"),
            "came_out_float": False, "stats_ignored": False, "effective_mean": float("nan"),
            "effective_std": float("nan"), "convert_s": float("nan"), "eval_s": float("nan"), "error": ""}


def _against_float(row: dict[str, Any]) -> dict[str, Any]:
    """A row of a sweep without labels: the fidelity columns after ``agreement`` (NaN where it did not run)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key not in floats.COLUMNS[1:]:
            out[key] = value
        if key == "agreement":
            out.update({k: row.get(k, float("nan")) for k in floats.COLUMNS[1:]})
    return out


def point_row(converted: Any, prediction: parallel.Prediction, labels: np.ndarray | None,
              reference: np.ndarray | None = None, float_ref: measure.Reference | None = None) -> dict[str, Any]:
    """A sweep row from a ``ConvertedModel`` and what an evaluator returned for its bytes; with ``float_ref``
    (no labels; the evaluator kept every output) the fidelity to the float model instead of the accuracy."""
    row = _empty_row()
    eff = converted.effective_stats
    row.update(size_kb=round(converted.size_kb, 2), came_out_float=converted.came_out_float,
               stats_ignored=converted.stats_ignored, effective_mean=float("nan") if eff is None else eff.mean,
               effective_std=float("nan") if eff is None else eff.std, convert_s=round(converted.seconds, 4))
    if prediction.predictions is None:
        row.update(error=prediction.error, eval_s=round(prediction.seconds, 4))
        for key in ("size_kb", "effective_mean", "effective_std"):
            row[key] = float("nan")
        row.update(came_out_float=False, stats_ignored=False)
        return row
    if float_ref is not None:
        columns, pred = floats.fidelity_columns(float_ref, measure.Outputs(prediction.names, prediction.outputs,
                                                                         prediction.seconds))
        row.update(eval_s=round(prediction.seconds, 4), predictions=encode_predictions(pred), **columns)
        return row
    pred = prediction.predictions
    row.update(accuracy=float(np.mean(pred == labels)), eval_s=round(prediction.seconds, 4),
               agreement=float("nan") if reference is None else float(np.mean(reference == pred)),
               predictions=encode_predictions(pred))
    return row


_CONVERTERS: dict[str, GuardedConverter] = {}  # checked mean/std patchers of this session, newest last
_CONVERTERS_KEPT = 8


def _guarded_converter(source: Any, spec: InputSpec, model_fp: str, enabled: bool) -> GuardedConverter:
    """This session's ``GuardedConverter`` for a model's content (its fingerprint) and training range.

    Sweeps of one model (the rounds of a screening sweep, a grid after a slider) reuse its checked patcher, so only
    the first sweep pays the check conversions; a changed model has another fingerprint and starts over.
    """
    if not enabled:
        return GuardedConverter(source, spec, enabled=False)
    key = artifacts.config_key("guarded-converter", model_fp, spec)
    converter = _CONVERTERS.pop(key, None) or GuardedConverter(source, spec)
    converter.model = source  # the same content; this call's copy of it is the one sure to exist
    _CONVERTERS[key] = converter
    while len(_CONVERTERS) > _CONVERTERS_KEPT:
        del _CONVERTERS[next(iter(_CONVERTERS))]
    return converter


def _run_points(ev: parallel.Evaluator, converter: GuardedConverter, pending: list[int], recipes: list[Recipe],
                rep_for: Callable[[int], Any], labels: np.ndarray, ref: np.ndarray | None,
                done: Callable[[int, dict], None], float_ref: measure.Reference | None = None) -> None:
    """Convert each pending point here and hand its bytes to ``ev``; rows arrive as evaluations finish."""
    from ..core.convert import QuantizationWarning
    from ..core.diagnose import QuantizationError

    waiting: dict[Any, tuple[int, Any]] = {}

    def harvest(block: bool) -> None:
        finished = list(ev.as_completed(waiting)) if block else [f for f in waiting if f.done()]
        for fut in finished:
            i, converted = waiting.pop(fut)
            done(i, point_row(converted, ev.result(fut), labels, ref, float_ref))

    try:
        for i in pending:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", QuantizationWarning)  # kept as columns
                    converted = converter(recipes[i], rep_for(i))
            except QuantizationError as err:
                done(i, {**_empty_row(), "error": checks.first_line(err)})
                continue
            waiting[ev.submit(converted.tflite)] = (i, converted)
            harvest(block=False)
        harvest(block=True)
    finally:
        ev.cancel(waiting)


def _run_on_executor(executor: Executor, pending: list[int], source: Any, recipes: list[Recipe], spec: InputSpec,
                     images: np.ndarray, labels: np.ndarray, ref: np.ndarray | None,
                     rep_for: Callable[[int], Any], done: Callable[[int, dict], None],
                     float_ref: measure.Reference | None = None) -> None:
    """Any ``concurrent.futures.Executor``: each task converts and evaluates one point (``run_point``)."""
    given = None if float_ref is not None else labels
    futures = {executor.submit(run_point, PointTask(source, recipes[i], spec, images, given, rep_for(i), ref, 1,
                                                    float_ref)): i for i in pending}
    try:
        for fut in as_completed(futures):
            try:
                row = fut.result()
            except Exception as err:  # noqa: BLE001 - a point its worker could not run is that point's error
                row = {**_empty_row(), "error": f"{type(err).__name__}: {checks.first_line(err)}"}
            done(futures[fut], row)
    finally:
        for fut in futures:
            fut.cancel()


def _recipe_for(base: Recipe, point: dict[str, Any], spec: InputSpec) -> Recipe:
    params = dict(point)
    if ("mean" in params) != ("std" in params):
        right = spec.stats
        params.setdefault("mean", right.mean)
        params.setdefault("std", right.std)
    if params.get("default_ranges") is not None:
        params["default_ranges"] = tuple(checks.range_pair("default_ranges", params["default_ranges"]))
    return replace(base, **params)


def _point_columns(point: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    cols = {"recipe": recipe.name}
    for key in point:
        cols[key] = getattr(recipe, key)
    if "mean" in cols or "std" in cols:
        cols["mean"], cols["std"] = recipe.mean, recipe.std
    if recipe.default_ranges is not None and "default_ranges" in point:
        cols["default_min"], cols["default_max"] = recipe.default_ranges
    return cols
