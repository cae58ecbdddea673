"""Run a TFLite model on MNIST with the LiteRT interpreter, batched, I/O handled right.

Input handling follows the model's input tensor:

* uint8 input: raw pixels go in as they are; the model's (scale, zero_point),
  i.e. the mean/std it was converted with, decide how they are read;
* int8 input: pixels are normalized per the ``InputSpec`` and quantized with the
  model's own scale and zero point;
* float input: pixels are normalized per the ``InputSpec``.

Quantized outputs are dequantized with the output's scale and zero point.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import diagnose, validate
from .data import InputSpec
from .tflite_info import interpreter

# Measured on LeNet: batches of a few hundred images keep the activations in
# cache and beat both one huge batch and one image per invoke.
DEFAULT_BATCH = 256


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


def model_bytes(model: Any) -> bytes:
    """The ``.tflite`` bytes of a ``ConvertedModel``, a path, or bytes."""
    if hasattr(model, "tflite"):
        return model.tflite
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model={str(path)!r} does not exist; allowed: a .tflite file path, "
                             "its bytes, or a ConvertedModel")
        return path.read_bytes()
    raise ValueError(f"model={type(model).__name__}; allowed: a ConvertedModel, .tflite bytes or a path")


def prepare_input(images: np.ndarray, dtype: str, scale: float, zero_point: int,
                  spec: InputSpec = InputSpec()) -> np.ndarray:
    """Turn raw uint8 pixels into what an input of ``dtype`` expects (see module doc)."""
    if dtype == "uint8":
        return images
    x = spec.normalize(images)
    if dtype == "float32":
        return x
    if dtype in ("int8", "int16"):
        info = np.iinfo(dtype)
        q = np.round(x / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    raise ValueError(f"model input dtype {dtype!r} is not supported; allowed: uint8, int8, int16, float32")


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values from quantized ones: ``scale * (q - zero_point)`` (floats pass through)."""
    if scale == 0.0 or np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    return (scale * (values.astype(np.float32) - zero_point)).astype(np.float32)


def predict(model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
            batch_size: int | None = DEFAULT_BATCH, num_threads: int | None = None) -> np.ndarray:
    """Class scores (dequantized) for raw uint8 ``images``, shape ``(N, 10)``.

    The input is resized once to ``batch_size`` and the model invoked once per
    batch; ``batch_size=1`` is the classic one-image-per-invoke loop.
    """
    data = validate.images("images", images)
    if batch_size is None:
        batch_size = len(data)
    batch_size = validate.number("batch_size", batch_size, low=1, integer=True)
    interp = interpreter(model_bytes(model), num_threads=num_threads or default_threads())
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    x = prepare_input(data, np.dtype(inp["dtype"]).name, in_scale, in_zp, spec)
    batch = min(batch_size, len(x))
    _run(lambda: (interp.resize_tensor_input(inp["index"], [batch, 28, 28, 1]), interp.allocate_tensors()))
    scores = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        if len(chunk) != batch:  # the last, shorter batch
            _run(lambda: (interp.resize_tensor_input(inp["index"], [len(chunk), 28, 28, 1]),
                          interp.allocate_tensors()))
        interp.set_tensor(inp["index"], chunk)
        _run(interp.invoke)
        scores.append(dequantize(interp.get_tensor(out["index"]), out_scale, out_zp).reshape(len(chunk), -1))
    return np.concatenate(scores)


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
             reference: Any = None, batch_size: int | None = DEFAULT_BATCH,
             num_threads: int | None = None) -> EvalResult:
    """Accuracy of a TFLite model on raw uint8 ``images``.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or path.
        images: raw uint8 pixels ``(N, 28, 28, 1)``.
        labels: ``N`` integer labels 0..9.
        spec: the float range the model was trained on (for float/int8 inputs).
        reference: predictions (or an ``EvalResult``) of another model, e.g.
            float, to report agreement with.
        batch_size: images per invoke (``None``: all in one).
    """
    labels = np.asarray(labels).reshape(-1)
    data = validate.images("images", images)
    if len(labels) != len(data):
        raise ValueError(f"labels has {len(labels)} entries for {len(data)} images; allowed: one label per image")
    start = time.perf_counter()
    scores = predict(model, data, spec, batch_size, num_threads)
    seconds = time.perf_counter() - start
    pred = scores.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
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
        predictions=pred, agreement=agreement, images_per_second=len(data) / max(seconds, 1e-9),
        seconds=seconds, count=len(data))


def evaluate_keras(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec()) -> EvalResult:
    """The same record for a Keras model (the float reference before conversion)."""
    data = validate.images("images", images)
    labels = np.asarray(labels).reshape(-1)
    start = time.perf_counter()
    pred = np.asarray(model.predict(spec.normalize(data), batch_size=1024, verbose=0)).argmax(axis=1)
    seconds = time.perf_counter() - start
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / confusion.sum(axis=1)
    return EvalResult(float(np.mean(pred == labels)), per_class, confusion, pred, None,
                      len(data) / max(seconds, 1e-9), seconds, len(data))


def _run(call):
    try:
        return call()
    except RuntimeError as err:
        raise diagnose.QuantizationError(diagnose.explain(str(err))) from None
