"""``convert``: any recipe of the registry on a model, giving a ``ConvertedModel`` that says what it became.

Which recipes exist and how each calls its converter lives in ``recipes`` (the
registry) and ``converters`` (the adapters). This module validates the
arguments, runs the adapter, checks that LiteRT can load the result, and reads
the outcome off the model's own tensors: whether integer activations came out
float, whether the asked-for mean/std were ignored, whether per-channel weights
ended up on the uint8 path. The sentences in ``ConvertedModel.warnings`` are
made from those fields.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts, convert_worker, diagnose, litert, native_log, checks, progress
from .converters import KeepFloatError, export_saved_model, is_path, saved_model_dir
from .sources import KERAS_SUFFIXES, FrozenGraph, check_saved_model_file, is_qat, keras_file
from .data import InputSpec
from .litert import ModelInfo
from .recipes import IO_TYPES, Recipe, RecipeSpec, get as recipe_spec, recipe as make_recipe
from .stats import InputStats

__all__ = ["RECIPES", "IO_TYPES", "Recipe", "ConvertedModel", "Outcome", "QuantizationWarning", "convert",
           "export_saved_model"]


def __getattr__(name: str):
    if name == "RECIPES":  # always the registry's current names
        from .recipes import names

        return names()
    raise AttributeError(name)


class QuantizationWarning(UserWarning):
    """A conversion that succeeded but did not do what was asked."""


@dataclass(frozen=True)
class Outcome:
    """What a conversion really produced, read off the model's tensors (not off any message).

    Attributes:
        came_out_float: the recipe should give integer activations but none are.
        ops_left_float: ops (besides DEQUANTIZE) that write float activations
            in a recipe meant to give integer ones.
        stats_ignored: the asked-for mean/std differ from how the model reads its
            uint8 input (a QAT model that learned its own input range).
        requested_stats, effective_stats: the mean/std asked for and the ones the
            uint8 input really has (``None`` where they do not apply).
        per_channel_on_uint8: uint8 weight tensors with per-channel scales, which
            the uint8 kernels refuse.
        float_activations, activations: activation tensor counts, for the sentence.
        weights_unquantized: a model of a recipe with ``min_weight_elements`` none of whose
            weight tensors was quantized (each is under that many elements): the float
            model again, said in plain words. ``largest_weight`` is its largest weight's size.
    """

    recipe: str
    came_out_float: bool = False
    ops_left_float: tuple[str, ...] = ()
    stats_ignored: bool = False
    requested_stats: InputStats | None = None
    effective_stats: InputStats | None = None
    per_channel_on_uint8: tuple[str, ...] = ()
    float_activations: int = 0
    activations: int = 0
    kept_float: bool = False
    source_has_fake_quant: bool | None = None  # sources.is_qat of the source; None: not known
    weights_unquantized: bool = False
    largest_weight: int = 0

    @classmethod
    def of(cls, spec: RecipeSpec, recipe: Recipe, info: ModelInfo, requested: InputStats | None,
           source_has_fake_quant: bool | None = None) -> "Outcome":
        acts = info.dtype_counts(activations_only=True)
        came_out_float = False
        ops_left: tuple[str, ...] = ()
        if spec.integer_activations:
            # QUANTIZE/DEQUANTIZE only convert at the edges; the compute ops say what the model became.
            dtypes = {t.index: t.dtype for t in info.tensors if t.is_activation}
            compute = [op for op in info.op_details if op.name not in ("QUANTIZE", "DEQUANTIZE")]
            came_out_float = not any(dtypes.get(o) == spec.activations for op in compute for o in op.outputs)
            ops_left = tuple(op.name for op in compute if any(dtypes.get(o) == "float32" for o in op.outputs))
        first = info.inputs[0]
        effective = (InputStats.from_quantization(first.scale, first.zero_point)
                     if first.dtype == "uint8" and first.quantized else None)
        ignored = (requested is not None and effective is not None and not came_out_float
                   and (abs(effective.mean - requested.mean) > 0.5 + 1e-6
                        or abs(effective.std - requested.std) > 1e-3 * requested.std))
        per_channel = tuple(t.name for t in info.tensors if t.per_channel and t.dtype == "uint8")
        weights = [t for t in info.tensors if t.producer is None and len(t.shape) > 1
                   and t.index not in {io.index for io in info.inputs}]
        largest = max((int(np.prod(t.shape)) for t in weights), default=0)
        unquantized = spec.min_weight_elements > 0 and not any(t.dtype in ("int8", "int4") for t in weights)
        return cls(spec.name, came_out_float, ops_left, ignored, requested, effective, per_channel,
                   acts.get("float32", 0), sum(acts.values()), bool(recipe.keep_float), source_has_fake_quant,
                   unquantized, largest)

    def sentences(self) -> tuple[str, ...]:
        """The outcome in words: one sentence per thing that did not go as asked."""
        notes = []
        spec = recipe_spec(self.recipe) if self.came_out_float or self.weights_unquantized else None
        if self.came_out_float:
            notes.append(spec.came_out_float_sentence(self.float_activations, self.activations))
        elif self.ops_left_float and not self.kept_float:
            notes.append(f"{len(self.ops_left_float)} op(s) left float in an integer model: "
                         f"{', '.join(dict.fromkeys(self.ops_left_float))}.")
        if self.stats_ignored:
            r, e = self.requested_stats, self.effective_stats
            notes.append(
                f"mean/std ignored: asked for mean={r.mean:g}, std={r.std:g} but the model reads its input with "
                f"mean={e.mean:g}, std={e.std:g} (scale={1 / e.std:.6g}, zero_point={round(e.mean)}) because "
                + ("it learned its input range in QAT." if self.source_has_fake_quant else
                   "the model fixes its own input range (a fake-quant range recorded on its input)."))
        if self.weights_unquantized:
            notes.append(spec.unquantized_sentence(self.largest_weight))
        if self.per_channel_on_uint8:
            notes.append(f"per-channel weights in a uint8 model ({', '.join(self.per_channel_on_uint8[:3])}): "
                         + diagnose.entry("per-channel-on-uint8").fix)
        return tuple(notes)


@dataclass(frozen=True, eq=False)
class ConvertedModel:
    """A converted model and what it turned out to be (``outcome``; ``warnings`` are its sentences)."""

    recipe: Recipe
    tflite: bytes = field(repr=False)
    info: ModelInfo = field(repr=False)
    seconds: float
    outcome: Outcome

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.outcome.sentences()

    @property
    def requested_stats(self) -> InputStats | None:
        return self.outcome.requested_stats

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
        return self.outcome.effective_stats

    @property
    def came_out_float(self) -> bool:
        return self.outcome.came_out_float

    @property
    def stats_ignored(self) -> bool:
        return self.outcome.stats_ignored

    @property
    def per_channel_on_uint8(self) -> tuple[str, ...]:
        return self.outcome.per_channel_on_uint8

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


def convert(model: Any, recipe: Recipe | str | None = None, *, spec: InputSpec = InputSpec(),
            representative: np.ndarray | None = None, custom_objects: Any = None, **params: Any) -> ConvertedModel:
    """Convert ``model`` with ``recipe`` and check that the result runs.

    Args:
        model: a Keras model (tf_keras or Keras 3), the path of a ``.keras``/``.h5`` file (loaded with
            ``sources.keras_file``) or the path of a SavedModel folder.
        recipe: a ``Recipe`` or a registered recipe name (default: the reference recipe,
            ``float32``); ``params`` override its fields (``convert(m, "legacy-uint8", mean=0,
            std=255)``); a parameter the recipe does not take is an error.
        spec: the float range the model was trained on (normalizes the
            representative set; gives the default uint8 stats).
        representative: data for calibration: raw uint8 images, a float array ``(N, ...)`` fed as it is, or
            one array per model input (in its input order); used by calibrated recipes only
            (``recipes.get(name).calibrated``).
        custom_objects: a ``.keras``/``.h5`` path's own layer classes (``sources.custom_objects_of``: the
            path of a ``.py`` file that defines or registers them, a dict, classes or a module).

    Returns:
        ``ConvertedModel`` with the bytes, structure, outcome and timing.

    Raises:
        ValueError: a bad parameter, a missing model folder, an empty representative set, a Keras file
            that cannot be loaded (``sources.keras_file`` says why).
        QuantizationError: the converter or runtime refused the model (explained).
    """
    from .converters import Job
    from .recipes import reference

    recipe = make_recipe(reference().name if recipe is None else recipe, **params)
    if is_path(model) and Path(model).suffix.lower() in KERAS_SUFFIXES:
        model = keras_file(Path(model), custom_objects)
    rspec = recipe.spec
    if rspec.calibrated:
        if representative is None:
            raise ValueError(f"representative=None for recipe {recipe.name!r}; allowed: uint8 images "
                             "(N, H, W, C) of the model's input shape, N >= 1, for calibration")
        representative = representative_data(model, representative, recipe.calibration_size)
    if isinstance(model, FrozenGraph):
        pass  # checked against its graph by sources.frozen_graph
    elif is_path(model):
        check_saved_model_file(saved_model_dir(model))
    elif not hasattr(model, "layers"):
        raise ValueError(f"model={type(model).__name__}; allowed: a Keras model, a SavedModel folder, or "
                         "sources.load_source(...) of a .keras/.h5/.pb file")
    qat = is_qat(model)
    if rspec.needs_qat and not qat:
        raise ValueError(f"recipe {recipe.name!r} needs a QAT model (train_qat / quantize_model); "
                         "for a float model use 'int8-ptq' with a representative set")
    job = Job(model, recipe, spec, representative if rspec.calibrated else None)
    requested = job.stats if rspec.takes("mean") else None
    start = time.perf_counter()
    progress.phase("convert")
    with _tf_errors_explained(), warnings.catch_warnings(), native_log.native_stderr():  # no 'fully_quantize: ...'
        # TF's note about quantized_input_stats applies to its own v1 flags, not to these recipes.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        tflite = convert_worker.take(recipe) or rspec.adapter(job)  # sent ahead to the worker, else here
    seconds = time.perf_counter() - start
    info = litert.read_model(tflite)
    outcome = Outcome.of(rspec, recipe, info, requested, qat)
    _check_runs(tflite, info)
    converted = ConvertedModel(recipe, tflite, info, seconds, outcome)
    for note in converted.warnings:
        warnings.warn(note, QuantizationWarning, stacklevel=2)
    return converted


def representative_data(model: Any, data: Any, size: int) -> Any:
    """The first ``size`` rows of calibration data, checked: uint8 images of the model's input shape, or numeric
    arrays ``(N, ...)``, one per input, of one length. A lazy ``.npz`` array (``data.NpyRows``) gives only those
    rows."""
    if isinstance(data, (list, tuple)):
        data = type(data)(a[:size] if getattr(a, "rows_on_demand", False) else a for a in data)
    elif getattr(data, "rows_on_demand", False):
        data = data[:size]
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        shape = tuple(model.input_shape[1:]) if isinstance(getattr(model, "input_shape", None), tuple) else None
        return checks.images("representative", data, shape=shape if shape and None not in shape else None)[:size]
    arrays = [data] if isinstance(data, np.ndarray) else list(data) if isinstance(data, (list, tuple)) else None
    if not arrays or any(not isinstance(a, np.ndarray) or a.ndim < 1 or a.dtype.kind not in "fiub" or not len(a)
                         for a in arrays) or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"representative={type(data).__name__}; allowed: uint8 images (N, H, W, C), a numeric "
                         "array (N, ...) fed as it is, or a list of them (one per model input, N >= 1 each)")
    return arrays[0][:size] if len(arrays) == 1 else tuple(a[:size] for a in arrays)


def _check_runs(tflite: bytes, info: ModelInfo) -> None:
    try:
        interp = litert.interpreter(tflite)
        interp.allocate_tensors()
    except RuntimeError as err:
        message = str(err)
        if any(t.per_channel for t in info.tensors if t.dtype == "uint8"):
            message += "\n(per-channel weights in a uint8 model)"
        signature = interp.get_input_details()[0].get("shape_signature", ())
        if any(int(d) < 0 for d in list(signature)[1:]):
            message += f"\n(dynamic input shape {list(int(d) for d in signature)}: None beyond the batch dimension)"
        raise diagnose.QuantizationError(diagnose.explain(message)) from None


class _tf_errors_explained:
    """Turn whatever TensorFlow raises while converting into an explained ``QuantizationError``.

    Arguments are validated before this block, so anything raised inside comes from TensorFlow.
    """

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, (diagnose.QuantizationError,
                                                                              KeepFloatError)):
            return False
        raise diagnose.QuantizationError(diagnose.explain(f"{type(exc).__name__}: {exc}")) from exc


def _q(io) -> str:
    return f"(s={io.scale:.4g}, zp={io.zero_point})" if io.quantized else ""
