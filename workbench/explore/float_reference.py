"""Sweeps and explorers without labels: every point measured against the float model's own outputs.

The float model is the reference recipe's conversion (``recipes.reference()``, ``float32``) of the same source,
run once per image set (``float_reference``; cached as an ``.npz`` beside the sweep's points, keyed by the
model's content, the training range and the images). Each point then gets, from ``measure``:

* ``agreement``: the share of images on which its class is the float model's, with ``agreement_low`` and
  ``agreement_high``, the exact 95 % binomial (Clopper-Pearson) interval;
* ``snr_db``: ``10·log10(Σ f² / Σ (q − f)²)`` of its classifier output against the float model's.

The float model's classes stand in for the labels wherever a labelled sweep uses them (the paired test
against the best point, a screening sweep's intervals): a point's agreement is its accuracy at predicting
the float model. Plots and explorers draw ``agreement`` where they draw ``accuracy`` (``metric_of``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core import artifacts, measure
from ..core.data import InputSpec
from ..core.samples import Samples

COLUMNS = ("agreement", "agreement_low", "agreement_high", "snr_db")
AGREEMENT_LABEL = "agreement with the float model (%)"


def float_reference(source: Any, images: np.ndarray, spec: InputSpec, store: Path | None = None,
                    model_fp: str | None = None) -> measure.Reference:
    """The float model's outputs on ``images`` (the reference recipe's conversion of ``source``), from the cache
    folder ``store`` when it holds them for the same model content (``model_fp``), range and images.

    Raises:
        ValueError: the float model did not convert or run (the message says why), or its outputs are not a
            classifier's (sweeps and explorers without labels measure the agreement of classes).
    """
    from .fingerprints import array_fingerprint

    ref = measure.Reference(Samples.of(images), spec)
    key = None if store is None or model_fp is None else \
        artifacts.config_key("sweep-float-reference", model_fp, spec, array_fingerprint(images))
    path = None if key is None else store / f"float-{key}.npz"
    if path is not None and artifacts.valid_entry(path, key):
        try:
            with np.load(path) as data:
                names = tuple(str(n) for n in data["names"])
                values = tuple(data[f"output_{i}"] for i in range(len(names)))
            _set(ref, measure.Outputs(names, values))
        except (OSError, ValueError, KeyError):
            ref = measure.Reference(Samples.of(images), spec)  # unreadable: taken again, never trusted
    if ref.values is None:
        ref.take(source)
        if ref.values is None:
            raise ValueError(f"labels=None: every point is measured against the float model, but {ref.error}; "
                             "allowed: labels, or a model whose float32 conversion runs on these images")
        if path is not None:
            outputs = ref.values
            artifacts.entry(path, lambda tmp: _save(tmp, outputs), key=key)
    if ref.task.kind != "classifier":
        raise ValueError(f"labels=None: the model's outputs {ref.values.shapes()} are a {ref.task.kind} "
                         f"({ref.task.reason}); allowed here: a classifier (its agreement with the float model); "
                         "measure other models with wb.evaluate or `python -m workbench report`")
    return ref


def subset(ref: measure.Reference, rows: Sequence[int] | np.ndarray | slice) -> measure.Reference:
    """The same float outputs, only ``rows`` (a screening round's images, an explorer's live subset)."""
    part = measure.Reference(ref.samples.take(rows), ref.spec, ref.word)
    _set(part, measure.Outputs(ref.values.names, tuple(v[rows] for v in ref.values.values)), ref.task)
    return part


def predictions(ref: measure.Reference) -> np.ndarray:
    """The float model's class per image: what stands in for the labels."""
    main = ref.values.values[0]
    return main.reshape(len(main), -1).argmax(axis=1)


def fidelity_columns(ref: measure.Reference, outputs: measure.Outputs) -> tuple[dict[str, float], np.ndarray]:
    """A point's ``agreement`` (with its interval) and ``snr_db`` against the float model, and its classes."""
    fid = ref.fidelity(outputs)
    row = fid.columns()
    return {k: float("nan") if row[k] is None else float(row[k]) for k in COLUMNS}, fid.predictions


def signal_power(ref: measure.Reference) -> np.ndarray:
    """Per image, ``Σ f²`` of the float model's classifier output: splits ``snr_db`` over image subsets."""
    main = ref.values.values[0].astype(np.float64)
    return np.sum(main.reshape(len(main), -1) ** 2, axis=1)


def combined_snr_db(parts: Sequence[tuple[float, float]]) -> float:
    """``snr_db`` over several image subsets from each subset's ``(snr_db, Σ f²)``: ``10·log10(Σ signal / Σ
    noise)`` with each subset's noise ``signal · 10^(−snr_db/10)``."""
    signal = sum(s for _, s in parts)
    noise = sum(0.0 if math.isinf(db) and db > 0 else s * 10 ** (-db / 10) for db, s in parts)
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def metric_of(frame) -> str:
    """The column a sweep frame is ranked and drawn by: ``agreement`` for a sweep without labels (it has
    ``snr_db`` and no accuracy), else ``accuracy``."""
    if "snr_db" in frame and "agreement" in frame and ("accuracy" not in frame or not frame["accuracy"].notna().any()):
        return "agreement"
    return "accuracy"


def _set(ref: measure.Reference, outputs: measure.Outputs, task: Any = None) -> None:
    ref.values = outputs
    ref.task = task or measure.task_of(outputs, ref.samples.inputs[0].shape, ref.word)
    ref.tried = True


def _save(path: Path, outputs: measure.Outputs) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, names=np.array(outputs.names), **{f"output_{i}": v for i, v in enumerate(outputs.values)})
