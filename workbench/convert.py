"""Every way TFLite can convert a model, each returning a ``ConvertedModel``.

Recipes:

``float32``        the plain TF2 converter (baseline)
``dynamic-range``  int8 weights, float activations (the old ``post_training_quantize``)
``float16``        float16 weights
``int8-ptq``       full integer from a representative set (calibration)
``int16x8``        int16 activations, int8 weights
``qat-int8``       a QAT model through the TF2 converter
``legacy-uint8``   the TOCO-era v1 converter: ``inference_type=uint8``,
                   ``quantized_input_stats`` (mean, std) and ``default_ranges_stats``
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts, diagnose, validate
from .data import InputSpec
from .stats import InputStats
from .litert import ModelInfo, interpreter, read_model

RECIPES = ("float32", "dynamic-range", "float16", "int8-ptq", "int16x8", "qat-int8", "legacy-uint8")
IO_TYPES = ("float32", "int8", "uint8")
_CALIBRATED = ("int8-ptq", "int16x8")


class QuantizationWarning(UserWarning):
    """A conversion that succeeded but did not do what was asked."""


@dataclass(frozen=True)
class Recipe:
    """One conversion and its parameters.

    Args:
        name: one of ``RECIPES``.
        calibration_size: representative images used by ``int8-ptq`` / ``int16x8``.
        io_type: input/output dtype for ``int8-ptq`` and ``qat-int8``
            (``float32`` keeps float I/O with quantize/dequantize ops).
        mean, std: ``quantized_input_stats`` for ``legacy-uint8``; ``None`` uses
            the correct stats for the ``InputSpec``.
        default_ranges: ``default_ranges_stats`` (min, max) for ``legacy-uint8``.
        keep_float: Keras layer names to leave in float in an ``int8-ptq`` model
            (selective quantization, through the QuantizationDebugger's denylist);
            needs ``io_type="float32"``.
    """

    name: str = "float32"
    calibration_size: int = 500
    io_type: str = "float32"
    mean: float | None = None
    std: float | None = None
    default_ranges: tuple[float, float] | None = None
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate.choice("recipe", self.name, RECIPES)
        validate.number("calibration_size", self.calibration_size, low=1, integer=True)
        validate.choice("io_type", self.io_type, IO_TYPES)
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"mean={self.mean!r}, std={self.std!r}: give both or neither")
        if self.mean is not None:
            InputStats(self.mean, self.std)  # validates mean in [0, 255], std > 0
        if self.default_ranges is not None:
            object.__setattr__(self, "default_ranges", validate.range_pair("default_ranges", self.default_ranges))
        if isinstance(self.keep_float, str) or not all(isinstance(n, str) and n for n in self.keep_float):
            raise ValueError(f"keep_float={self.keep_float!r}; allowed: a tuple of Keras layer names")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))
        if self.keep_float and (self.name != "int8-ptq" or self.io_type != "float32"):
            raise ValueError(f"keep_float={self.keep_float!r} with recipe {self.name!r}, io_type {self.io_type!r}; "
                             "allowed: only with recipe 'int8-ptq' and io_type 'float32'")

    def label(self) -> str:
        """A short human-readable name with the parameters that matter."""
        extra = []
        if self.name in _CALIBRATED:
            extra.append(f"n={self.calibration_size}")
        if self.name in ("int8-ptq", "qat-int8") and self.io_type != "float32":
            extra.append(f"io={self.io_type}")
        if self.keep_float:
            extra.append("float=" + ",".join(self.keep_float))
        if self.name == "legacy-uint8":
            if self.mean is not None:
                extra.append(f"mean={self.mean:g},std={self.std:g}")
            if self.default_ranges is not None:
                extra.append(f"ranges=({self.default_ranges[0]:g},{self.default_ranges[1]:g})")
        return self.name + (f" [{'; '.join(extra)}]" if extra else "")


@dataclass(frozen=True, eq=False)
class ConvertedModel:
    """A converted model and what it turned out to be."""

    recipe: Recipe
    tflite: bytes = field(repr=False)
    info: ModelInfo = field(repr=False)
    warnings: tuple[str, ...]
    seconds: float
    requested_stats: InputStats | None = None

    @property
    def size_bytes(self) -> int:
        return len(self.tflite)

    @property
    def size_kb(self) -> float:
        return len(self.tflite) / 1024

    @property
    def input(self):
        return self.info.inputs[0]

    @property
    def output(self):
        return self.info.outputs[0]

    @property
    def dtype_counts(self) -> dict[str, int]:
        return self.info.dtype_counts()

    @property
    def activation_dtypes(self) -> dict[str, int]:
        return self.info.dtype_counts(activations_only=True)

    @property
    def ops(self) -> tuple[str, ...]:
        return self.info.ops

    @property
    def effective_stats(self) -> InputStats | None:
        """The (mean, std) the model really reads a uint8 input with; ``None`` for other inputs."""
        if self.input.dtype != "uint8" or not self.input.quantized:
            return None
        return InputStats.from_quantization(self.input.scale, self.input.zero_point)

    @property
    def came_out_float(self) -> bool:
        return any("came out float" in w for w in self.warnings)

    @property
    def stats_ignored(self) -> bool:
        return any("ignored" in w and "mean/std" in w for w in self.warnings)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.tflite`` atomically and return its path."""
        return artifacts.write_bytes_atomic(path, self.tflite)

    def summary(self) -> dict[str, Any]:
        """One flat row for a DataFrame."""
        return {
            "recipe": self.recipe.label(),
            "size_kb": round(self.size_kb, 1),
            "input": f"{self.input.dtype} {_q(self.input)}",
            "output": f"{self.output.dtype} {_q(self.output)}",
            "activations": ", ".join(f"{k}:{v}" for k, v in sorted(self.activation_dtypes.items())),
            "ops": len(self.ops),
            "warnings": len(self.warnings),
            "convert_s": round(self.seconds, 2),
        }


def convert(model: Any, recipe: Recipe | str = "float32", *, spec: InputSpec = InputSpec(),
            representative: np.ndarray | None = None, **params: Any) -> ConvertedModel:
    """Convert ``model`` with ``recipe`` and check that the result runs.

    Args:
        model: a Keras model or the path of a SavedModel folder.
        recipe: a ``Recipe`` or a recipe name; ``params`` override its fields
            (``convert(m, "legacy-uint8", mean=0, std=255)``).
        spec: the float range the model was trained on (normalizes the
            representative set; gives the default uint8 stats).
        representative: raw uint8 images for calibration (``int8-ptq``, ``int16x8``).

    Returns:
        ``ConvertedModel`` with the bytes, structure, warnings and timing.

    Raises:
        ValueError: a bad parameter, a missing model folder, an empty representative set.
        QuantizationError: the converter or runtime refused the model (explained).
    """
    recipe = _as_recipe(recipe, params)
    if recipe.name in _CALIBRATED:
        if representative is None:
            raise ValueError(f"representative=None for recipe {recipe.name!r}; allowed: uint8 images "
                             "(N, 28, 28, 1) with N >= 1 for calibration")
        representative = validate.images("representative", representative)[: recipe.calibration_size]
    if _is_path(model):
        _saved_model_dir(model)
    elif recipe.name == "qat-int8" and not _has_fake_quant(model):
        raise ValueError("recipe 'qat-int8' needs a QAT model (train_qat / quantize_model); "
                         "for a float model use 'int8-ptq' with a representative set")
    elif not hasattr(model, "layers"):
        raise ValueError(f"model={type(model).__name__}; allowed: a Keras model or a SavedModel folder path")
    start = time.perf_counter()
    with _tf_errors_explained(), warnings.catch_warnings():
        # TF's note about quantized_input_stats applies to its own v1 flags, not to these recipes.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        if recipe.name == "legacy-uint8":
            tflite, requested = _convert_legacy(model, recipe, spec)
        else:
            tflite, requested = _convert_v2(model, recipe, spec, representative), None
    seconds = time.perf_counter() - start
    info = read_model(tflite)
    notes = _warnings(recipe, info, requested)
    _check_runs(tflite, info)
    for note in notes:
        warnings.warn(note, QuantizationWarning, stacklevel=2)
    return ConvertedModel(recipe, tflite, info, tuple(notes), seconds, requested)


def export_saved_model(model: Any, path: str | os.PathLike) -> Path:
    """Export a Keras model as a SavedModel folder (atomically) for the v1 converter or Netron."""
    with artifacts.atomic_path(path) as tmp:
        model.save(str(tmp), save_format="tf", include_optimizer=False)
    return Path(path)


def _as_recipe(recipe: Recipe | str, params: dict) -> Recipe:
    if isinstance(recipe, Recipe):
        return dataclasses.replace(recipe, **params) if params else recipe
    if not isinstance(recipe, str):
        raise ValueError(f"recipe={recipe!r}; allowed: a Recipe or one of {', '.join(RECIPES)}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(fields - {'name'})}")
    return Recipe(recipe, **params)


def _convert_v2(model: Any, recipe: Recipe, spec: InputSpec, representative: np.ndarray | None) -> bytes:
    from .keras_compat import tf

    if _is_path(model):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model_dir(model)))
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    name = recipe.name
    if name != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if name == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if name in _CALIBRATED:
        x = spec.normalize(representative)

        def gen():
            for i in range(len(x)):
                yield [x[i:i + 1]]

        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if name == "int8-ptq"
            else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if name in ("int8-ptq", "qat-int8") and recipe.io_type != "float32":
        io = {"int8": tf.int8, "uint8": tf.uint8}[recipe.io_type]
        converter.inference_input_type = io
        converter.inference_output_type = io
    if recipe.keep_float:
        return _convert_selective(converter, gen, recipe.keep_float)
    return converter.convert()


def _convert_selective(converter: Any, dataset: Any, keep_float: tuple[str, ...]) -> bytes:
    """Full-integer conversion with the ops of the ``keep_float`` layers left in float.

    The QuantizationDebugger calibrates once; its denylist takes the output
    tensor names of the ops to keep float, found in the calibrated model by layer name.
    """
    from .keras_compat import tf

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    calibrated = read_model(debugger.calibrated_model)
    nodes = [t.name for t in calibrated.tensors
             if t.is_activation and any(layer in _name_segments(t.name) for layer in keep_float)]
    missing = [layer for layer in keep_float if not any(layer in _name_segments(n) for n in nodes)]
    if missing:
        raise _BadKeepFloat(f"keep_float={keep_float!r}: no ops found for {missing}; allowed: names of Keras "
                         "layers in the model")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    return debugger.get_nondebug_quantized_model()


def _name_segments(tensor_name: str) -> set[str]:
    """The path segments of a TFLite tensor name (``"m/conv1/Relu;m/conv1/BiasAdd"`` -> conv1, Relu, ...)."""
    return {seg for part in tensor_name.split(";") for seg in part.split("/")}


def _convert_legacy(model: Any, recipe: Recipe, spec: InputSpec) -> tuple[bytes, InputStats]:
    stats = InputStats(recipe.mean, recipe.std) if recipe.mean is not None else spec.stats
    folder = _saved_model_dir(model) if _is_path(model) else _exports.folder_for(model)
    return _legacy_from_dir(folder, recipe, stats), stats


class _ExportCache:
    """SavedModel exports of Keras models for the v1 converter, reused while the weights are unchanged.

    Exporting costs about a second; a notebook converts the same model many
    times (stats, default ranges). The key is the model's identity plus a digest
    of its weight names, shapes and values, so training the model further
    exports it afresh. Folders live in one temporary directory removed at exit.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._folders: dict[tuple[int, str], Path] = {}
        self._root: Path | None = None

    def folder_for(self, model: Any) -> Path:
        key = (id(model), _weights_digest(model))
        folder = self._folders.pop(key, None)
        if folder is None or not (folder / "saved_model.pb").is_file():
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="workbench-savedmodels-"))
                atexit.register(shutil.rmtree, self._root, True)
            folder = export_saved_model(model, self._root / f"m{len(os.listdir(self._root))}-{key[1][:12]}")
        self._folders[key] = folder  # most recently used last
        while len(self._folders) > self._size:
            oldest = next(iter(self._folders))
            shutil.rmtree(self._folders.pop(oldest), ignore_errors=True)
        return folder


_exports = _ExportCache()


def _weights_digest(model: Any) -> str:
    h = hashlib.sha256()
    for weight in model.weights:
        value = np.asarray(weight.numpy())
        h.update(f"{weight.name}{value.shape}{value.dtype}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _legacy_from_dir(saved_model: Path, recipe: Recipe, stats: InputStats) -> bytes:
    from .keras_compat import tf

    pb = saved_model / "saved_model.pb"
    converter = _loaded_v1_converter(str(saved_model.resolve()), pb.stat().st_mtime_ns, pb.stat().st_size)
    converter.inference_type = tf.uint8
    converter.quantized_input_stats = {name: (stats.mean, stats.std) for name in converter.get_input_arrays()}
    converter.default_ranges_stats = recipe.default_ranges
    return converter.convert()


@functools.lru_cache(maxsize=8)
def _loaded_v1_converter(folder: str, mtime_ns: int, size: int):
    """Loading the SavedModel is most of a legacy conversion's time; sliders and sweeps
    reconvert one folder many times, so the loaded converter is kept (keyed by the
    folder and its saved_model.pb's time and size) and only its settings change per call.
    The result is byte-identical to a fresh converter's."""
    from .keras_compat import tf

    converter = tf.compat.v1.lite.TFLiteConverter.from_saved_model(folder)
    # Source-location debug info only adds a stderr line per node for Keras graphs.
    converter._debug_info_func = None  # noqa: SLF001
    return converter


def _warnings(recipe: Recipe, info: ModelInfo, requested: InputStats | None) -> list[str]:
    notes = []
    if recipe.name == "legacy-uint8":
        acts = info.dtype_counts(activations_only=True)
        floats = acts.get("float32", 0)
        if floats:
            notes.append(
                f"came out float: uint8 was asked for but {floats} of {sum(acts.values())} activation tensors are "
                "float32 (the legacy converter does this silently when activations lack min/max and no "
                "default_ranges are given). " + diagnose.entry("came-out-float").fix)
        elif requested is not None and info.inputs[0].dtype == "uint8" and info.inputs[0].quantized:
            eff = InputStats.from_quantization(info.inputs[0].scale, info.inputs[0].zero_point)
            if abs(eff.mean - requested.mean) > 0.5 + 1e-6 or abs(eff.std - requested.std) > 1e-3 * requested.std:
                notes.append(
                    f"mean/std ignored: asked for mean={requested.mean:g}, std={requested.std:g} but the model "
                    f"reads its input with mean={eff.mean:g}, std={eff.std:g} (scale={info.inputs[0].scale:.6g}, "
                    f"zero_point={info.inputs[0].zero_point}) because it learned its input range in QAT.")
        per_channel = [t.name for t in info.tensors if t.per_channel and t.dtype == "uint8"]
        if per_channel:
            notes.append(f"per-channel weights in a uint8 model ({', '.join(per_channel[:3])}): "
                         + diagnose.entry("per-channel-on-uint8").fix)
    if recipe.name == "qat-int8":
        acts = info.dtype_counts(activations_only=True)
        if "int8" not in acts:
            notes.append("came out float: the 'qat-int8' model has no int8 activations; was the model trained "
                         "with QAT?")
    return notes


def _check_runs(tflite: bytes, info: ModelInfo) -> None:
    try:
        interp = interpreter(tflite)
        interp.allocate_tensors()
    except RuntimeError as err:
        message = str(err)
        if any(t.per_channel for t in info.tensors if t.dtype == "uint8"):
            message += "\n(per-channel weights in a uint8 model)"
        signature = interp.get_input_details()[0].get("shape_signature", ())
        if any(int(d) < 0 for d in list(signature)[1:]):
            message += f"\n(dynamic input shape {list(int(d) for d in signature)}: None beyond the batch dimension)"
        raise diagnose.QuantizationError(diagnose.explain(message)) from None


class _BadKeepFloat(ValueError):
    """A ``keep_float`` name that matches no op: the caller's mistake, raised as is."""


class _tf_errors_explained:
    """Turn whatever TensorFlow raises while converting into an explained ``QuantizationError``.

    Arguments are validated before this block, so anything raised inside comes from TensorFlow.
    """

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, (diagnose.QuantizationError,
                                                                              _BadKeepFloat)):
            return False
        raise diagnose.QuantizationError(diagnose.explain(f"{type(exc).__name__}: {exc}")) from exc


def _is_path(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def _saved_model_dir(path: str | os.PathLike) -> Path:
    folder = Path(path)
    if not (folder / "saved_model.pb").is_file():
        raise ValueError(f"model={str(path)!r} is not a SavedModel folder (no saved_model.pb); allowed: "
                         "a Keras model or a folder written by export_saved_model")
    return folder


def _has_fake_quant(model: Any) -> bool:
    return any(type(layer).__name__ in ("QuantizeWrapperV2", "QuantizeWrapper", "QuantizeLayer")
               for layer in getattr(model, "layers", []))


def _q(io) -> str:
    return f"(s={io.scale:.4g}, zp={io.zero_point})" if io.quantized else ""
