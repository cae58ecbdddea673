"""What is inside a ``.tflite`` flatbuffer: tensors, ops, input/output quantization.

Read with the LiteRT interpreter itself, so what is reported is what the
runtime will see. Corrupt bytes are a ``ValueError``, not a crash.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a TFLite model."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    producer: str | None  # the op that writes it; None for constants and model inputs

    @property
    def is_activation(self) -> bool:
        """Written by an op at run time (as opposed to a weight, bias or model input)."""
        return self.producer is not None

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True)
class IoInfo:
    """A model input or output: dtype, shape and (scale, zero_point) (``(0.0, 0)`` when float)."""

    name: str
    index: int
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


@dataclass(frozen=True)
class ModelInfo:
    """The structure of one TFLite model."""

    inputs: tuple[IoInfo, ...]
    outputs: tuple[IoInfo, ...]
    tensors: tuple[TensorInfo, ...]
    ops: tuple[str, ...]  # op names in execution order, e.g. "CONV_2D"

    def dtype_counts(self, activations_only: bool = False) -> dict[str, int]:
        """How many tensors of each dtype (optionally only activations)."""
        return dict(Counter(t.dtype for t in self.tensors if t.is_activation or not activations_only))

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(self.ops))


def interpreter(model_bytes: bytes, num_threads: int | None = None, keep_tensors: bool = False):
    """A LiteRT interpreter on ``model_bytes`` (``ValueError`` if they are not a TFLite model)."""
    from ai_edge_litert.interpreter import Interpreter

    if not isinstance(model_bytes, (bytes, bytearray)) or len(model_bytes) < 8:
        raise ValueError(f"model bytes of length {len(model_bytes) if model_bytes is not None else 0} "
                         "are not a TFLite flatbuffer; allowed: the bytes of a .tflite file")
    if bytes(model_bytes[4:8]) != b"TFL3":
        raise ValueError("model bytes are not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                         "allowed: the bytes of a .tflite file")
    try:
        return Interpreter(model_content=bytes(model_bytes), num_threads=num_threads,
                           experimental_preserve_all_tensors=keep_tensors)
    except ValueError as err:
        raise ValueError(f"model bytes could not be read as a TFLite model ({err}); "
                         "allowed: the bytes of a valid .tflite file") from None


def read_model(model_bytes: bytes) -> ModelInfo:
    """Inspect a TFLite model without running it."""
    interp = interpreter(model_bytes)
    ops = interp._get_ops_details()  # noqa: SLF001 - the only API listing ops
    producer = {}
    for op in ops:
        for out in op["outputs"]:
            producer[int(out)] = op["op_name"]
    tensors = []
    for t in interp.get_tensor_details():
        q = t.get("quantization_parameters", {})
        tensors.append(TensorInfo(
            index=int(t["index"]), name=t["name"], dtype=np.dtype(t["dtype"]).name,
            shape=tuple(int(s) for s in t["shape"]),
            scales=tuple(float(s) for s in q.get("scales", ())),
            zero_points=tuple(int(z) for z in q.get("zero_points", ())),
            quantized_dimension=int(q.get("quantized_dimension", 0)),
            producer=producer.get(int(t["index"]))))
    return ModelInfo(
        inputs=tuple(_io(d) for d in interp.get_input_details()),
        outputs=tuple(_io(d) for d in interp.get_output_details()),
        tensors=tuple(tensors),
        ops=tuple(op["op_name"] for op in ops),
    )


def _io(detail: dict) -> IoInfo:
    scale, zp = detail.get("quantization", (0.0, 0))
    return IoInfo(name=detail["name"], index=int(detail["index"]), dtype=np.dtype(detail["dtype"]).name,
                  shape=tuple(int(s) for s in detail["shape"]), scale=float(scale), zero_point=int(zp))
