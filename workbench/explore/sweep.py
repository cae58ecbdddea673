"""Grids over recipe and training parameters, one DataFrame row per point.

Two kinds of sweep:

* ``sweep`` — conversion parameters (``mean``, ``std``, ``default_ranges``,
  ``calibration_size``, ``io_type``): each point converts the model (a Keras
  model exported once to a SavedModel folder, a SavedModel with its signature, a
  frozen ``.pb`` with its arrays: any image shape and class count) and evaluates
  it with LiteRT. This process converts (mean/std points of a legacy uint8 model
  are patched into checked bytes, ``core.stats_patch``) while evaluators run the
  bytes (``core.parallel``): a warm pool of LiteRT-only processes by default, or a
  ``dask.distributed`` cluster (``client=``), the images sent once.
* ``sweep_training`` — training parameters (``bits``, ``qat_epochs``): each
  point trains (or loads from the cache) a QAT model (LeNet, the MobileNet-style
  net, or any model a build function returns) and evaluates its fake-quant
  simulation; these run one after another in this process, or as tasks on a
  ``dask.distributed`` cluster (``client=``: the data scattered once, each task
  trains in its worker and returns predictions).

Every finished point is cached as a small JSON file keyed by the model, the
recipe and the evaluation set, written atomically, so an interrupted sweep
picks up where it stopped. The file keeps the point's predictions (zlib +
base64 of one byte per image), so every row can be compared with a reference
point on the same images: ``against="best"`` (the default) adds the paired
test of ``core.compare`` (``delta_pts``, ``ci_low_pts``, ``ci_high_pts``,
``p_value``, ``significant``, ``verdict``) against the most accurate point.
An older cache file without predictions is recomputed.
"""

from __future__ import annotations

import base64
import itertools
import json
import zlib
import os
import warnings
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..core import artifacts, checks, parallel
from ..core.compare import paired
from ..core.convert import Recipe
from ..core.data import Dataset, InputSpec
from ..core.sources import KERAS_SUFFIXES, FrozenGraph, SavedModel
from ..core.stats_patch import GuardedConverter

CONVERT_KEYS = ("mean", "std", "default_ranges", "calibration_size", "io_type")
TRAIN_KEYS = ("bits", "qat_epochs", "scheme", "learned_input_range")
ARCHITECTURES = ("lenet", "mobilenet")
Points = Mapping[str, Iterable[Any]] | Iterable[Mapping[str, Any]]


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the given axes, as a list of points.

    >>> grid(mean=[0, 127.5], std=[255])
    [{'mean': 0, 'std': 255}, {'mean': 127.5, 'std': 255}]

    Raises:
        ValueError: no axes, or an axis with no values.
    """
    if not axes:
        raise ValueError("grid() got no axes; allowed: keyword lists such as mean=[...], std=[...]")
    values = {}
    for name, vals in axes.items():
        vals = list(vals) if not isinstance(vals, (str, bytes)) else [vals]
        if not vals:
            raise ValueError(f"grid axis {name}=[] is empty; allowed: at least one value")
        values[name] = vals
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def stats_grid(spec: InputSpec = InputSpec(), size: int = 7) -> list[dict[str, float]]:
    """A mean x std grid (mean 0..255 linear, std 1..1000 log) that contains the correct stats and (0, 1).

    Args:
        spec: the training range; its correct ``(mean, std)`` is added to the axes.
        size: values per axis before the correct point is added (2..40).
    """
    size = checks.number("size", size, low=2, high=40, integer=True)
    right = spec.stats
    means = sorted({*np.round(np.linspace(0, 255, size), 2).tolist(), right.mean})
    stds = sorted({*np.round(np.geomspace(1, 1000, size), 2).tolist(), 1.0, right.std})
    return grid(mean=means, std=stds)


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
    labels: np.ndarray
    representative: np.ndarray | None = None
    reference: np.ndarray | None = None
    num_threads: int | None = None


def run_point(task: PointTask) -> dict[str, Any]:
    """Convert and evaluate one point: the task a caller's own ``concurrent.futures.Executor`` runs (it imports
    TensorFlow and reads the model's folder, so same machine only; the default pool and a Dask cluster get
    ``.tflite`` bytes instead, ``core.parallel``).

    Returns:
        The measured columns; a conversion the converter or runtime refuses gives
        ``accuracy`` NaN and the first line of the explanation in ``error``.
    """
    from ..core.convert import QuantizationWarning, convert
    from ..core.diagnose import QuantizationError
    from ..core.evaluate import evaluate

    row = _empty_row()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)  # kept as columns
            converted = convert(task.model, task.recipe, spec=task.spec, representative=task.representative)
        result = evaluate(converted, task.images, task.labels, task.spec, reference=task.reference,
                          num_threads=task.num_threads)
    except QuantizationError as err:
        row["error"] = str(err).strip().splitlines()[0][:300]
        return row
    eff = converted.effective_stats
    row.update(accuracy=result.accuracy, size_kb=round(converted.size_kb, 2),
               agreement=float("nan") if result.agreement is None else result.agreement,
               came_out_float=converted.came_out_float, stats_ignored=converted.stats_ignored,
               effective_mean=float("nan") if eff is None else eff.mean,
               effective_std=float("nan") if eff is None else eff.std,
               convert_s=round(converted.seconds, 4), eval_s=round(result.seconds, 4),
               predictions=encode_predictions(result.predictions))
    return row


def sweep(model: Any, points: Points, images: np.ndarray, labels: np.ndarray, *,
          recipe: Recipe | str = "legacy-uint8", spec: InputSpec = InputSpec(),
          representative: np.ndarray | None = None, reference: Any = None,
          executor: Executor | str | None = "auto", cache: str | os.PathLike | bool | None = None,
          progress: bool = True, desc: str = "sweep", against: str | int | None = "best",
          predictions: bool = False, client: Any = None, patch_stats: bool = True):
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
            class count are known, and by every point's evaluation otherwise).
        recipe: the base recipe the points override (default ``legacy-uint8``).
        spec: the float range the model was trained on (``Dataset.spec``).
        representative: uint8 calibration images (``int8-ptq`` / ``int16x8``).
        reference: predictions (or an ``EvalResult``) to report agreement with.
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
            ``against``, a ``client`` that is neither a Client nor a reachable scheduler address.
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
    _check_against(against, len(pts))
    base = Recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ValueError(f"recipe={recipe!r}; allowed: a Recipe or a recipe name")
    recipes = [_recipe_for(base, p, spec) for p in pts]
    shape, classes = model_io(model)
    images = checks.images("images", images, shape=shape)
    labels = checks.labels("labels", labels, len(images), classes)
    ref = None if reference is None else np.asarray(getattr(reference, "predictions", reference)).reshape(-1)
    if ref is not None and len(ref) != len(images):
        raise ValueError(f"reference has {len(ref)} predictions for {len(images)} images")
    if representative is not None:
        representative = checks.images("representative", representative, shape=shape)
    source = sweep_source(model, None if cache is False else cache)
    store = None if cache is False else artifacts.cache_dir(cache) / "sweeps"
    model_fp = source_fingerprint(source)
    eval_fp = array_fingerprint(images, labels, ref)
    rep_fp = None if representative is None else array_fingerprint(representative)
    keys = [artifacts.config_key("sweep-point", model_fp, r, spec, eval_fp,
                                 rep_fp if r.spec.calibrated else None) for r in recipes]

    rows: list[dict | None] = [_load(store, k, len(images)) for k in keys]
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
        if store is not None and not row["error"]:
            _store(store, keys[i], row)
        rows[i] = {**row, "cached": False}
        bar.update(1)

    attrs: dict[str, Any] = {"evaluator": "serial", "workers": 1, "converted": 0, "patched": 0}
    try:
        if isinstance(executor, Executor) and client is None:
            attrs.update(evaluator="executor", converted=len(pending))
            _run_on_executor(executor, pending, source, recipes, spec, images, labels, ref, rep_for, done)
        elif pending:
            mode = "serial" if executor is None and client is None else "auto"
            converter = _guarded_converter(source, spec, model_fp, patch_stats)
            before = converter.converted, converter.patched
            with parallel.evaluator(images, spec, mode=mode, client=client, tasks=len(pending)) as ev:
                attrs.update(evaluator=ev.kind, workers=ev.workers)
                if ev.kind == "dask" and progress:
                    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
                _run_points(ev, converter, pending, recipes, rep_for, labels, ref, done)
            attrs.update(converted=converter.converted - before[0], patched=converter.patched - before[1])
    finally:
        if owned is not None:
            owned.close()
        bar.close()
    preds = [_decoded(row.pop("predictions", None), len(images)) for row in rows]
    accuracy = [row["accuracy"] for row in rows]
    tests = _paired_columns(accuracy, preds, labels, against, list(range(len(rows))), [0] * len(rows))
    frame = pd.DataFrame([{**_point_columns(p, r), **row, **test}
                          for p, r, row, test in zip(pts, recipes, rows, tests)])
    if predictions:
        frame["predictions"] = pd.Series(preds, index=frame.index, dtype=object)
    frame.attrs.update(attrs)
    return frame


def _empty_row() -> dict[str, Any]:
    return {"accuracy": float("nan"), "agreement": float("nan"), "size_kb": float("nan"),
            "came_out_float": False, "stats_ignored": False, "effective_mean": float("nan"),
            "effective_std": float("nan"), "convert_s": float("nan"), "eval_s": float("nan"), "error": ""}


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def point_row(converted: Any, prediction: parallel.Prediction, labels: np.ndarray,
              reference: np.ndarray | None = None) -> dict[str, Any]:
    """A sweep row from a ``ConvertedModel`` and what an evaluator returned for its bytes."""
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
                done: Callable[[int, dict], None]) -> None:
    """Convert each pending point here and hand its bytes to ``ev``; rows arrive as evaluations finish."""
    from ..core.convert import QuantizationWarning
    from ..core.diagnose import QuantizationError

    waiting: dict[Any, tuple[int, Any]] = {}

    def harvest(block: bool) -> None:
        finished = list(ev.as_completed(waiting)) if block else [f for f in waiting if f.done()]
        for fut in finished:
            i, converted = waiting.pop(fut)
            done(i, point_row(converted, ev.result(fut), labels, ref))

    try:
        for i in pending:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", QuantizationWarning)  # kept as columns
                    converted = converter(recipes[i], rep_for(i))
            except QuantizationError as err:
                done(i, {**_empty_row(), "error": _first_line(err)})
                continue
            waiting[ev.submit(converted.tflite)] = (i, converted)
            harvest(block=False)
        harvest(block=True)
    finally:
        ev.cancel(waiting)


def _run_on_executor(executor: Executor, pending: list[int], source: Any, recipes: list[Recipe], spec: InputSpec,
                     images: np.ndarray, labels: np.ndarray, ref: np.ndarray | None,
                     rep_for: Callable[[int], Any], done: Callable[[int, dict], None]) -> None:
    """Any ``concurrent.futures.Executor``: each task converts and evaluates one point (``run_point``)."""
    futures = {executor.submit(run_point, PointTask(source, recipes[i], spec, images, labels, rep_for(i), ref, 1)): i
               for i in pending}
    try:
        for fut in as_completed(futures):
            try:
                row = fut.result()
            except Exception as err:  # noqa: BLE001 - a point its worker could not run is that point's error
                row = {**_empty_row(), "error": f"{type(err).__name__}: {_first_line(err)}"}
            done(futures[fut], row)
    finally:
        for fut in futures:
            fut.cancel()


def sweep_training(data: Dataset, points: Points, *, model: str | Callable[[], Any] = "lenet",
                   name: str | None = None, config: Any = None, qat: Any = None,
                   images: np.ndarray | None = None, labels: np.ndarray | None = None,
                   cache: str | os.PathLike | bool | None = None, progress: bool = True,
                   desc: str = "training sweep", seeds: int = 1, against: str | int | None = "best",
                   client: Any = None):
    """Train (or load) a QAT model per point and seed, and evaluate its fake-quant simulation.

    Args:
        data: the training data (any image shape and class count); trained weights are
            cached per (model, config, QAT config, data).
        points: keys ``bits`` (2..8), ``qat_epochs``, ``scheme``, ``learned_input_range``.
        model: ``"lenet"``, ``"mobilenet"`` (``train.trained_mobilenet``: BatchNorm folded
            before ``uint8-legacy`` QAT) or a function returning a fresh, untrained Keras
            model for ``data`` (your architecture; it is trained float first, then QAT).
        name: what to call a built model in the cache and the table (default: the
            function's name); the cache key also covers its layer types and weight shapes.
        config: the ``TrainConfig`` of the float model (default ``TrainConfig()``).
        qat: the base ``QatConfig`` the points override (default ``QatConfig()``).
        images, labels: the uint8 evaluation set (default: ``data``'s test set).
        cache: the artifact folder; ``False`` disables the point cache (weights are still cached).
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
        seeds: train every point this many times (seeds ``config.seed``, ``config.seed + 1``, ...);
            plots draw the spread as error bars.
        against: the reference point (``"best"``: the highest mean accuracy over seeds, a point's
            position in ``points``, or ``None``); each seed's model is compared with the reference
            point's model of the same seed, on the same images (exact McNemar test).
        client: a ``dask.distributed.Client`` or a scheduler address: train the points that are not
            cached here on that cluster (``data`` and the evaluation images scattered once; each task
            trains in its worker, with that worker's own weight cache, and returns the predictions).

    Returns:
        A pandas DataFrame, one row per point and seed (long format): ``model``, its parameters, ``seed``,
        ``epochs`` (the training budget: float epochs + QAT epochs), ``accuracy`` (the Keras model
        with fake-quant, i.e. simulated ``bits``), ``eval_s``, ``cached`` and the comparison with the
        reference point (``reference_point``, ``delta_pts``, ``ci_low_pts``, ``ci_high_pts``, ``p_value``,
        ``significant``, ``verdict``).

    Raises:
        ValueError: an unknown key, a bad parameter value, an unknown ``model``, a built
            model whose input or output does not fit ``data``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ..core.evaluate import evaluate_keras
    from ..core.train import QatConfig, TrainConfig, data_fingerprint

    config = TrainConfig() if config is None else config
    qat = QatConfig() if qat is None else qat
    if client is not None and not (parallel.is_client(client) or isinstance(client, str)):
        raise ValueError(f"client={client!r}; allowed: a dask.distributed Client or a scheduler address "
                         "such as 'tcp://10.0.0.5:8786'")
    seeds = checks.number("seeds", seeds, low=1, high=20, integer=True)
    pts = as_points(points, TRAIN_KEYS, "sweep")
    _check_against(against, len(pts))
    qats = [replace(qat, **{("epochs" if k == "qat_epochs" else k): v for k, v in p.items()}) for p in pts]
    label, train = _trainer(model, name, data)
    images = data.test_images if images is None else checks.images("images", images, shape=data.image_shape)
    labels = checks.labels("labels", data.test_labels if labels is None else labels, len(images), data.classes)
    store = None if cache is False else artifacts.cache_dir(cache) / "sweeps"
    eval_fp = array_fingerprint(images, labels)
    jobs = [(i, q, replace(config, seed=config.seed + s)) for s in range(seeds) for i, q in enumerate(qats)]
    keys = []
    for i, q, cfg in jobs:
        parts = ("train-point", cfg, q, data_fingerprint(data), eval_fp)
        keys.append(artifacts.config_key(*parts) if label == "lenet" else artifacts.config_key(label, *parts))
    found = [_load(store, key, len(images)) for key in keys]
    owned = None
    if client is not None and any(row is None for row in found):
        client, own = parallel.connect(client)
        owned = client if own else None
    bar = tqdm(total=len(jobs), initial=sum(row is not None for row in found), desc=desc, unit="point",
               disable=not progress)

    def finish(j: int, row: dict) -> None:
        if store is not None and not row.get("error"):
            _store(store, keys[j], row)
        found[j] = {**row, "cached": False}
        bar.update(1)

    try:
        todo = [j for j, row in enumerate(found) if row is None]
        if client is not None and todo:
            if progress:
                print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            shared = client.scatter([data, images, labels], broadcast=True, hash=False)
            futures = {client.submit(train_point, shared[0], model, name, jobs[j][2], jobs[j][1], shared[1], shared[2],
                                     pure=False, retries=parallel.DASK_RETRIES): j for j in todo}
            from distributed import as_completed as dask_completed

            for fut in dask_completed(list(futures)):
                try:
                    row = fut.result()
                except Exception as err:  # noqa: BLE001 - a point the cluster gave up on is that point's error
                    row = {"accuracy": float("nan"), "eval_s": float("nan"),
                           "error": f"{type(err).__name__}: {_first_line(err)}", "predictions": None}
                finish(futures[fut], row)
        else:
            for j in todo:
                _, q, cfg = jobs[j]
                trained = train(cfg, q, None if cache is False else cache)
                result = evaluate_keras(trained, images, labels, cfg.spec)
                finish(j, {"accuracy": result.accuracy, "eval_s": round(result.seconds, 4), "error": "",
                           "predictions": encode_predictions(result.predictions)})
    finally:
        if owned is not None:
            owned.close()
        bar.close()
    rows, preds = [], []
    for (i, q, cfg), row in zip(jobs, found):
        preds.append(_decoded(row.pop("predictions", None), len(images)))
        rows.append({"model": label, "bits": q.bits, "qat_epochs": q.epochs, "scheme": q.scheme, "seed": cfg.seed,
                     "epochs": cfg.epochs + q.epochs, **row, "_point": i})
    tests = _paired_columns([r["accuracy"] for r in rows], preds, labels, against,
                            [r.pop("_point") for r in rows], [r["seed"] for r in rows])
    return pd.DataFrame([{**row, **test} for row, test in zip(rows, tests)])


def train_point(data: Dataset, model: Any, name: str | None, config: Any, qat: Any, images: np.ndarray,
                labels: np.ndarray) -> dict[str, Any]:
    """One training point as a cluster task: train (or load from this worker's cache) and evaluate.

    Returns:
        The point's columns (``accuracy``, ``eval_s``, ``error``) and its encoded ``predictions``.
    """
    from ..core.evaluate import evaluate_keras

    _, train = _trainer(model, name, data)
    result = evaluate_keras(train(config, qat, None), images, labels, config.spec)
    return {"accuracy": result.accuracy, "eval_s": round(result.seconds, 4), "error": "",
            "predictions": encode_predictions(result.predictions)}


def _trainer(model: Any, name: str | None, data: Dataset) -> tuple[str, Callable[..., Any]]:
    """``(label, train(config, qat, cache))`` for a built-in architecture name or a build function."""
    from ..core import train

    if isinstance(model, str):
        checks.choice("model", model, ARCHITECTURES)
        trained = {"lenet": train.trained_lenet, "mobilenet": train.trained_mobilenet}[model]
        return model, lambda config, q, cache: trained(data, config, q, cache)
    if not callable(model):
        raise ValueError(f"model={model!r}; allowed: {', '.join(map(repr, ARCHITECTURES))} or a function "
                         "returning an untrained Keras model")
    built = model()
    if not hasattr(built, "layers") or not hasattr(built, "input_shape"):
        raise ValueError(f"model() returned {type(built).__name__}; allowed: a function returning a Keras model")
    shape, classes = tuple(built.input_shape[1:]), int(built.output_shape[-1])
    if shape != data.image_shape or classes != data.classes:
        raise ValueError(f"model() reads {shape} and has {classes} outputs, but data={data.name!r} has images of "
                         f"{data.image_shape} and {data.classes} classes; allowed: a model built for the data")
    if name is not None and (not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"name={name!r}; allowed: letters, digits, '-' and '_'")
    architecture = artifacts.digest([type(layer).__name__ for layer in built.layers],
                                    [list(w.shape) for w in built.weights], length=8)
    label = name or getattr(model, "__name__", "model").strip("<>") or "model"
    key = f"{label}-{architecture}"
    return label, lambda config, q, cache: train.trained_model(model, key, data, config, q, cache)


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


def compare(models: Mapping[str, Any], images: np.ndarray, labels: np.ndarray,
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
            row.update(delta_pts=0.0, ci_low_pts=float("nan"), ci_high_pts=float("nan"), p_value=float("nan"),
                       significant=None, verdict="reference")
        elif epochs is not None and epochs[name] != epochs[ref_name]:
            row.update(delta_pts=round(100 * (result.accuracy - reference.accuracy), 2), ci_low_pts=float("nan"),
                       ci_high_pts=float("nan"), p_value=float("nan"), significant=None,
                       verdict=f"not compared: {epochs[name]} vs {epochs[ref_name]} training epochs")
        else:
            tests[name] = paired(reference, result, labels)
            test = tests[name].row()
            test.pop("discordant")
            row.update(test)
        row.update({"size_kb": round(model.size_kb, 1), "images_per_s": round(result.images_per_second),
                    "agreement_pct": None if result.agreement is None else round(100 * result.agreement, 2),
                    "input": model.input.dtype})
        rows.append(row)
    return Comparison(pd.DataFrame(rows), results, reference.accuracy, tests)


def saved_model_folder(model: Any, cache: str | os.PathLike | None = None) -> Path:
    """A SavedModel folder for ``model``: the path itself, or a Keras model exported once into the cache.

    Raises:
        ValueError: a path without ``saved_model.pb``, or something that is not a model.
    """
    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if not (folder / "saved_model.pb").is_file():
            raise ValueError(f"model={str(model)!r} is not a SavedModel folder (no saved_model.pb); allowed: "
                             "a Keras model or a folder written by export_saved_model")
        return folder
    if not hasattr(model, "get_weights"):
        raise ValueError(f"model={type(model).__name__}; allowed: a Keras model or a SavedModel folder path")
    digest = artifacts.weights_digest(model)
    return artifacts.entry(artifacts.cache_dir(cache) / "savedmodels" / f"model-{digest}",
                           lambda tmp: model.save(str(tmp), save_format="tf", include_optimizer=False), key=digest)


def sweep_source(model: Any, cache: str | os.PathLike | None = None) -> Path | SavedModel | FrozenGraph:
    """What every point of a sweep (and every slider move) converts, picklable for worker processes.

    Args:
        model: a Keras model (exported once to a SavedModel folder in the cache), a
            SavedModel folder, a ``sources.SavedModel`` (kept with its signature), a
            ``sources.FrozenGraph``, or the path of a ``.keras``/``.h5`` file (loaded, then exported).

    Returns:
        The folder ``Path``, the ``SavedModel`` of a signature other than ``serving_default``,
        or the ``FrozenGraph``.

    Raises:
        ValueError: a ``.tflite`` (bytes, a ``ConvertedModel`` or a file: there is nothing left
            to convert), a frozen ``.pb`` path without its arrays, or anything that is not a model.
    """
    if isinstance(model, FrozenGraph):
        return model
    if isinstance(model, SavedModel):
        folder = saved_model_folder(model.path)
        return folder if model.signature == "serving_default" else SavedModel(folder, model.signature)
    if isinstance(model, (bytes, bytearray)) or hasattr(model, "tflite") or (
            isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".tflite"):
        raise ValueError("model is a .tflite: it has nothing left to convert; allowed: the model it was converted "
                         "from (a Keras model or .keras/.h5 file, a SavedModel folder, a frozen .pb as "
                         "sources.load_source(path, input_arrays=..., output_arrays=...))")
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() in (*KERAS_SUFFIXES, ".pb") \
            and Path(model).is_file() and Path(model).name != "saved_model.pb":
        from ..core.sources import load_source

        return sweep_source(load_source(model), cache)  # a frozen .pb without arrays: load_source says so
    return saved_model_folder(model, cache)


def source_fingerprint(source: Any) -> str:
    """A content hash of what ``sweep_source`` returned (files, signature, arrays and shapes)."""
    if isinstance(source, FrozenGraph):
        return artifacts.digest(Path(source.path), source.input_arrays, source.output_arrays, source.input_shapes)
    if isinstance(source, SavedModel):
        return artifacts.digest(folder_fingerprint(source.path), source.signature)
    return folder_fingerprint(source)


def model_io(model: Any) -> tuple[tuple[int, ...] | None, int | None]:
    """The ``(H, W, C)`` a model reads and its class count, where known without converting it (else ``None``)."""
    shape = None
    input_shape = getattr(model, "input_shape", None)  # Keras models and frozen graphs with shapes
    if isinstance(input_shape, tuple) and len(input_shape) == 4 and None not in input_shape[1:]:
        shape = tuple(int(d) for d in input_shape[1:])
    output_shape = getattr(model, "output_shape", None)
    classes = int(output_shape[-1]) if isinstance(output_shape, tuple) and output_shape[-1] else None
    return shape, classes


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A content hash of every file in a folder (a SavedModel is a few hundred KB)."""
    return artifacts.digest(Path(folder))


def array_fingerprint(*arrays: np.ndarray | None) -> str:
    """A content hash of arrays (shape, dtype and bytes; ``None`` entries allowed)."""
    return artifacts.digest(*(None if a is None else np.asarray(a) for a in arrays))


def best_point(frame, column: str = "accuracy") -> dict[str, Any]:
    """The row with the highest ``column`` as a dict (ties: the first)."""
    if column not in frame or frame[column].isna().all():
        raise ValueError(f"column={column!r} has no values; allowed: one of {list(frame.columns)}")
    return frame.loc[frame[column].idxmax()].to_dict()


def encode_predictions(predictions: np.ndarray) -> str:
    """Predicted classes as compact text for a JSON file: one byte per image (two past 255 classes), zlib, base64."""
    pred = np.asarray(predictions).reshape(-1)
    dtype = np.uint8 if pred.size == 0 or pred.max() < 256 else np.uint16
    return f"{np.dtype(dtype).name}:" + base64.b64encode(zlib.compress(pred.astype(dtype).tobytes(), 9)).decode()


def decode_predictions(text: str, count: int) -> np.ndarray:
    """The predictions ``encode_predictions`` wrote; ``ValueError`` when they are not ``count`` valid entries."""
    try:
        name, payload = text.split(":", 1)
        pred = np.frombuffer(zlib.decompress(base64.b64decode(payload)), dtype=np.dtype(name)).astype(np.int64)
    except (AttributeError, ValueError, TypeError, zlib.error) as err:
        raise ValueError(f"predictions={str(text)[:40]!r} are not encoded predictions; allowed: "
                         "encode_predictions() text") from err
    if len(pred) != count:
        raise ValueError(f"predictions hold {len(pred)} entries for {count} images; allowed: one per image")
    return pred


def _check_against(against: Any, count: int) -> None:
    if against is None or against == "best":
        return
    if isinstance(against, bool) or not isinstance(against, (int, np.integer)) or not 0 <= against < count:
        raise ValueError(f"against={against!r}; allowed: 'best', None or a point position 0..{count - 1}")


def _paired_columns(accuracy: list[float], predictions: list, labels: np.ndarray, against: Any,
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
            cols.update(delta_pts=0.0, ci_low_pts=float("nan"), ci_high_pts=float("nan"), p_value=float("nan"),
                        significant=None, verdict="reference")
        elif j is None or predictions[i] is None or predictions[j] is None:
            cols.update(delta_pts=float("nan"), ci_low_pts=float("nan"), ci_high_pts=float("nan"),
                        p_value=float("nan"), significant=None, verdict="not compared (no predictions)")
        else:
            test = paired(predictions[j], predictions[i], labels).row()
            test.pop("discordant")
            cols.update(test)
        out.append(cols)
    return out


def as_points(points: Points, allowed: tuple[str, ...] = CONVERT_KEYS, other: str = "sweep_training"
              ) -> list[dict[str, Any]]:
    """A grid dict or a list of dicts as a list of points with plain values, every key in ``allowed``.

    Raises:
        ValueError: not a dict or list of dicts, no points, a key not in ``allowed`` (naming ``other``, the
            sweep that takes it).
    """
    if isinstance(points, Mapping):
        pts = grid(**points)
    else:
        try:
            pts = [dict(p) for p in points]
        except (TypeError, ValueError):
            raise ValueError(f"points={points!r}; allowed: a dict of value lists or a list of dicts") from None
    if not pts:
        raise ValueError("points is empty; allowed: at least one point")
    pts = [{k: _plain(v) for k, v in p.items()} for p in pts]  # values taken from numpy or a DataFrame
    for p in pts:
        unknown = set(p) - set(allowed)
        if unknown:
            hint = f" ({other}() takes {sorted(unknown)})" if unknown <= set(CONVERT_KEYS + TRAIN_KEYS) else ""
            raise ValueError(f"unknown sweep key(s) {sorted(unknown)}{hint}; allowed: {', '.join(allowed)}")
    return pts


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (in tuples too); anything else as it is."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


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


def _store(store: Path, key: str, row: dict) -> None:
    text = json.dumps(row, default=_plain_json)  # checked before the entry is made: nothing half-written
    artifacts.entry(store / f"{key}.json", lambda tmp: tmp.write_text(text), key=key)


def _plain_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a sweep row holds {type(value).__name__} {value!r}, which a cache file cannot keep")


def _decoded(predictions: Any, count: int) -> np.ndarray | None:
    return decode_predictions(predictions, count) if isinstance(predictions, str) else predictions


def _load(store: Path | None, key: str, count: int) -> dict | None:
    if store is None:
        return None
    path = store / f"{key}.json"
    if not artifacts.valid_entry(path, key):
        return None  # missing, or not what its manifest recorded: recomputed
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: recomputed, never trusted
    if not isinstance(row, dict) or "accuracy" not in row:
        return None
    if not isinstance(row.get("predictions"), str):  # written before points kept their predictions:
        path.unlink(missing_ok=True)  # retired, so the point is recomputed and stored again, paired this time
        artifacts.manifest_path(path).unlink(missing_ok=True)
        return None
    try:
        decode_predictions(row["predictions"], count)
    except ValueError:
        return None  # damaged or for another image count: recomputed, never trusted
    return {**row, "cached": True}
