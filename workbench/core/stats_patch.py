"""A legacy uint8 model's mean/std written straight into its bytes, with the converter's own arithmetic.

Two legacy uint8 conversions (``legacy-uint8``) of one model that differ only in
``mean``/``std`` differ in exactly two places: the input tensor's
``(scale, zero_point)`` and the first op's int32 bias (its scale and its values).
``litert.input_layer_sites`` finds those places in the flatbuffer; this module
writes them as the v1 converter would:

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
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .litert import InputLayerSites, input_layer_sites
from .stats import InputStats


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
    sites: InputLayerSites
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


def read_bias(tflite: bytes, sites: InputLayerSites) -> tuple[np.ndarray, float]:
    """The first op's int32 bias values and their float32 scale, as written at ``sites`` of ``tflite``."""
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
    sites = input_layer_sites(reference)
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
    disagreed. Calls from several threads take turns (a background sweep and a foreground one share the
    session's converter of a model).

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
        self._lock = threading.Lock()

    def __call__(self, recipe, representative=None):
        with self._lock:  # a session's sweeps share one converter per model, from more than one thread
            return self._call(recipe, representative)

    def _call(self, recipe, representative):
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
