"""Accuracy records: a TFLite model (run through ``litert``) or a Keras model on labelled images, and its
fidelity to the float model with or without labels.

``evaluate`` gives an ``EvalResult``: accuracy, per-class accuracy, confusion
matrix, predictions (for paired comparisons), agreement with a reference and
images per second; given the float model as ``reference``, its ``fidelity``
(``measure.Fidelity``: agreement with its interval, SNR, ... for any task), which
needs no labels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
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
    fidelity: Any = field(default=None, repr=False)  # measure.Fidelity, when the reference was a model

    @property
    def labelled(self) -> bool:
        """Measured against labels (else ``accuracy`` is ``None`` and ``fidelity`` says how close it stays)."""
        return self.accuracy is not None

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


def evaluate(model: Any, images: Any, labels: np.ndarray | None = None, spec: InputSpec = InputSpec(),
             reference: Any = None, batch_size: int | None = DEFAULT_BATCH,
             num_threads: int | None = None, task: str | None = None) -> EvalResult:
    """Accuracy of a TFLite model on labelled data, and its fidelity to the float model with or without labels.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or path.
        images: raw uint8 pixels ``(N, H, W, C)`` of the shape the model reads, a float array ``(N, ...)`` fed as
            it is, one array per input, or a ``samples.Samples``.
        labels: ``N`` integer labels ``0..K-1`` (K: the model's outputs), or ``None``: then ``reference`` must be
            the float model, and the record's ``accuracy`` is ``None``.
        spec: the float range the model was trained on (uint8 pixels fed to float/int8 inputs).
        reference: predictions (or an ``EvalResult``) of another model, e.g. float, to report agreement with;
            or the float model itself (a ``.tflite``, ``ConvertedModel``, Keras model, SavedModel or
            ``.keras``/``.h5`` path, converted with the reference recipe): the record then carries its
            ``fidelity`` to that model's outputs (``measure.Fidelity``), labels or not.
        batch_size: images per invoke (``None``: all in one).
        task: what the model does (``tasks.TASKS``), in place of what its outputs show.

    Raises:
        ValueError: images of another shape than the model reads, labels out of range, no labels and no
            float model to measure against.
    """
    from .samples import Samples

    io = model_io(model)
    classes = io.classes
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in (3, 4):
        images = checks.images("images", images, shape=io.image_shape)
    samples = Samples.of(images)
    if labels is not None:
        labels = checks.labels("labels", labels, len(samples), max(io.class_counts, default=classes) or None)
    is_model = reference is not None and not isinstance(reference, (np.ndarray, list, tuple, EvalResult))
    if labels is None and not is_model:
        raise ValueError("labels=None and no float model to measure against; allowed: labels, or reference= the "
                         "float model (a .tflite, ConvertedModel, Keras model or model file)")
    if batch_size is not None:
        batch_size = checks.number("batch_size", batch_size, low=1, integer=True)
    threads = default_threads() if num_threads is None else num_threads
    from . import measure

    ran = measure.outputs_of(model, samples, spec, batch_size=batch_size, num_threads=threads)
    measured = None
    if is_model:
        base = measure.outputs_of(float_reference(reference, spec), samples, spec, batch_size=batch_size,
                                  num_threads=threads)
        measured = measure.measure(base, ran, measure.task_of(base, samples.inputs[0].shape, task, labels), samples)
    if measured is not None and measured.predictions is not None:
        pred, classes = measured.predictions, measured.classes
    else:  # the output the labels fit (tasks.main_output), the first of a one-output model
        own = measure.task_of(ran, samples.inputs[0].shape, task, labels).main
        scores = ran.values[own].reshape(len(samples), -1)
        pred, classes = scores.argmax(axis=1), scores.shape[1]
    if labels is None:
        agreement = measured.headline.get("agreement")
        return EvalResult(None, np.zeros(0), np.zeros((0, 0), np.int64), pred,
                          None if agreement is None else agreement.value, len(samples) / max(ran.seconds, 1e-9),
                          ran.seconds, len(samples), measured)
    result = _record(pred, labels, classes, ran.seconds, None if is_model else reference)
    if measured is not None:
        agreement = measured.headline.get("agreement")
        result = replace(result, fidelity=measured, agreement=None if agreement is None else agreement.value)
    return result


def float_reference(model: Any, spec: InputSpec = InputSpec()) -> Any:
    """The float model as a ``.tflite`` to run: as it is, or converted with the reference recipe (``float32``)."""
    if isinstance(model, (bytes, bytearray)) or hasattr(model, "tflite"):
        return model
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".tflite"):
        return model
    import warnings

    from .convert import QuantizationWarning, convert
    from .recipes import reference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        return convert(model, reference().name, spec=spec)


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
