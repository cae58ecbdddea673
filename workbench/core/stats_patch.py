"""A legacy uint8 model's mean/std written straight into its bytes, with the converter's own arithmetic.

Two legacy uint8 conversions (``legacy-uint8``) of one model that differ only in
``mean``/``std`` differ in exactly two places: the input tensor's
``(scale, zero_point)`` and the first op's int32 bias (its scale and its values).
This module owns finding those places in a ``.tflite`` flatbuffer and writing
them as the v1 converter would:

* mean and std are cast to float32; ``rmin = -mean/std``, ``rmax = (255 - mean)/std``
  (the range is widened to contain 0); ``scale = (rmax - rmin)/255``; the zero
  point is "nudged" in double precision from whichever of ``qmin - rmin/scale`` and
  ``qmax - rmax/scale`` has the smaller error, clamped to 0..255, rounded half away
  from zero;
* bias scale ``= float32(input scale x weight scale)`` in double precision, the
  weight scale being ``(kernel_max - kernel_min)/254`` of the QAT variables (narrow
  range); bias values ``= round(float bias / bias scale)``. The float bias and the
  kernel range are found among the SavedModel's variables by value: the ones that
  reproduce the reference conversion's bytes.

Nothing here is trusted blindly. ``GuardedConverter`` (what sweeps and sliders
call instead of ``convert``) converts for real at the first point, builds a
``StatsPatcher`` only if it rewrites that conversion into itself byte for byte,
converts for real again at the first point with other stats and keeps patching
only if the patch equals that conversion byte for byte; any other recipe, other
parameters than mean/std, a frozen graph, or a failed check means converting.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .stats import InputStats



# --- a minimal flatbuffer reader for the TFLite schema ------------------------------------------

def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _field(buf: bytes, table: int, index: int) -> int | None:
    """The absolute position of field ``index`` of the table at ``table`` (``None`` when absent)."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    size = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * index >= size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _ref(buf: bytes, table: int, index: int) -> int | None:
    """The position of the table, vector or string that field ``index`` points to."""
    pos = _field(buf, table, index)
    return None if pos is None else pos + _u32(buf, pos)


def _vector(buf: bytes, table: int, index: int) -> tuple[int, int]:
    """``(position of the first element, length)`` of a vector field (``(0, 0)`` when absent)."""
    pos = _ref(buf, table, index)
    return (0, 0) if pos is None else (pos + 4, _u32(buf, pos))


def _tables(buf: bytes, table: int, index: int) -> list[int]:
    start, count = _vector(buf, table, index)
    return [start + 4 * i + _u32(buf, start + 4 * i) for i in range(count)]


def _ints(buf: bytes, table: int, index: int) -> list[int]:
    start, count = _vector(buf, table, index)
    return list(struct.unpack_from(f"<{count}i", buf, start)) if count else []


# Field numbers of the TFLite schema (schema.fbs).
_MODEL_SUBGRAPHS, _MODEL_BUFFERS = 2, 4
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OPERATORS = 0, 1, 3
_TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_QUANTIZATION = 1, 2, 4
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3
_OPERATOR_INPUTS = 1
_BUFFER_DATA = 0
_UINT8, _INT32 = 3, 2  # TensorType values


@dataclass(frozen=True)
class StatsSites:
    """Where a legacy uint8 model keeps what mean/std change (byte positions in its flatbuffer)."""

    input_scale: int  # float32
    input_zero_point: int  # int64
    bias_scale: int  # float32
    bias_values: int  # int32 x bias_count
    bias_count: int
    weight_scale: float  # the first op's (per-tensor) weight scale, unchanged by mean/std


def find_sites(tflite: bytes) -> StatsSites | None:
    """The places mean/std touch in a legacy uint8 model, or ``None`` when the model is not of that form.

    The form: one uint8 model input with one (scale, zero point), read by an op (the first one that reads
    it) whose weight has one scale and whose int32 bias has one scale and a buffer of its own.
    """
    try:
        return _find_sites(bytes(tflite))
    except (struct.error, IndexError):
        return None


def _find_sites(buf: bytes) -> StatsSites | None:
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        return None
    model = _u32(buf, 0)
    subgraphs = _tables(buf, model, _MODEL_SUBGRAPHS)
    if not subgraphs:
        return None
    graph = subgraphs[0]
    tensors = _tables(buf, graph, _SUBGRAPH_TENSORS)
    inputs = _ints(buf, graph, _SUBGRAPH_INPUTS)
    if len(inputs) != 1:
        return None
    first = inputs[0]
    readers = [op for op in _tables(buf, graph, _SUBGRAPH_OPERATORS) if first in _ints(buf, op, _OPERATOR_INPUTS)]
    if not readers:
        return None
    op_inputs = _ints(buf, readers[0], _OPERATOR_INPUTS)
    if len(op_inputs) < 3 or op_inputs[0] != first or min(op_inputs[1:3]) < 0:
        return None
    input_t, weight_t, bias_t = (tensors[i] for i in op_inputs[:3])
    if _scalar(buf, input_t, _TENSOR_TYPE, "<b") != _UINT8 or _scalar(buf, bias_t, _TENSOR_TYPE, "<b") != _INT32:
        return None
    in_scale, in_zp = _quant(buf, input_t)
    w_scale, _ = _quant(buf, weight_t)
    b_scale, b_zp = _quant(buf, bias_t)
    if None in (in_scale, in_zp, w_scale, b_scale):
        return None
    # a bias buffer shared with another tensor cannot be rewritten for this one alone
    buffer_index = _scalar(buf, bias_t, _TENSOR_BUFFER, "<I")
    if sum(_scalar(buf, t, _TENSOR_BUFFER, "<I") == buffer_index for t in tensors) != 1:
        return None
    buffers = _tables(buf, model, _MODEL_BUFFERS)
    data, size = _vector(buf, buffers[buffer_index], _BUFFER_DATA)
    if size == 0 or size % 4:
        return None
    return StatsSites(in_scale, in_zp, b_scale, data, size // 4, struct.unpack_from("<f", buf, w_scale)[0])


def _scalar(buf: bytes, table: int, index: int, fmt: str) -> int:
    pos = _field(buf, table, index)
    return 0 if pos is None else struct.unpack_from(fmt, buf, pos)[0]


def _quant(buf: bytes, tensor: int) -> tuple[int | None, int | None]:
    """Positions of a tensor's single scale (float32) and zero point (int64); ``None`` if not exactly one."""
    quant = _ref(buf, tensor, _TENSOR_QUANTIZATION)
    if quant is None:
        return None, None
    scale, n_scale = _vector(buf, quant, _QUANT_SCALE)
    zero, n_zero = _vector(buf, quant, _QUANT_ZERO_POINT)
    return (scale if n_scale == 1 else None), (zero if n_zero == 1 else None)


# --- the converter's arithmetic ----------------------------------------------------------------

def input_quantization(mean: float, std: float) -> tuple[float, int]:
    """The ``(scale, zero_point)`` the legacy converter gives a uint8 input for ``quantized_input_stats``.

    The scale is returned in double precision (the model stores it as float32; the bias scale is made
    from the double).
    """
    mean32, std32 = float(np.float32(mean)), float(np.float32(std))
    rmin, rmax = min(-mean32 / std32, 0.0), max((255.0 - mean32) / std32, 0.0)
    qmin, qmax = 0.0, 255.0
    scale = (rmax - rmin) / (qmax - qmin)
    from_min, from_max = qmin - rmin / scale, qmax - rmax / scale
    err_min, err_max = abs(qmin) + abs(rmin / scale), abs(qmax) + abs(rmax / scale)
    zero = from_min if err_min < err_max else from_max
    zero = qmin if zero < qmin else qmax if zero > qmax else zero
    return scale, int(math.floor(zero + 0.5))  # half away from zero (zero >= 0 here)


def bias_values(float_bias: np.ndarray, bias_scale: float) -> np.ndarray:
    """The int32 values the converter writes for a float bias at ``bias_scale``."""
    return np.round(np.asarray(float_bias, np.float64) / float(bias_scale)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class StatsPatcher:
    """A reference legacy uint8 conversion and what it takes to rewrite its mean/std.

    ``weight_scale`` is the first op's weight scale in double precision (``(kernel_max - kernel_min)/254`` of
    the QAT variables; the model stores it rounded to float32), ``float_bias`` that op's float32 bias.
    """

    reference: bytes
    sites: StatsSites
    weight_scale: float
    float_bias: np.ndarray

    def patch(self, mean: float, std: float) -> bytes:
        """The reference with the input quantization and first bias of ``(mean, std)`` written in."""
        scale, zero = input_quantization(mean, std)
        b_scale = np.float32(scale * self.weight_scale)
        out = bytearray(self.reference)
        sites = self.sites
        struct.pack_into("<f", out, sites.input_scale, scale)
        struct.pack_into("<q", out, sites.input_zero_point, zero)
        struct.pack_into("<f", out, sites.bias_scale, b_scale)
        values = bias_values(self.float_bias, b_scale)
        if np.abs(values).max(initial=0) >= 2 ** 31:
            raise ValueError(f"mean={mean!r}, std={std!r} give a bias beyond int32; allowed: stats the converter takes")
        out[sites.bias_values:sites.bias_values + 4 * sites.bias_count] = values.astype("<i4").tobytes()
        return bytes(out)


def read_bias(tflite: bytes, sites: StatsSites) -> tuple[np.ndarray, float]:
    """The first op's int32 bias values and their float32 scale, as written in ``tflite``."""
    values = np.frombuffer(tflite, "<i4", sites.bias_count, sites.bias_values).astype(np.int64)
    return values, struct.unpack_from("<f", tflite, sites.bias_scale)[0]


def patcher(reference: bytes, stats: InputStats, variables: dict[str, np.ndarray]) -> StatsPatcher | None:
    """A ``StatsPatcher`` for a legacy uint8 ``reference`` converted at ``stats``, or ``None`` when the model's
    variables cannot reproduce the reference byte for byte at its own stats.

    Args:
        reference: the ``.tflite`` bytes of a real conversion.
        stats: the mean/std it was converted with.
        variables: the float variables of the converted model (``saved_model_variables``): the first op's
            bias and its weight range are looked up among them by value.
    """
    sites = find_sites(reference)
    if sites is None:
        return None
    ints, b_scale = read_bias(reference, sites)
    scale, _ = input_quantization(stats.mean, stats.std)
    w32 = np.float32(sites.weight_scale)
    scalars = sorted({float(v) for v in variables.values() if np.ndim(v) == 0 and np.isfinite(v)})
    weight_scales = sorted({(hi - lo) / 254.0 for lo in scalars for hi in scalars
                            if hi > lo and np.float32((hi - lo) / 254.0) == w32
                            and np.float32(scale * (hi - lo) / 254.0) == np.float32(b_scale)})
    biases = [np.asarray(v, np.float32) for v in variables.values()
              if np.shape(v) == (sites.bias_count,) and np.issubdtype(np.asarray(v).dtype, np.floating)]
    biases = [b for b in biases if np.array_equal(bias_values(b, b_scale), ints)]
    for weight_scale in weight_scales:
        for bias in biases:
            candidate = StatsPatcher(bytes(reference), sites, weight_scale, bias)
            if candidate.patch(stats.mean, stats.std) == reference:
                return candidate
    return None


def saved_model_variables(folder: str | Path) -> dict[str, np.ndarray]:
    """The float variables of a SavedModel folder (imports TensorFlow); empty when it has none."""
    from .keras_compat import tf

    prefix = Path(folder) / "variables" / "variables"
    if not Path(f"{prefix}.index").is_file():
        return {}
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if dtypes[name].is_floating}


class GuardedConverter:
    """``convert`` for many mean/std points of one model: real conversions where needed, patched bytes where proven.

    Call it as ``converter(recipe)`` with full ``Recipe`` objects; it returns a ``ConvertedModel`` either way
    (``seconds`` is the time this call took). Only ``stats_patchable`` recipes (``legacy-uint8``) that set both
    ``mean`` and ``std``, on a SavedModel folder, with the same other parameters as the first such call, are
    patched, and only after the check described in the module docstring. ``patched`` and ``converted`` count
    what it did; ``checked`` is ``True`` once a check conversion agreed byte for byte, ``False`` once one
    disagreed.

    Args:
        model: what ``convert`` takes (a SavedModel folder path or ``sources.SavedModel`` can be patched).
        spec: the float range the model was trained on.
        enabled: ``False`` converts every call (the reference behaviour).
    """

    def __init__(self, model, spec=None, enabled: bool = True) -> None:
        from .data import InputSpec

        self.model = model
        self.spec = InputSpec() if spec is None else spec
        self.enabled = bool(enabled)
        self.patched = 0
        self.converted = 0
        self.checked: bool | None = None
        self._base = None  # the recipe with mean/std cleared, of the first patchable call
        self._reference = None  # (ConvertedModel, stats)
        self._patcher: StatsPatcher | None = None

    def __call__(self, recipe, representative=None):
        import time
        from dataclasses import replace

        start = time.perf_counter()
        if not self._patchable(recipe):
            return self._convert(recipe, representative)
        base = replace(recipe, mean=None, std=None)
        stats = InputStats(recipe.mean, recipe.std)
        if self._base is None:
            self._base = base
            converted = self._convert(recipe, representative)
            self._reference = (converted, stats)
            try:
                self._patcher = patcher(converted.tflite, stats, saved_model_variables(self._folder()))
            except (OSError, ValueError, RuntimeError):
                self._patcher = None
            return converted
        if base != self._base or self._patcher is None or self.checked is False:
            return self._convert(recipe, representative)
        if self.checked is None:
            if stats == self._reference[1]:
                return self._convert(recipe, representative)
            converted = self._convert(recipe, representative)
            self.checked = self._patch_bytes(stats) == converted.tflite
            return converted
        tflite = self._patch_bytes(stats)
        if tflite is None:
            return self._convert(recipe, representative)
        self.patched += 1
        return self._record(recipe, tflite, time.perf_counter() - start)

    def _patch_bytes(self, stats: InputStats) -> bytes | None:
        try:
            return self._patcher.patch(stats.mean, stats.std)
        except ValueError:
            return None

    def _patchable(self, recipe) -> bool:
        from .sources import FrozenGraph

        return (self.enabled and recipe.spec.stats_patchable and recipe.mean is not None
                and recipe.std is not None and not isinstance(self.model, FrozenGraph)
                and (isinstance(self.model, (str, Path)) or hasattr(self.model, "signature")))

    def _folder(self) -> Path:
        return Path(getattr(self.model, "path", self.model))

    def _convert(self, recipe, representative):
        from .convert import convert

        self.converted += 1
        return convert(self.model, recipe, spec=self.spec, representative=representative)

    def _record(self, recipe, tflite: bytes, seconds: float):
        from . import litert
        from .convert import ConvertedModel, Outcome

        info = litert.read_model(tflite)
        outcome = Outcome.of(recipe.spec, recipe, info, InputStats(recipe.mean, recipe.std),
                             self._reference[0].outcome.source_has_fake_quant)  # the same source as converted
        return ConvertedModel(recipe, tflite, info, seconds, outcome)
