"""Where a user's model comes from: a ``.keras``/``.h5`` file, a SavedModel folder, a frozen ``.pb``, a ``.tflite``.

``load_source`` turns a path (and, for a frozen graph, the ``tflite_convert``
arrays and shapes) into something ``convert`` and ``evaluate`` take:

* ``.keras`` / ``.h5``: the Keras model itself, loaded by the Keras that wrote it (read from the file:
  Keras 3, or Keras 2 through tf_keras), with the user's own layer classes given as ``custom_objects``;
* a SavedModel folder: a ``SavedModel`` (path and signature, default ``serving_default``);
* a TF1 frozen GraphDef ``.pb``: a ``FrozenGraph`` (path, input and output arrays, input shapes);
* a ``.tflite``: its bytes (evaluate, inspect, per-layer error, Netron; there is nothing to convert).

Every check that can be made before TensorFlow runs a converter is made here, with
one error naming the flag, the value and what is allowed (an array name that is
not in the graph lists the names that are).
"""

from __future__ import annotations

import os
import threading
import weakref
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
# How a Keras file's own layer classes are passed (the command line says only its flag).
CUSTOM_OBJECTS_HINT = "custom_objects='FILE.py' (command line: --custom-objects FILE.py)"


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
                input_arrays: Any = None, output_arrays: Any = None, input_shapes: Any = None,
                custom_objects: Any = None) -> Any:
    """The model at ``path``, ready for ``convert`` (or, for ``.tflite``, for ``evaluate``).

    Args:
        path: a ``.keras``/``.h5`` file, a SavedModel folder, a frozen ``.pb`` or a ``.tflite``.
        signature: the SavedModel signature to convert.
        input_arrays, output_arrays: tensor names of a frozen graph (``"image"`` or ``["a", "b"]``;
            a trailing ``:0`` is allowed).
        input_shapes: one shape per input array, e.g. ``[[1, 224, 224, 3]]`` or ``"1,224,224,3"``
            (``tflite_convert``'s form, ``:`` between inputs); default: from the graph.
        custom_objects: a Keras file's own layer classes: the path of a ``.py`` file that defines or
            registers them, a dict ``{name: class}``, a list of classes or a module (``custom_objects_of``).

    Raises:
        ValueError: a missing path, an unknown kind of file, a signature or array not in the
            model, a shape that does not match the number of inputs, a Keras file that needs custom
            classes not given or that no Keras can load (``keras_file``).
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"model={str(file)!r} does not exist; allowed: a .keras/.h5 file, a SavedModel folder, "
                         "a frozen .pb or a .tflite")
    if file.is_dir():
        return saved_model(file, signature)
    suffix = file.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return keras_file(file, custom_objects)
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


@dataclass(frozen=True)
class KerasFile:
    """What a ``.keras``/``.h5`` file says about itself, read from the file without loading the model.

    Attributes:
        keras_version: the version of Keras that wrote it (the ``.keras`` zip's ``metadata.json``, the
            ``.h5``'s ``keras_version`` attribute); ``None`` when the file does not say.
        custom_classes: the layer classes it names that are not Keras's own (the user's; ``"pkg>Name"``
            for a class registered with ``register_keras_serializable(package="pkg")``).
        qat: it holds tfmot's QAT layers.
    """

    path: Path
    keras_version: str | None
    custom_classes: tuple[str, ...] = ()
    qat: bool = False

    @property
    def major(self) -> int | None:
        """The major version of the Keras that wrote the file (2: tf_keras or Keras 2; 3: Keras 3)."""
        head = (self.keras_version or "").split(".")[0]
        return int(head) if head.isdigit() else None

    @property
    def written_by(self) -> str:
        if self.keras_version is None:
            return "a Keras that does not record its version"
        return f"Keras {self.keras_version}" + (" (tf_keras)" if self.major == 2 else "")


def read_keras_file(path: str | os.PathLike) -> KerasFile:
    """The ``KerasFile`` of a ``.keras`` zip or an ``.h5``: version, custom classes, QAT layers (nothing is loaded).

    Raises:
        ValueError: a file that is neither a ``.keras`` zip with ``config.json`` nor an HDF5 model file.
    """
    import json

    file = Path(path)
    try:
        version, config = _keras_zip(file) if file.suffix.lower() == ".keras" else _keras_h5(file)
        config = json.loads(config)
    except Exception as err:  # noqa: BLE001 - zip, HDF5 and JSON errors all mean "not a model file"
        kind = "a .keras zip with config.json" if file.suffix.lower() == ".keras" else "an HDF5 model file"
        raise ValueError(f"model={str(file)!r} could not be loaded as a Keras model: it is not {kind} "
                         f"({type(err).__name__}: {str(err)[:120]}); allowed: a file written by Keras 2 or 3's "
                         "model.save(), or a SavedModel folder from model.export()") from None
    names = _layer_classes(config)
    custom = tuple(dict.fromkeys(n for n, builtin in names if not builtin and n.split(">")[-1] not in QAT_LAYERS))
    qat = any(n.split(">")[-1] in QAT_LAYERS for n, _ in names)
    return KerasFile(file, version, custom, qat)


def _keras_zip(file: Path) -> tuple[str | None, str]:
    import json
    import zipfile

    with zipfile.ZipFile(file) as archive:
        config = archive.read("config.json").decode()
        try:
            version = json.loads(archive.read("metadata.json")).get("keras_version")
        except (KeyError, ValueError):
            version = None
    return (str(version) if version else None), config


def _keras_h5(file: Path) -> tuple[str | None, str]:
    import h5py

    with h5py.File(file, "r") as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
    if "model_config" not in attrs:
        raise ValueError("no model_config: a weights-only file (model.save_weights), not a model")
    version = attrs.get("keras_version")
    return (str(version) if version else None), str(attrs["model_config"])


def _layer_classes(config: Any) -> list[tuple[str, bool]]:
    """The model's and its layers' class names, each with whether it is Keras's own.

    The ``.keras`` format names a user's class in ``registered_name`` (``None`` for Keras's own);
    the ``.h5`` format has only ``class_name``, looked up among Keras's layers and models.
    """
    found: list[tuple[str, bool]] = []

    def visit(node: Any, is_layer: bool) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, is_layer)
            return
        if not isinstance(node, dict):
            return
        name = node.get("class_name")
        if is_layer and isinstance(name, str) and isinstance(node.get("config"), dict):
            if "registered_name" in node:
                registered = node.get("registered_name")
                found.append((registered or name, not registered or registered == name and _builtin(name)))
            else:
                found.append((name, _builtin(name)))
        for key, value in node.items():
            if key in ("layers", "layer") or (key == "config" and isinstance(value, dict)):
                visit(value, key != "config")

    visit(config, True)
    return found


def _builtin(name: str) -> bool:
    """Whether a class name is one of Keras's own layers or models (tf_keras or Keras 3)."""
    from .keras_compat import keras

    if name in ("Functional", "Sequential", "Model") or hasattr(keras.layers, name):
        return True
    from .keras_compat import keras3

    return hasattr(keras3().layers, name)


def keras_file(path: Path, custom_objects: Any = None):
    """A ``.keras`` / ``.h5`` model, loaded (no compile state) by the Keras that wrote it.

    Which Keras wrote the file is read from it (``read_keras_file``): a Keras 3 file loads
    with Keras 3, a Keras 2 (tf_keras) file with tf_keras, a file that does not say with
    tf_keras and then Keras 3. A QAT model's tfmot layers load inside tfmot's ``quantize_scope``;
    tfmot 0.8.1 reads them back from ``.h5`` (and SavedModel) files, not from the ``.keras`` format.

    Args:
        custom_objects: the model's own layer classes (``custom_objects_of``): a dict, classes, a module
            or the path of a ``.py`` file that defines or registers them.

    Raises:
        ValueError: a file that is not a Keras model file; custom classes not given (named, with how to
            pass them); a file no Keras can load (what was tried and why each failed, and what to pass instead).
    """
    info = read_keras_file(path)
    objects = custom_objects_of(custom_objects)
    missing = [name for name in info.custom_classes if not _known(name, objects)]
    if missing:
        shown = ", ".join(n.split(">")[-1] + (f" (registered as {n})" if ">" in n else "") for n in missing)
        raise ValueError(f"model={str(path)!r} (written by {info.written_by}) uses layer classes that are not "
                         f"Keras's own: {shown}; allowed: the .py file that defines or registers them, "
                         f"{CUSTOM_OBJECTS_HINT}, or a SavedModel folder from model.export()")
    failures = []
    for name, load in _loaders(info):
        try:
            model = load(path, objects)
        except Exception as err:  # noqa: BLE001 - h5py/zip/deserialization errors all mean "this Keras cannot"
            failures.append(f"{keras_package(name)}: {_reason(err)}")
            if info.qat and path.suffix.lower() == ".keras" and name == "tf_keras":
                raise ValueError(f"model={str(path)!r} is a QAT model in the .keras format, which tfmot cannot "
                                 f"load back ({failures[-1]}); allowed: the QAT model saved with "
                                 "model.save('model.h5') or as a SavedModel folder") from None
        else:
            _ORIGINS[model] = f"written by {info.written_by}, loaded with {keras_package(name)}" + (
                f"; its own layer classes: {', '.join(info.custom_classes)}" if info.custom_classes else "")
            return model
    needs = f"; it needs the classes {', '.join(info.custom_classes)}" if info.custom_classes else ""
    raise ValueError(f"model={str(path)!r} could not be loaded as a Keras model: written by {info.written_by}"
                     f"{needs}; tried {'; '.join(failures)}; allowed: a SavedModel folder from model.export() "
                     f"in the Keras that wrote the file, or, for layer classes of your own, {CUSTOM_OBJECTS_HINT}") from None


_ORIGINS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def keras_origin(model: Any) -> str | None:
    """Which Keras wrote the file a model was loaded from (read from the file) and which loaded it, in words
    (``None`` for a model ``keras_file`` did not load)."""
    try:
        return _ORIGINS.get(model)
    except TypeError:  # not weak-referenceable: not a Keras model
        return None


def _loaders(info: KerasFile) -> list[tuple[str, Any]]:
    """The Keras versions to load ``info``'s file with (name, loader), in order: the one that wrote it first."""
    from .keras_compat import keras

    def tf_keras(path: Path, objects: dict[str, Any]):
        if not info.qat:
            return keras.models.load_model(str(path), compile=False, custom_objects=objects or None)
        import tensorflow_model_optimization as tfmot

        with tfmot.quantization.keras.quantize_scope():
            return keras.models.load_model(str(path), compile=False, custom_objects=objects or None)

    def keras_3(path: Path, objects: dict[str, Any]):
        from .keras_compat import keras3

        return keras3().saving.load_model(str(path), compile=False, custom_objects=objects or None)

    if info.major == 3:
        return [("keras", keras_3)]
    return [("tf_keras", tf_keras)] if info.qat else [("tf_keras", tf_keras), ("keras", keras_3)]


def _reason(err: Exception) -> str:
    """Why a Keras could not load a file, short: the cause Keras puts after its config dump, and the class."""
    import re

    text = " ".join(str(err).split())
    head, found, cause = text.rpartition("Exception encountered:")
    if found:
        named = re.search(r"class '([\w.>]+)'", head)
        text = (f"{named.group(1).split('.')[-1]}: " if named else "") + cause.strip()
    return f"{type(err).__name__}: {text[:200]}"


def keras_package(name: str) -> str:
    """``"Keras 3.15.1"`` / ``"tf_keras 2.21.0"``: a Keras package and its installed version."""
    from importlib.metadata import version

    return f"{'Keras' if name == 'keras' else name} {version(name.replace('_', '-'))}"


def _known(name: str, objects: dict[str, Any]) -> bool:
    """A custom class given in ``objects``, registered with Keras (tf_keras or Keras 3) or in a
    ``custom_object_scope`` around the call."""
    from .keras_compat import keras, keras3

    short = name.split(">")[-1]
    return bool({name, short} & set(objects)) or any(
        api.saving.get_registered_object(n) is not None for api in (keras, keras3()) for n in {name, short})


_CUSTOM_FILES: dict[tuple, dict[str, Any]] = {}
_CUSTOM_FILES_LOCK = threading.Lock()  # a user's file is run once, whichever thread asks first


def custom_objects_of(value: Any) -> dict[str, Any]:
    """The custom objects Keras loads a model with, by name.

    ``value``: ``None``; a dict ``{name: class}``; classes (a list); a module; or the path of a
    ``.py`` file, run once (per file version): every Keras ``Layer`` subclass it defines, and
    everything it registers with ``keras.saving.register_keras_serializable``.

    Raises:
        ValueError: a missing file, one that raises when run, or one that defines no layer class.
    """
    import types

    if value is None:
        return {}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return dict(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, type) for v in value):
        return {v.__name__: v for v in value}
    if isinstance(value, types.ModuleType):
        return _layer_classes_of(value)
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"custom_objects={type(value).__name__}; allowed: a .py file that defines the model's "
                         "layer classes, a dict {name: class}, a list of classes or a module")
    file = Path(value)
    if not file.is_file() or file.suffix.lower() != ".py":
        raise ValueError(f"custom_objects={str(value)!r} is not a .py file; allowed: the path of a .py file that "
                         "defines or registers the model's layer classes")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CUSTOM_FILES_LOCK:
        if key not in _CUSTOM_FILES:
            _CUSTOM_FILES[key] = _run_custom_file(file)
        return dict(_CUSTOM_FILES[key])


def _run_custom_file(file: Path) -> dict[str, Any]:
    import importlib.util
    import sys

    from . import artifacts
    from .keras_compat import keras, keras3

    registries = (keras.saving.get_custom_objects(), keras3().saving.get_custom_objects())
    before = [dict(registry) for registry in registries]
    name = f"workbench_custom_objects_{file.stem}_{artifacts.digest(str(file.resolve()), length=8)}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up by module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the user's file: whatever it raised, said in one line
        sys.modules.pop(name, None)
        raise ValueError(f"custom_objects={str(file)!r} raised {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]} when run; allowed: a .py file that runs on its own "
                         "(it imports keras and defines the layer classes)") from None
    objects = _layer_classes_of(module)
    for registry, old in zip(registries, before):
        for key, obj in registry.items():
            if old.get(key) is not obj:
                objects[key] = obj
                objects.setdefault(key.split(">")[-1], obj)
    if not objects:
        raise ValueError(f"custom_objects={str(file)!r} defines no Keras layer class and registers nothing; allowed: "
                         "a .py file that defines the model's layer classes (subclasses of keras.layers.Layer)")
    return objects


def _layer_classes_of(module: Any) -> dict[str, Any]:
    """Every Keras ``Layer`` subclass (tf_keras or Keras 3) defined in ``module``."""
    from .keras_compat import keras, keras3

    bases = (keras.layers.Layer, keras3().layers.Layer)
    return {obj.__name__: obj for obj in vars(module).values()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and issubclass(obj, bases)}


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


def saved_model_dir(path: str | os.PathLike) -> Path:
    """The folder at ``path``, checked to be a SavedModel (it holds ``saved_model.pb``): the one such check.

    Raises:
        ValueError: a path without ``saved_model.pb``.
    """
    folder = Path(path)
    if not (folder / "saved_model.pb").is_file():
        raise ValueError(f"model={str(path)!r} is a folder without saved_model.pb: it is not a SavedModel folder; "
                         "allowed: a Keras model, or a folder written by model.export() (Keras 3), "
                         "tf.saved_model.save or export_saved_model")
    return folder


def saved_model(path: Path, signature: str = "serving_default") -> SavedModel:
    """A SavedModel folder, its signature checked to exist."""
    path = saved_model_dir(path)
    if not isinstance(signature, str) or not signature:
        raise ValueError(f"signature={signature!r}; allowed: a signature name such as 'serving_default'")
    from .keras_compat import tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001 - a corrupt SavedModel is the user's file, not a TFLite failure
        raise ValueError(f"model={str(path)!r} could not be read as a SavedModel ({type(err).__name__}: "
                         f"{str(err)[:200]}); allowed: a folder written by model.export() (Keras 3), tf.saved_model.save or tf_keras's model.save") from None
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
        raise ValueError(f"input_shapes={value_shown!r}; allowed: one shape per input array, e.g. '1,224,224,3' "
                         "(':' between inputs)") from None
    if len(shapes) != count or any(not s or min(s) < 1 for s in shapes):
        raise ValueError(f"input_shapes={value_shown!r} gives {len(shapes)} shape(s) for {count} input array(s); "
                         "allowed: one shape of positive sizes per input array")
    for shape in shapes:
        checks.number("input_shapes batch size", shape[0], low=1, integer=True)
    return shapes
