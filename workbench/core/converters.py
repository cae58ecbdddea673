"""The adapters that call a converter: TF2 ``TFLiteConverter``, the TF1 legacy uint8 path, ai-edge-quantizer.

Each adapter takes a ``Job`` (the model, the ``Recipe`` with its spec, the
input range and the representative images) and returns ``.tflite`` bytes. The
recipe registry (``recipes``) says which adapter a recipe uses and with what
options; arguments are validated before an adapter runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts, progress
from .data import InputSpec
from .feeding import is_images
from .shared_calibration import data_key, sharing
from .sources import FrozenGraph, saved_model_dir
from .stats import InputStats


@dataclass(frozen=True, eq=False)
class Job:
    """What an adapter converts: a Keras model or SavedModel folder, with one recipe's settings."""

    model: Any
    recipe: Any  # recipes.Recipe
    input: InputSpec = InputSpec()
    representative: Any = field(default=None, repr=False)  # uint8 images, a float array, or one array per input

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.recipe.spec.options)

    def calibration(self, rows: slice = slice(None)) -> list[np.ndarray]:
        """The representative data (its ``rows``) as the float model reads them, one array per input: pixels mapped
        onto the input range, float data as they are (``feeding``)."""
        arrays = list(self.representative) if isinstance(self.representative, (list, tuple)) else [self.representative]
        return [self.input.normalize(a[rows]) if is_images(a) else np.asarray(a[rows], np.float32) for a in arrays]

    def calibration_size(self) -> int:
        first = self.representative[0] if isinstance(self.representative, (list, tuple)) else self.representative
        return len(first)

    @property
    def stats(self) -> InputStats:
        """The ``quantized_input_stats`` asked for: the recipe's mean/std, else the right ones for the input."""
        r = self.recipe
        return InputStats(r.mean, r.std) if r.mean is not None else self.input.stats


def calibration_key(job: Job) -> str:
    """The digest of what a calibration is fed: the representative rows as given and how they map to floats."""
    arrays = list(job.representative) if isinstance(job.representative, (list, tuple)) else [job.representative]
    return data_key([np.asarray(a) for a in arrays] + [np.asarray([job.input.lo, job.input.hi], np.float64)])


class KeepFloatError(ValueError):
    """A ``keep_float`` name that matches no op: the caller's mistake, raised as is."""


def is_path(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def export_saved_model(model: Any, path: str | os.PathLike) -> Path:
    """Export a Keras model as a SavedModel folder (atomically) for the v1 converter or Netron."""
    with artifacts.atomic_path(path) as tmp:
        _write_saved_model(model, tmp)
    return Path(path)


def _write_saved_model(model: Any, folder: str | os.PathLike) -> None:
    """A Keras model's inference SavedModel: for Keras 3 what ``model.export`` writes, but serving the call
    with ``training=False`` (Keras 3's augmentation layers default to training, and their random ops have no
    TFLite kernel; TF's own ``from_keras_model`` exports the same way), quietly; tf_keras's ``save`` else."""
    from .keras_compat import is_keras3, keras3, tf

    if not is_keras3(model):
        model.save(str(folder), save_format="tf", include_optimizer=False)
        return
    inputs = getattr(model, "inputs", None)
    if not inputs:  # a subclassed model that was never built on an Input: Keras' own export
        model.export(str(folder), verbose=False)
        return
    signature = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in inputs]
    archive = keras3().export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                         signature if len(signature) == 1 else [signature])
    archive.write_out(str(folder), verbose=False)


# --- TF2 ---------------------------------------------------------------------------------------

def tf2(job: Job) -> bytes:
    """``tf.lite.TFLiteConverter`` with the spec's options: ``optimize``, ``supported_types``, ``ops``."""
    from .keras_compat import tf

    options = job.options
    if isinstance(job.model, FrozenGraph) and job.recipe.spec.needs_qat:
        # The v1 converter reads a frozen QAT graph's fake-quant only with inference_type=int8 (int8 or float
        # I/O, never uint8); the TF2 converter on the graph wrapped in a function handles every io_type.
        converter = _frozen_graph_tf2_converter(job.model)
    elif isinstance(job.model, FrozenGraph):
        converter = _v1_from_frozen_graph(job.model)
    elif is_path(job.model):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir(job.model)),
                                                              signature_keys=[_signature(job.model)])
    else:
        converter = _keras_converter(job.model)
    if options.get("optimize"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if options.get("supported_types"):
        converter.target_spec.supported_types = [getattr(tf, t) for t in options["supported_types"]]
    dataset = None
    if job.recipe.spec.calibrated:
        # Several inputs go by name (the signature's input keys): the calibrator's own input order is not the model's.
        multi = isinstance(job.representative, (list, tuple)) and len(job.representative) > 1
        names = _input_keys(job.model) if multi else None

        def dataset():  # one row at a time, mapped to floats as it is fed (never the whole set as float32)
            progress.phase("calibrate", job.calibration_size(), "inputs")
            for i in range(job.calibration_size()):
                xs = job.calibration(slice(i, i + 1))
                yield dict(zip(names, xs)) if names else xs
                progress.advance()
            progress.phase("quantize")

        converter.representative_dataset = dataset
    if options.get("ops") == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif options.get("ops") == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if job.recipe.io_type != "float32":
        io = {"int8": tf.int8, "uint8": tf.uint8}[job.recipe.io_type]
        converter.inference_input_type = io
        converter.inference_output_type = io
    shared = sharing(calibration_key(job)) if dataset is not None else contextlib.nullcontext()
    with shared:  # one calibration per float model and data, for every calibrated recipe (shared_calibration)
        if job.recipe.keep_float:
            return _selective(converter, dataset, job.recipe.keep_float, job.model)
        result = converter.convert()
    if not options and not job.recipe.spec.calibrated and job.recipe.io_type == "float32" and \
            not isinstance(job.model, FrozenGraph):  # a frozen graph's v1 conversion has no signature for AEQ
        _floats.put(job.model, result)  # the plain float model: what the AEQ recipes start from
    return result


def _input_keys(model: Any) -> list[str]:
    """A model's input names as its serving signature keys them (``model_io``'s order, the data's order)."""
    from .feeding import short_name
    from .model_io import model_io

    return [short_name(t.name) for t in model_io(model).inputs]


def _keras_converter(model: Any):
    """The TF2 converter of a Keras model, on its SavedModel export (``keras_saved_model``: made once per model and
    reused by every recipe and the legacy path). ``from_keras_model`` saves the model to a fresh SavedModel at every
    conversion (about two thirds of a small model's conversion time) and converts that: the same ``.tflite``, but
    for the source type in its conversion metadata. A Keras 3 model goes this way for its inference-mode export
    alone; a tf_keras model whose TF-format save fails takes ``from_keras_model`` (which freezes it instead)."""
    from .keras_compat import is_keras3, tf

    try:
        folder = keras_saved_model(model)
    except Exception:  # noqa: BLE001 - TF's own path falls back to freezing the graph when the save fails
        if is_keras3(model):
            raise
        return tf.lite.TFLiteConverter.from_keras_model(model)
    return tf.lite.TFLiteConverter.from_saved_model(str(folder))


def _selective(converter: Any, dataset: Any, keep_float: tuple[str, ...], model: Any = None) -> bytes:
    """Full-integer conversion with the ops of the ``keep_float`` layers left in float.

    The QuantizationDebugger calibrates once; its denylist takes the output
    tensor names of the ops to keep float, found in the calibrated model by layer name.
    """
    from . import litert
    from .keras_compat import is_keras3, tf

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    calibrated = litert.read_model(debugger.calibrated_model)
    layers = [layer.name for layer in getattr(model, "layers", ())]
    k3 = is_keras3(model)
    nodes = [t.name for t in calibrated.tensors
             if t.is_activation and any(layer in name_segments(t.name, layers, k3) for layer in keep_float)]
    missing = [layer for layer in keep_float if not any(layer in name_segments(n, layers, k3) for n in nodes)]
    if missing:
        raise KeepFloatError(f"keep_float={keep_float!r}: no ops found for {missing}; allowed: names of Keras "
                             "layers in the model")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    return debugger.get_nondebug_quantized_model()


def name_segments(tensor_name: str, layers: Any = (), keras3: bool = False) -> set[str]:
    """The path segments of a TFLite tensor name (``"m/conv1/Relu;m/conv1/BiasAdd"`` -> conv1, Relu, ...).

    Keras 3 traces each layer under its name with a ``_N`` suffix (``sequential_1/conv_1/convolution`` for
    layer ``conv``): with ``keras3``, a segment whose name without that suffix is one of ``layers`` counts as
    that layer."""
    segments = {seg for part in tensor_name.split(";") for seg in part.split("/")}
    if keras3:
        known = set(layers)
        segments = {base if base in known else seg for seg in segments for base in [re.sub(r"_\d+$", "", seg)]}
    return segments


# --- TF1 legacy uint8 ----------------------------------------------------------------------------

# The loaded v1 converters below are shared and reconfigured by every call: one legacy conversion at a time
# (a background sweep converts in a thread while a slider converts in the main thread).
_V1_LOCK = threading.Lock()


def legacy_uint8(job: Job) -> bytes:
    """The v1 converter with ``inference_type=uint8``, ``quantized_input_stats`` and ``default_ranges_stats``.

    Thread-safe: the settings and the conversion that reads them happen under one lock.
    """
    from .keras_compat import tf

    with _V1_LOCK:
        if isinstance(job.model, FrozenGraph):
            converter = _v1_from_frozen_graph(job.model)
        else:
            folder = saved_model_dir(job.model) if is_path(job.model) else keras_saved_model(job.model)
            pb = folder / "saved_model.pb"
            converter = _loaded_v1_converter(str(folder.resolve()), pb.stat().st_mtime_ns, pb.stat().st_size,
                                             _signature(job.model))
        stats = job.stats
        converter.inference_type = tf.uint8
        converter.quantized_input_stats = {name: (stats.mean, stats.std) for name in converter.get_input_arrays()}
        converter.default_ranges_stats = job.recipe.default_ranges
        return converter.convert()


@functools.lru_cache(maxsize=8)
def _loaded_v1_converter(folder: str, mtime_ns: int, size: int, signature: str = "serving_default"):
    """Loading the SavedModel is most of a legacy conversion's time; sliders and sweeps
    reconvert one folder many times, so the loaded converter is kept (keyed by the
    folder and its saved_model.pb's time and size) and only its settings change per call.
    The result is byte-identical to a fresh converter's."""
    from .keras_compat import quiet_v1_converter, tf

    return quiet_v1_converter(tf.compat.v1.lite.TFLiteConverter.from_saved_model(folder, signature_key=signature))


def _v1_from_frozen_graph(graph: FrozenGraph):
    """The v1 converter on a frozen GraphDef, as ``tflite_convert --graph_def_file`` builds it."""
    from .keras_compat import quiet_v1_converter, tf

    shapes = None if graph.input_shapes is None else {
        name: list(shape) for name, shape in zip(graph.input_arrays, graph.input_shapes)}
    return quiet_v1_converter(tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph.path), list(graph.input_arrays), list(graph.output_arrays), shapes))


def _frozen_graph_tf2_converter(graph: FrozenGraph):
    """The TF2 converter on a frozen GraphDef wrapped in a function (its first input array), so the
    ``.tflite`` gets a ``serving_default`` signature as a SavedModel's does."""
    from .keras_compat import tf

    graph_def = tf.compat.v1.GraphDef.FromString(Path(graph.path).read_bytes())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    placeholder = wrapped.graph.get_tensor_by_name(f"{graph.input_arrays[0]}:0")
    pruned = wrapped.prune(feeds=[placeholder],
                           fetches=[wrapped.graph.get_tensor_by_name(f"{n}:0") for n in graph.output_arrays])
    shape = graph.input_shapes[0] if graph.input_shapes else placeholder.shape
    module = tf.Module()
    module.graph = wrapped

    def serve(x):
        outputs = pruned(x)
        return {f"output_{i}": y for i, y in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs])}

    module.serve = tf.function(serve, input_signature=[tf.TensorSpec(shape, placeholder.dtype,
                                                                     name=graph.input_arrays[0])])
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)


def _signature(model: Any) -> str:
    return getattr(model, "signature", "serving_default")


def export_frozen_graph(model: Any, path: str | os.PathLike) -> FrozenGraph:
    """Freeze a Keras model's inference function into a TF1 GraphDef ``.pb`` (atomically), as old tools wrote them.

    Returns the ``FrozenGraph`` with its input and output array names and the input shape (batch 1).
    """
    from .keras_compat import freeze_function, tf

    shape = (1, *model.input_shape[1:])
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32, name="image"))
    frozen = freeze_function(function)
    graph = frozen.graph.as_graph_def()
    inputs = tuple(t.name.split(":")[0] for t in frozen.inputs)
    outputs = tuple(t.name.split(":")[0] for t in frozen.outputs)
    target = Path(path)
    artifacts.write_bytes_atomic(target, graph.SerializeToString())
    return FrozenGraph(target, inputs, outputs, (shape,))


def keras_saved_model(model: Any, cache: str | os.PathLike | None = None) -> Path:
    """A Keras model's SavedModel folder, exported once into the cache and reused while the model is unchanged.

    Exporting costs about a second; a notebook converts the same model many times (stats,
    default ranges) and a sweep converts it at every point. The one key is a digest of the
    model's layer types and weight names, shapes and values plus its input shape, so training
    the model further exports it afresh and two copies of one model share one export. The
    folder is an ``artifacts`` cache entry (``savedmodels/model-<key>``): written atomically,
    checked against its manifest, the same folder for every process that asks. A Keras 3
    model is exported as its ``model.export()`` would be but in inference mode (``_write_saved_model``), a
    tf_keras model saved in the TF format. The key also holds the model's configuration (layers without
    weights, such as ``Rescaling``, differ only there), its Keras and how it was exported.
    """
    from .keras_compat import is_keras3

    how = "keras3 export, training=False" if is_keras3(model) else "tf_keras save_format=tf"
    key = artifacts.digest(model, str(getattr(model, "input_shape", "")), how, _config_json(model))
    exported = []

    def export(tmp: Path) -> None:
        progress.phase("export")
        _write_saved_model(model, tmp)
        exported.append(tmp)

    folder = artifacts.entry(artifacts.cache_dir(cache) / "savedmodels" / f"model-{key}", export, key=key)
    if exported:
        progress.phase("convert")
    return folder


def _config_json(model: Any) -> str:
    """A Keras model's configuration as JSON ("" when it cannot be serialized)."""
    try:
        return model.to_json()
    except Exception:  # noqa: BLE001 - a layer without get_config: the weights alone key the export
        return ""


# --- ai-edge-quantizer -----------------------------------------------------------------------------

def _float_tflite(job: Job) -> bytes:
    """The model through the plain TF2 converter: what AEQ quantizes (reused while the model is unchanged).

    AEQ runs a model through its signature; the v1 converter writes none for a frozen
    GraphDef, so a frozen graph is first wrapped in a function with one.
    """
    from .recipes import Recipe, reference

    if isinstance(job.model, FrozenGraph):
        return _floats.get(job.model, lambda: _frozen_graph_tf2_converter(job.model).convert())
    return _floats.get(job.model, lambda: tf2(Job(job.model, Recipe(reference().name), job.input)))


class _FloatCache:
    """The plain float ``.tflite`` of recent models, for the AEQ recipes that start from it.

    A report or a notebook runs both AEQ recipes on one model; each would convert it
    to float again (seconds for a Keras model). The key is the model's identity and a
    digest of its weights (a Keras model), or the file's path, size and time (a SavedModel
    folder, a frozen graph), so a retrained or rewritten model converts afresh. The float
    conversion does not depend on the input range, so that is not part of the key.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._entries: dict[tuple, bytes] = {}

    @staticmethod
    def key(model: Any) -> tuple | None:
        if isinstance(model, FrozenGraph):
            stat = Path(model.path).stat()
            return ("graph", model, stat.st_size, stat.st_mtime_ns)
        if is_path(model):
            pb = Path(model) / "saved_model.pb"
            if not pb.is_file():
                return None
            stat = pb.stat()
            return ("saved", str(Path(model).resolve()), _signature(model), stat.st_size, stat.st_mtime_ns)
        if hasattr(model, "layers"):
            return ("keras", id(model), artifacts.weights_digest(model))
        return None

    def get(self, model: Any, make: Any) -> bytes:
        """The cached float bytes of ``model``, else ``make()`` (kept for next time)."""
        key = self.key(model)
        data = None if key is None else self._entries.pop(key, None)
        if data is None:
            data = make()
        self.put(model, data, key)
        return data

    def put(self, model: Any, data: bytes, key: tuple | None = None) -> None:
        key = key or self.key(model)
        if key is None:
            return
        self._entries.pop(key, None)
        self._entries[key] = data  # most recently used last
        while len(self._entries) > self._size:
            self._entries.pop(next(iter(self._entries)))


_floats = _FloatCache()


def aeq_int4_weights(job: Job) -> bytes:
    """AEQ's int4 weights (per channel, or blockwise in AEQ's dynamic form) on the float ``.tflite``."""
    from . import aeq

    return aeq.quantize_int4_weights(_float_tflite(job), granularity=job.recipe.granularity).tflite


def aeq_int8(job: Job) -> bytes:
    """AEQ's static int8 (int8 weights and activations, float I/O), calibrated on the representative images."""
    from . import aeq

    return aeq.quantize_int8_static(_float_tflite(job), job.calibration()[0]).tflite
