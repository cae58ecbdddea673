"""The training sweep: a QAT model per point and seed, trained (or loaded) and evaluated as fake-quant."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..core import artifacts, checks, parallel
from ..core.data import Dataset
from ..core.model_io import model_io
from .fingerprints import array_fingerprint
from .grid import TRAIN_KEYS, Points, as_points
from .paired_columns import check_against, paired_columns
from . import point_cache
from .point_cache import decoded, encode_predictions

ARCHITECTURES = ("lenet", "mobilenet")


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
    check_against(against, len(pts))
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
    found = [point_cache.load(store, key, len(images)) for key in keys]
    owned = None
    if client is not None and any(row is None for row in found):
        client, own = parallel.connect(client)
        owned = client if own else None
    bar = tqdm(total=len(jobs), initial=sum(row is not None for row in found), desc=desc, unit="point",
               disable=not progress)

    def finish(j: int, row: dict) -> None:
        if store is not None and not row.get("error"):
            point_cache.store(store, keys[j], row)
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
                           "error": f"{type(err).__name__}: {checks.first_line(err)}", "predictions": None}
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
        preds.append(decoded(row.pop("predictions", None), len(images)))
        rows.append({"model": label, "bits": q.bits, "qat_epochs": q.epochs, "scheme": q.scheme, "seed": cfg.seed,
                     "epochs": cfg.epochs + q.epochs, **row, "_point": i})
    tests = paired_columns([r["accuracy"] for r in rows], preds, labels, against,
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
    described = model_io(built)
    shape, classes = described.input_shape, described.classes
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
