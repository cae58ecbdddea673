"""What a model reads and writes: one ``ModelIO`` record for every kind of model the workbench takes.

``model_io(model)`` describes a Keras model (its input and output tensors), a
SavedModel (the signature in its ``saved_model.pb``, parsed without loading the
graph), a ``sources.FrozenGraph`` (its arrays and, when known, input shapes), and a
``.tflite`` (a ``ConvertedModel``, bytes or a file, read by ``litert``). A model
that would have to be loaded first (a ``.keras``/``.h5`` or frozen ``.pb`` path) is
described as unknown: no inputs, no outputs, so every check that needs a shape is
skipped until the model is loaded or converted. A SavedModel's inputs and outputs
are in the order of their signature keys.

Every record can hold several inputs and several outputs; the properties
(``input_shape``, ``image_shape``, ``classes``) are about the first of each, which
is what image classification reads.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape (batch first; ``None`` where unknown) and dtype name."""

    name: str
    shape: Shape | None = None  # None: not even the rank is known
    dtype: str | None = None


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs, in the model's order (empty when not known without loading it)."""

    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @property
    def input_shape(self) -> Shape | None:
        """The first input's shape without the batch dimension (``(H, W, C)`` for images; ``None`` entries
        where unknown), or ``None`` when not known."""
        if not self.inputs or self.inputs[0].shape is None or len(self.inputs[0].shape) < 1:
            return None
        return tuple(self.inputs[0].shape[1:])

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """The first input's ``(H, W, C)`` when it is a batch of images of fixed size, else ``None``."""
        shape = self.input_shape
        if shape is None or len(shape) != 3 or any(d is None or d <= 0 for d in shape):
            return None
        return tuple(int(d) for d in shape)

    @property
    def classes(self) -> int | None:
        """The number of scores the first output gives per image (the class count), where known."""
        if not self.outputs or self.outputs[0].shape is None or len(self.outputs[0].shape) < 2:
            return None
        dims = self.outputs[0].shape[1:]
        if any(d is None or d <= 0 for d in dims):
            return None
        return int(math.prod(dims))


    @property
    def class_counts(self) -> tuple[int, ...]:
        """The class count of every output of shape ``(N, K)`` with ``K`` known (labels may belong to any of them)."""
        return tuple(int(t.shape[1]) for t in self.outputs
                     if t.shape is not None and len(t.shape) == 2 and t.shape[1] is not None and t.shape[1] > 0)


def model_io(model: Any) -> ModelIO:
    """The ``ModelIO`` of a Keras model, a SavedModel (``sources.SavedModel`` or its folder), a ``FrozenGraph``, a
    ``.tflite`` (``ConvertedModel``, bytes or file), or an unknown record for a model not loaded yet (a
    ``.keras``/``.h5`` or frozen ``.pb`` path, a path that does not exist, a SavedModel without the signature).

    Raises:
        ValueError: bytes (or a file other than a model folder, ``.keras``/``.h5``/``.pb``) that are not a
            readable ``.tflite``.
    """
    from .sources import KERAS_SUFFIXES, FrozenGraph, SavedModel

    if isinstance(model, FrozenGraph):
        shapes = model.input_shapes or (None,) * len(model.input_arrays)
        return ModelIO(tuple(TensorSpec(name, None if shape is None else tuple(shape))
                             for name, shape in zip(model.input_arrays, shapes)),
                       tuple(TensorSpec(name) for name in model.output_arrays))
    if isinstance(model, SavedModel):
        return _saved_model(Path(model.path), model.signature)
    if hasattr(model, "info") or isinstance(model, (bytes, bytearray)):
        return _tflite(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.name == "saved_model.pb":
            path = path.parent
        if (path / "saved_model.pb").is_file():
            return _saved_model(path)
        if not path.is_file() or path.suffix.lower() in (*KERAS_SUFFIXES, ".pb"):
            return ModelIO()
        return _tflite(path)
    if hasattr(model, "input_shape") or hasattr(model, "inputs"):
        return _keras(model)
    return ModelIO()


def _tflite(model: Any) -> ModelIO:
    from . import litert

    info = model.info if hasattr(model, "info") else litert.read_model(model)
    return ModelIO(tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in info.inputs),
                   tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in info.outputs))


def _saved_model(folder: Path, signature: str = "serving_default") -> ModelIO:
    """A SavedModel's signature, read from its ``saved_model.pb`` (unknown when unreadable: the converter says why)."""
    from .keras_compat import saved_model_proto, tf

    try:
        proto = saved_model_proto().FromString((folder / "saved_model.pb").read_bytes())
    except Exception:  # noqa: BLE001 - protobuf DecodeError and friends: described as unknown
        return ModelIO()
    for graph in proto.meta_graphs:
        if signature in graph.signature_def:
            sig = graph.signature_def[signature]
            return ModelIO(*(tuple(_signature_tensor(tf, key, tensors[key]) for key in sorted(tensors))
                             for tensors in (sig.inputs, sig.outputs)))
    return ModelIO()


def _signature_tensor(tf: Any, key: str, info: Any) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(None if d.size < 0 else int(d.size) for d in shape.dim)
    return TensorSpec(key, dims, tf.dtypes.as_dtype(info.dtype).name)


def _keras(model: Any) -> ModelIO:
    """A Keras model's tensors (``model.inputs``/``outputs``), else its ``input_shape``/``output_shape``."""
    tensors = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if all(isinstance(t, (list, tuple)) and t for t in tensors):
        return ModelIO(*(tuple(_tensor(t) for t in group) for group in tensors))
    return ModelIO(_specs("input", getattr(model, "input_shape", None)),
                   _specs("output", getattr(model, "output_shape", None)))


def _tensor(tensor: Any) -> TensorSpec:
    shape = getattr(tensor, "shape", None)
    try:
        dims = None if shape is None else tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):  # an unknown rank
        dims = None
    dtype = getattr(tensor, "dtype", None)
    return TensorSpec(str(getattr(tensor, "name", "")), dims, None if dtype is None else getattr(dtype, "name",
                                                                                                  str(dtype)))


def _specs(role: str, shapes: Any) -> tuple[TensorSpec, ...]:
    """Specs from Keras-style shapes: one tuple, or a list of tuples (one per input or output)."""
    if isinstance(shapes, tuple) and all(d is None or isinstance(d, int) for d in shapes):
        shapes = [shapes]
    if not isinstance(shapes, (list, tuple)):
        return ()
    return tuple(TensorSpec(f"{role}_{i}", tuple(None if d is None else int(d) for d in shape))
                 for i, shape in enumerate(shapes) if isinstance(shape, tuple))
