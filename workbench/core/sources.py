"""Where a user's model comes from: a ``.keras``/``.h5`` file, a SavedModel folder, a frozen ``.pb``, a ``.tflite``.

``load_source`` turns a path (and, for a frozen graph, the ``tflite_convert``
arrays and shapes) into something ``convert`` and ``evaluate`` take:

* ``.keras`` / ``.h5``: the Keras model itself (loaded with tf_keras);
* a SavedModel folder: a ``SavedModel`` (path and signature, default ``serving_default``);
* a TF1 frozen GraphDef ``.pb``: a ``FrozenGraph`` (path, input and output arrays, input shapes);
* a ``.tflite``: its bytes (evaluate, inspect, per-layer error, Netron; there is nothing to convert).

Every check that can be made before TensorFlow runs a converter is made here, with
one error naming the flag, the value and what is allowed (an array name that is
not in the graph lists the names that are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checks

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# What quantization-aware training leaves in a model: tfmot's Keras layers, TF's fake-quant graph ops
# (FakeQuantWithMinMaxVars, ...PerChannel, ...Args) and, in a .tflite, LiteRT's FAKE_QUANT op or a QUANTIZE
# whose output a DEQUANTIZE reads right away (the fake-quant a float conversion of a QAT model keeps).
QAT_LAYERS = ("QuantizeWrapperV2", "QuantizeWrapper", "QuantizeLayer")
FAKE_QUANT_GRAPH_OP = b"FakeQuantWithMinMax"


@dataclass(frozen=True)
class SavedModel:
    """A SavedModel folder and the signature to convert."""

    path: Path
    signature: str = "serving_default"

    def __fspath__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class FrozenGraph:
    """A TF1 frozen GraphDef with the arrays ``tflite_convert --graph_def_file`` needs."""

    path: Path
    input_arrays: tuple[str, ...]
    output_arrays: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...] | None = None

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """``(N, H, W, C)`` of the first input, like a Keras model's ``input_shape``."""
        return None if not self.input_shapes else (None, *self.input_shapes[0][1:])


def load_source(path: str | os.PathLike, *, signature: str = "serving_default",
                input_arrays: Any = None, output_arrays: Any = None, input_shapes: Any = None) -> Any:
    """The model at ``path``, ready for ``convert`` (or, for ``.tflite``, for ``evaluate``).

    Args:
        path: a ``.keras``/``.h5`` file, a SavedModel folder, a frozen ``.pb`` or a ``.tflite``.
        signature: the SavedModel signature to convert.
        input_arrays, output_arrays: tensor names of a frozen graph (``"image"`` or ``["a", "b"]``;
            a trailing ``:0`` is allowed).
        input_shapes: one shape per input array, e.g. ``[[1, 28, 28, 1]]`` or ``"1,28,28,1"``
            (``tflite_convert``'s form, ``:`` between inputs); default: from the graph.

    Raises:
        ValueError: a missing path, an unknown kind of file, a signature or array not in the
            model, a shape that does not match the number of inputs.
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"model={str(file)!r} does not exist; allowed: a .keras/.h5 file, a SavedModel folder, "
                         "a frozen .pb or a .tflite")
    if file.is_dir():
        return saved_model(file, signature)
    suffix = file.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return keras_file(file)
    if suffix == ".pb":
        if file.name == "saved_model.pb":
            return saved_model(file.parent, signature)
        return frozen_graph(file, input_arrays, output_arrays, input_shapes)
    if suffix == ".tflite":
        from .litert import interpreter

        data = file.read_bytes()
        interpreter(data)  # a clear ValueError for bytes that are not a TFLite model
        return data
    raise ValueError(f"model={str(file)!r} has suffix {suffix!r}; allowed: .keras, .h5, .pb, .tflite or a "
                     "SavedModel folder")


def keras_file(path: Path):
    """A ``.keras`` / ``.h5`` model loaded with tf_keras (no compile state needed).

    A QAT model's tfmot layers load inside tfmot's ``quantize_scope``; tfmot 0.8.1 reads
    them back from ``.h5`` (and SavedModel) files, not from the ``.keras`` format.
    """
    from .keras_compat import keras

    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as err:  # noqa: BLE001 - h5py/zip/deserialization errors all mean "not a readable model"
        error = err
    if _has_tfmot_layers(path):
        import tensorflow_model_optimization as tfmot

        try:
            with tfmot.quantization.keras.quantize_scope():
                return keras.models.load_model(str(path), compile=False)
        except Exception as err:  # noqa: BLE001 - as above
            if path.suffix.lower() == ".keras":
                raise ValueError(f"model={str(path)!r} is a QAT model in the .keras format, which tfmot cannot "
                                 f"load back ({type(err).__name__}: {str(err)[:120]}); allowed: the QAT model "
                                 "saved with model.save('model.h5') or as a SavedModel folder") from None
            error = err
    raise ValueError(f"model={str(path)!r} could not be loaded as a Keras model ({type(error).__name__}: "
                     f"{str(error)[:200]}); allowed: a file written by model.save()") from None


def is_qat(source: Any) -> bool:
    """Whether a model was trained with quantization-aware training: it carries fake-quant, read off the source.

    * a Keras model: tfmot's QAT layers (``QAT_LAYERS``);
    * a ``.keras``/``.h5`` file: those layers named in its configuration (nothing is loaded);
    * a SavedModel folder (a path or ``SavedModel``) or a frozen graph (``FrozenGraph`` or a ``.pb``
      path): ``FakeQuantWithMinMax*`` ops in its protobuf;
    * a ``.tflite`` (bytes, a path or a ``ConvertedModel``): fake-quant left in it, as ``FAKE_QUANT``
      ops or as a ``QUANTIZE`` read at once by a ``DEQUANTIZE`` (a QAT model converted to float32 keeps
      them; a quantized conversion turns them into quantized tensors, and is not a QAT model).

    Anything else, or a path that does not exist, is ``False``.
    """
    if hasattr(source, "layers"):
        return any(type(layer).__name__ in QAT_LAYERS for layer in source.layers)
    if isinstance(getattr(source, "tflite", None), (bytes, bytearray)):
        source = source.tflite
    if isinstance(source, (bytes, bytearray)):
        return _has_fake_quant_op(bytes(source))
    if isinstance(source, FrozenGraph):
        source = source.path
    if not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    if path.is_dir():
        path = path / "saved_model.pb"
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return _has_tfmot_layers(path)
    if suffix == ".tflite":
        return _has_fake_quant_op(path.read_bytes())
    return FAKE_QUANT_GRAPH_OP in path.read_bytes()


def _has_fake_quant_op(tflite: bytes) -> bool:
    from .litert import read_model

    ops = read_model(tflite).op_details
    dequantized = {i for op in ops if op.name == "DEQUANTIZE" for i in op.inputs}
    return any(op.name == "FAKE_QUANT" or (op.name == "QUANTIZE" and dequantized & set(op.outputs)) for op in ops)


def _has_tfmot_layers(path: Path) -> bool:
    """Whether a Keras file's configuration names tfmot's QAT layers (``.keras``: its config.json; ``.h5``: raw)."""
    names = tuple(name.encode() for name in QAT_LAYERS)
    import zipfile

    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                data = archive.read("config.json")
        else:
            data = path.read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile):  # not a readable file: the caller's first error stands
        return False
    return any(name in data for name in names)


def saved_model(path: Path, signature: str = "serving_default") -> SavedModel:
    """A SavedModel folder, its signature checked to exist."""
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"model={str(path)!r} is a folder without saved_model.pb; allowed: a SavedModel folder")
    if not isinstance(signature, str) or not signature:
        raise ValueError(f"signature={signature!r}; allowed: a signature name such as 'serving_default'")
    from .keras_compat import tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001 - a corrupt SavedModel is the user's file, not a TFLite failure
        raise ValueError(f"model={str(path)!r} could not be read as a SavedModel ({type(err).__name__}: "
                         f"{str(err)[:200]}); allowed: a folder written by tf.saved_model.save or model.save") from None
    if signature not in loaded.signatures:
        raise ValueError(f"signature={signature!r} is not in {str(path)!r}; allowed: "
                         f"{', '.join(map(repr, loaded.signatures)) or 'none: the SavedModel has no signatures'}")
    return SavedModel(path, signature)


def check_saved_model_file(path: Path) -> None:
    """Parse a SavedModel folder's ``saved_model.pb`` (cheap, no graph loaded): a corrupt file is named as such."""
    from .keras_compat import saved_model_proto

    try:
        saved_model_proto().FromString((Path(path) / "saved_model.pb").read_bytes())
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError and friends
        raise ValueError(f"model={str(path)!r}: saved_model.pb could not be read as a SavedModel "
                         f"({type(err).__name__}); allowed: a folder written by tf.saved_model.save or "
                         "model.save") from None


def frozen_graph(path: Path, input_arrays: Any, output_arrays: Any, input_shapes: Any = None) -> FrozenGraph:
    """A frozen GraphDef whose arrays are checked against the graph's nodes."""
    from .keras_compat import tf

    inputs = _arrays("input_arrays", input_arrays)
    outputs = _arrays("output_arrays", output_arrays)
    try:
        graph = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError: not a GraphDef
        raise ValueError(f"graph_def_file={str(path)!r} is not a frozen GraphDef ({type(err).__name__}); "
                         "allowed: a .pb written by tf.io.write_graph or freeze_graph") from None
    nodes = {node.name: node for node in graph.node}
    for flag, names in (("input_arrays", inputs), ("output_arrays", outputs)):
        for name in names:
            if name not in nodes:
                candidates = [n.name for n in graph.node if n.op == "Placeholder"] if flag == "input_arrays" else \
                    [n.name for n in graph.node if n.op in ("Identity", "Softmax")][-5:]
                raise ValueError(f"{flag}: {name!r} is not a node of {path.name}; allowed: "
                                 f"{', '.join(map(repr, candidates)) or 'a node name of the graph'}")
    shapes = _shapes(input_shapes, len(inputs))
    for name, shape in zip(inputs, shapes or ()):
        graph_dims = nodes[name].attr["shape"].shape
        fixed = [int(d.size) for d in graph_dims.dim]
        if graph_dims.unknown_rank or not fixed:
            continue
        if len(fixed) != len(shape) or any(f >= 0 and f != s for f, s in zip(fixed[1:], shape[1:])):
            wanted = ",".join("?" if f < 0 else str(f) for f in fixed)
            raise ValueError(f"input_shapes={','.join(map(str, shape))} does not match input {name!r} of "
                             f"{path.name}, which is {wanted}; allowed: that shape (any batch size "
                             f"first), e.g. '{','.join('1' if f < 0 else str(f) for f in [1, *fixed[1:]])}'")
    if shapes is None:
        found = []
        for name in inputs:
            dims = nodes[name].attr["shape"].shape.dim
            found.append(tuple(max(int(d.size), 1) if i == 0 else int(d.size) for i, d in enumerate(dims)))
        shapes = tuple(found) if all(s and min(s) > 0 for s in found) else None
    return FrozenGraph(path, inputs, outputs, shapes)


def _arrays(flag: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    try:
        names = tuple(str(v).strip() for v in value)
    except TypeError:
        names = ()
    names = tuple(n[:-2] if n.endswith(":0") else n for n in names)
    if not names or not all(names):
        raise ValueError(f"{flag}={value!r}; allowed: one or more tensor names of the graph (comma-separated)")
    return names


def _shapes(value: Any, count: int) -> tuple[tuple[int, ...], ...] | None:
    if value is None:
        return None
    value_shown = value
    if isinstance(value, str):
        value = [[d for d in part.split(",")] for part in value.split(":")]
    try:
        shapes = tuple(tuple(int(d) for d in shape) for shape in value)
    except (TypeError, ValueError):
        raise ValueError(f"input_shapes={value_shown!r}; allowed: one shape per input array, e.g. '1,28,28,1' "
                         "(':' between inputs)") from None
    if len(shapes) != count or any(not s or min(s) < 1 for s in shapes):
        raise ValueError(f"input_shapes={value_shown!r} gives {len(shapes)} shape(s) for {count} input array(s); "
                         "allowed: one shape of positive sizes per input array")
    for shape in shapes:
        checks.number("input_shapes batch size", shape[0], low=1, integer=True)
    return shapes
