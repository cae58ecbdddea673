"""Accuracy records: a TFLite model (run through ``litert``) or a Keras model on labelled images.

``evaluate`` gives an ``EvalResult``: accuracy, per-class accuracy, confusion
matrix, predictions (for paired comparisons), agreement with a reference and
images per second.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import litert, checks
from .data import InputSpec
from .litert import DEFAULT_BATCH
from .model_io import model_io


def default_threads() -> int:
    """Interpreter threads for batched runs: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Accuracy and friends for one model on one labelled image set."""

    accuracy: float
    per_class_accuracy: np.ndarray = field(repr=False)
    confusion: np.ndarray = field(repr=False)  # rows: true label, columns: predicted
    predictions: np.ndarray = field(repr=False)
    agreement: float | None  # fraction of predictions equal to the reference's
    images_per_second: float
    seconds: float
    count: int

    def summary(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "agreement": self.agreement,
                "images_per_s": self.images_per_second, "n": self.count}


def predict(model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
            batch_size: int | None = DEFAULT_BATCH, num_threads: int | None = None) -> np.ndarray:
    """Class scores (dequantized) for raw uint8 ``images``, shape ``(N, classes)``.

    The input is resized once to ``batch_size`` and the model invoked once per
    batch; ``batch_size=1`` is the classic one-image-per-invoke loop.

    Raises:
        ValueError: images that are not uint8 or not the shape the model reads.
    """
    data = checks.images("images", images, shape=model_io(model).image_shape)
    if batch_size is not None:
        batch_size = checks.number("batch_size", batch_size, low=1, integer=True)
    return litert.run(model, data, spec, batch_size=batch_size,
                      num_threads=default_threads() if num_threads is None else num_threads).outputs


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
             reference: Any = None, batch_size: int | None = DEFAULT_BATCH,
             num_threads: int | None = None) -> EvalResult:
    """Accuracy of a TFLite model on raw uint8 ``images``.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or path.
        images: raw uint8 pixels ``(N, H, W, C)`` of the shape the model reads.
        labels: ``N`` integer labels ``0..K-1`` (K: the model's outputs).
        spec: the float range the model was trained on (for float/int8 inputs).
        reference: predictions (or an ``EvalResult``) of another model, e.g.
            float, to report agreement with.
        batch_size: images per invoke (``None``: all in one).

    Raises:
        ValueError: images of another shape than the model reads, labels out of range.
    """
    io = model_io(model)
    classes = io.classes
    data = checks.images("images", images, shape=io.image_shape)
    labels = checks.labels("labels", labels, len(data), classes)
    start = time.perf_counter()
    scores = predict(model, data, spec, batch_size, num_threads)
    seconds = time.perf_counter() - start
    return _record(scores.argmax(axis=1), labels, classes, seconds, reference)


def evaluate_keras(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec()) -> EvalResult:
    """The same record for a Keras model (the float reference before conversion)."""
    io = model_io(model)
    data = checks.images("images", images, shape=io.image_shape)
    classes = io.classes
    labels = checks.labels("labels", labels, len(data), classes)
    start = time.perf_counter()
    pred = np.asarray(model.predict(spec.normalize(data), batch_size=1024, verbose=0)).argmax(axis=1)
    return _record(pred, labels, classes, time.perf_counter() - start, None)


def from_predictions(predictions: np.ndarray, labels: np.ndarray, classes: int, seconds: float,
                     reference: Any = None) -> EvalResult:
    """The ``EvalResult`` of predictions made elsewhere (a worker process, a cluster), ``seconds`` being theirs."""
    return _record(np.asarray(predictions).reshape(-1), labels, classes, seconds, reference)


def _record(pred: np.ndarray, labels: np.ndarray, classes: int, seconds: float, reference: Any) -> EvalResult:
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / confusion.sum(axis=1)
    agreement = None
    if reference is not None:
        ref = np.asarray(getattr(reference, "predictions", reference)).reshape(-1)
        if len(ref) != len(pred):
            raise ValueError(f"reference has {len(ref)} predictions for {len(pred)} images")
        agreement = float(np.mean(ref == pred))
    return EvalResult(
        accuracy=float(np.mean(pred == labels)), per_class_accuracy=per_class, confusion=confusion,
        predictions=pred, agreement=agreement, images_per_second=len(labels) / max(seconds, 1e-9),
        seconds=seconds, count=len(labels))
