"""The adapter between the workbench and ai-edge-quantizer (AEQ): int4 weights, calibrated int8, per-tensor error.

This module owns every call into ``ai_edge_quantizer`` (pinned 0.10.0). It takes
the float ``.tflite`` bytes of the workbench's ``float32`` recipe and returns
quantized bytes in an ``AeqResult`` that says which weight tensors really came
out quantized, read back from the output flatbuffer (AEQ's policy skips what it
does not support without a word). It imports no TensorFlow.

``quantize_int4_weights``  int4 weights, float32 activations:
    ``granularity="channel"``   AEQ ``weight_only_wi4_afp32``: per-channel int4
        weights (FULLY_CONNECTED, CONV_2D, BATCH_MATMUL, EMBEDDING_LOOKUP) with a
        DEQUANTIZE op in front of each consumer; the ops compute in float.
    ``granularity="blockwise"`` AEQ ``dynamic_wi4b{N}_afp32``: int4 weights in
        blocks of ``block_size`` along the input dimension, one float16 scale per
        block. AEQ 0.10.0's policy allows blockwise int4 only in this *dynamic*
        form (the FULLY_CONNECTED kernel quantizes its float activations on the
        fly) and only on FULLY_CONNECTED / EMBEDDING_LOOKUP; weight-only blockwise
        is skipped on every tensor. AEQ refuses a weight whose input dimension is
        not a multiple of the block, so such weights are left float (``skipped``);
        when nothing is left to quantize a ``ValueError`` says so.
``quantize_int8_static``   AEQ ``static_wi8_ai8`` calibrated on the given images:
    int8 weights (per channel) and int8 activations; the model's input and output
    stay float32 (QUANTIZE / DEQUANTIZE at the edges), so it is evaluated like a float model.
``validate_per_tensor``    AEQ's ``validate`` on real images: per-tensor error of
    the quantized model against the float one, as a DataFrame.

Measured on LeNet (250.5 KB float): int4 per-channel 38.7 KB, static int8 72.5 KB,
accuracy within 0.2 points of float on the 10k test set. On 2 threads AEQ
calibrates in ~2 ms and validates in ~8 ms per image (one image per invoke;
validation builds two interpreters per image).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from . import diagnose, checks, progress
from .litert import MAX_THREADS, FlatGraph, flat_graph

GRANULARITIES = ("channel", "blockwise")
BLOCK_SIZES = (32, 64, 128, 256)  # AEQ's QuantGranularity.BLOCKWISE_*
METRICS = ("mse", "median_diff_ratio", "cosine_similarity", "kl_divergence", "snr")
KINDS = ("output", "intermediate", "constant", "input")  # the row order of validate_per_tensor
DEFAULT_THREADS = 2

_INT_TYPES = {"int2", "int4", "int8", "int16", "int32", "int64", "uint4", "uint8", "uint16", "uint32"}
_FLOAT_TYPES = {"float16", "float32", "float64", "bfloat16"}


@dataclass(frozen=True, eq=False)
class AeqResult:
    """A model quantized by AEQ and what really happened to its weights.

    Attributes:
        tflite: the quantized ``.tflite`` bytes.
        quantized_tensors: names of the float model's weight tensors (constant,
            floating point, rank >= 2: kernels and matrices, not biases) that came
            out with an integer type, in graph order.
        recipe_name: the AEQ recipe used, in AEQ's naming (``weight_only_wi4_afp32``,
            ``dynamic_wi4b32_afp32``, ``static_wi8_ai8``).
        skipped: weight tensors left floating point.
        weight_dtypes: each weight tensor's type in the output, e.g. ``{"lenet/fc1/MatMul": "int4"}``.
        seconds: time spent in AEQ (calibration included).
    """

    tflite: bytes = field(repr=False)
    quantized_tensors: tuple[str, ...]
    recipe_name: str
    skipped: tuple[str, ...] = ()
    weight_dtypes: dict[str, str] = field(default_factory=dict, repr=False)
    seconds: float = 0.0


def quantize_int4_weights(float_tflite: bytes, granularity: str = "channel", block_size: int = 32) -> AeqResult:
    """int4 weights, float32 activations, through AEQ (see the module doc for the two granularities).

    Args:
        float_tflite: the float model's ``.tflite`` bytes (e.g. ``convert(model, "float32").tflite``).
        granularity: ``"channel"`` (one scale per output channel) or ``"blockwise"``
            (one scale per ``block_size`` input values; FULLY_CONNECTED weights only).
        block_size: 32, 64, 128 or 256 (only used with ``granularity="blockwise"``).

    Returns:
        ``AeqResult``; ``quantized_tensors`` lists the weights that are int4 in the output.

    Raises:
        ValueError: bad bytes, an already quantized model, a bad granularity or
            block size, or a model in which no weight tensor could be quantized.
        QuantizationError: AEQ or LiteRT failed on the model (explained).
    """
    model = _float_model("float_tflite", float_tflite)
    checks.choice("granularity", granularity, GRANULARITIES)
    if isinstance(block_size, bool) or block_size not in BLOCK_SIZES:
        raise ValueError(f"block_size={block_size!r} is not supported; allowed: "
                         f"{', '.join(map(str, BLOCK_SIZES))} (AEQ's blockwise granularities)")
    block_size = int(block_size)
    aeq = _aeq()
    graph = flat_graph(model)
    start = time.perf_counter()
    if granularity == "channel":
        name = "weight_only_wi4_afp32"
        qt = aeq.quantizer.Quantizer(model, aeq.recipe.weight_only_wi4_afp32())
        out = _quantize(qt)
    else:
        name = f"dynamic_wi4b{block_size}_afp32"
        out = _quantize_blockwise(aeq, model, graph, block_size)
    seconds = time.perf_counter() - start
    result = _result(out, graph, name, seconds)
    if not result.quantized_tensors:
        raise ValueError(_nothing_quantized(granularity, block_size, graph))
    return result


def quantize_int8_static(float_tflite: bytes, calibration: np.ndarray, num_threads: int = DEFAULT_THREADS) -> AeqResult:
    """int8 weights and activations, calibrated by AEQ on ``calibration``; float32 input and output.

    AEQ keeps a moving average (factor 0.95) of each tensor's per-image min/max,
    one image per invoke, so the last few dozen images weigh most: shuffle the
    calibration set; a few hundred images are plenty.

    Args:
        float_tflite: the float model's ``.tflite`` bytes.
        calibration: float images already in the model's input space (e.g.
            ``InputSpec().normalize(raw_pixels)``), shape ``(N, *input shape[1:])``.
        num_threads: interpreter threads for calibration (AEQ's own default is 16).

    Returns:
        ``AeqResult`` with ``recipe_name="static_wi8_ai8"``.

    Raises:
        ValueError: bad bytes, an already quantized model, a model without one
            image input, empty / non-float / non-finite / wrongly shaped calibration
            images, a bad thread count.
        QuantizationError: AEQ or LiteRT failed on the model (explained).
    """
    model = _float_model("float_tflite", float_tflite)
    threads = _threads(num_threads)
    signature, input_name, shape = _signature_input("float_tflite", model)
    x = _float_images("calibration", calibration, shape)
    aeq = _aeq()
    graph = flat_graph(model)
    start = time.perf_counter()
    qt = aeq.quantizer.Quantizer(model, aeq.recipe.static_wi8_ai8())
    no_quantize = aeq.algorithm_manager.AlgorithmName.NO_QUANTIZE
    for edge in (aeq.qtyping.TFLOperationName.INPUT, aeq.qtyping.TFLOperationName.OUTPUT):
        qt.update_quantization_recipe(regex=".*", operation_name=edge, algorithm_key=no_quantize)
    with _quiet(), _aeq_errors():
        progress.phase("calibrate (ai-edge-quantizer)")
        qsv = qt.calibrate({signature: [{input_name: x[i:i + 1]} for i in range(len(x))]}, num_threads=threads)
    out = _quantize(qt, qsv)
    seconds = time.perf_counter() - start
    result = _result(out, graph, "static_wi8_ai8", seconds)
    if not result.quantized_tensors:
        raise ValueError("float_tflite: static int8 quantized no weight tensor of this model; allowed: a model "
                         "with FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D weights")
    return result


def validate_per_tensor(float_tflite: bytes, quantized: bytes | AeqResult, images: np.ndarray,
                        metrics: Iterable[str] = METRICS, num_threads: int = DEFAULT_THREADS):
    """Per-tensor error of ``quantized`` against ``float_tflite`` on real images (AEQ's ``validate``).

    Every image is run through both models (one image per invoke) and each tensor
    present in both, matched by name, is compared; a metric is the mean over the
    images of its per-image value. Weights and biases are compared dequantized.

    Metrics (AEQ's definitions, quantized value ``q`` against float ``f``):
    ``mse`` mean((q-f)^2); ``median_diff_ratio`` median(|q-f| / (|f| + 1e-6));
    ``cosine_similarity``; ``kl_divergence`` sum(p log(p/q)) of the values clipped
    at 0 (not normalized, can be slightly negative); ``snr`` mean(f^2) / (mse + 1e-9):
    a **power ratio, not dB** (``snr_db`` = 10 log10(snr) is added). Because the
    ratio is averaged over images, an image that matches exactly (e.g. a saturated
    float softmax) contributes ~1e9 and dominates: rank tensors by ``mse`` or
    ``cosine_similarity``, not ``snr``.

    Args:
        float_tflite: the float model's ``.tflite`` bytes.
        quantized: an ``AeqResult`` or quantized ``.tflite`` bytes of the same graph.
        images: float images in the model's input space, shape ``(N, *input shape[1:])``;
            ~7 ms per image on LeNet, so a few hundred images are the sensible size.
        metrics: any of ``METRICS``.
        num_threads: interpreter threads (AEQ's own default is 16).

    Returns:
        A pandas DataFrame, one row per tensor: ``tensor``, ``kind`` (output,
        intermediate, constant or input, as AEQ classifies them), ``dtype`` (its
        type in the quantized model, int4 included), ``op`` (the op writing it, or
        for constants and inputs the first op reading it), ``position`` (that op's
        index), then the metrics. Rows are sorted output first, then
        intermediates in execution order, constants, inputs. ``frame.attrs``
        holds ``images`` and ``seconds``.

    Raises:
        ValueError: bad bytes, unknown metrics, bad images or thread count.
        QuantizationError: AEQ or LiteRT failed (explained).
    """
    import pandas as pd

    model = _float_model("float_tflite", float_tflite)
    target = _model_bytes("quantized", quantized)
    chosen = _metrics(metrics)
    threads = _threads(num_threads)
    signature, input_name, shape = _signature_input("float_tflite", model)
    x = _float_images("images", images, shape)
    aeq = _aeq()
    start = time.perf_counter()
    qt = aeq.quantizer.Quantizer(model, previous_quantized_model=target)
    with _quiet(), _aeq_errors():
        comparison = qt.validate(
            test_data={signature: [{input_name: x[i:i + 1]} for i in range(len(x))]},
            error_metrics=[aeq.quantizer.ValidationErrorMetric(m) for m in chosen], num_threads=threads)
    seconds = time.perf_counter() - start
    result = comparison.get_signature_comparison_result(signature)
    float_graph, quant_graph = flat_graph(model), flat_graph(target)
    rows = []
    for kind in KINDS:
        for tensor, values in getattr(result, f"{kind}_tensors").items():
            op, position = float_graph.place(tensor)
            row = {"tensor": tensor, "kind": kind, "dtype": quant_graph.dtype(tensor), "op": op, "position": position}
            row.update({m: float(values[m]) for m in chosen})
            if "snr" in chosen:
                row["snr_db"] = float(10 * np.log10(values["snr"])) if values["snr"] > 0 else float("-inf")
            rows.append(row)
    columns = ["tensor", "kind", "dtype", "op", "position", *chosen] + (["snr_db"] if "snr" in chosen else [])
    frame = pd.DataFrame(rows, columns=columns)
    frame["_kind"] = frame["kind"].map(KINDS.index)
    frame = frame.sort_values(["_kind", "position", "tensor"], kind="stable").drop(columns="_kind")
    frame = frame.reset_index(drop=True)
    frame.attrs.update(images=len(x), seconds=seconds)
    return frame


# --- AEQ calls ---------------------------------------------------------------------------------------

class _Aeq:
    """The AEQ modules, imported on first use."""

    def __init__(self) -> None:
        try:
            from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe
        except ImportError as err:
            raise ImportError(
                f"ai-edge-quantizer could not be imported ({err}). Fix: `pip install ai-edge-quantizer==0.10.0` "
                "(pinned in requirements.txt); if it is installed, a local file named like a standard-library "
                "module (e.g. timeit.py) in the working directory shadows it: rename that file.") from err
        self.algorithm_manager, self.qtyping = algorithm_manager, qtyping
        self.quantizer, self.recipe = quantizer, recipe


_AEQ: _Aeq | None = None


def _aeq() -> _Aeq:
    global _AEQ
    if _AEQ is None:
        _AEQ = _Aeq()
    return _AEQ


def _quantize(qt: Any, calibration_result: Any = None) -> bytes:
    with _quiet(), _aeq_errors():
        out = qt.quantize(calibration_result, enable_progress_report=False).quantized_model
    out = bytes(out)
    _check_runs(out)
    return out


def _quantize_blockwise(aeq: _Aeq, model: bytes, graph: FlatGraph, block_size: int) -> bytes:
    """AEQ's dynamic blockwise int4 on the FULLY_CONNECTED weights whose input dimension the block divides.

    AEQ raises on the first weight it cannot split into blocks, so each usable op is
    named by its exact scope (``^output names;$``) and the others are left out.
    """
    granularity = aeq.qtyping.QuantGranularity[f"BLOCKWISE_{block_size}"]
    fc = aeq.qtyping.TFLOperationName.FULLY_CONNECTED
    usable = [w for w in _fc_weights(graph) if w.shape[-1] % block_size == 0]
    if not usable:
        # Ask AEQ anyway, on every FULLY_CONNECTED op: its refusal goes into the error message.
        qt = aeq.quantizer.Quantizer(model)
        qt.add_dynamic_config(regex=".*", operation_name=fc, num_bits=4, granularity=granularity)
        try:
            with _quiet():
                out = qt.quantize(enable_progress_report=False).quantized_model
        except ValueError as err:
            raise ValueError(f"{_nothing_quantized('blockwise', block_size, graph)} [AEQ: {err}]") from None
        out = bytes(out)
        _check_runs(out)
        return out
    qt = aeq.quantizer.Quantizer(model)
    for w in usable:
        qt.add_dynamic_config(regex="^" + re.escape(w.scope) + "$", operation_name=fc, num_bits=4,
                              granularity=granularity)
    return _quantize(qt)


def _result(out: bytes, float_graph: FlatGraph, recipe_name: str, seconds: float) -> AeqResult:
    quant_graph = flat_graph(out)
    dtypes = {w.name: quant_graph.dtype(w.name) for w in _weights(float_graph)}
    quantized = tuple(n for n, d in dtypes.items() if d in _INT_TYPES)
    skipped = tuple(n for n, d in dtypes.items() if d not in _INT_TYPES)
    return AeqResult(out, quantized, recipe_name, skipped, dtypes, seconds)


def _nothing_quantized(granularity: str, block_size: int, graph: FlatGraph) -> str:
    if granularity == "channel":
        kinds = ", ".join(sorted({w.op for w in _weights(graph)})) or "none"
        return ("granularity='channel' quantized no weight tensor of this model (weights feed: "
                f"{kinds}); allowed: a model with FULLY_CONNECTED, CONV_2D, BATCH_MATMUL or "
                "EMBEDDING_LOOKUP weights (AEQ's weight-only int4 policy)")
    fcs = _fc_weights(graph)
    if not fcs:
        return (f"granularity='blockwise' with block_size={block_size} quantized no weight tensor of this model: "
                "it has no FULLY_CONNECTED weight (AEQ's blockwise int4 covers FULLY_CONNECTED / EMBEDDING_LOOKUP "
                "only); allowed: granularity='channel'")
    dims = ", ".join(f"{w.name} {w.shape[-1]}" for w in fcs)
    dividing = [b for b in BLOCK_SIZES if any(w.shape[-1] % b == 0 for w in fcs)]
    other = (f"a block_size dividing one of them: {', '.join(map(str, dividing))}" if dividing
             else f"no block size in {', '.join(map(str, BLOCK_SIZES))} divides any of them")
    return (f"granularity='blockwise' with block_size={block_size} quantized no weight tensor of this model: every "
            f"FULLY_CONNECTED weight has an input dimension not divisible by {block_size} ({dims}); "
            f"allowed: granularity='channel', or {other}")


# The bars AEQ draws on stderr whatever enable_progress_report says (calibration; transformations of a large model).
PROGRESS_BARS = ("Running Calibration", "Applying Transformations")


@contextlib.contextmanager
def _quiet():
    """Silence AEQ's progress bars (``PROGRESS_BARS``) and LiteRT's debug-mode warning; pass anything else on."""
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stderr(captured):
                yield
        finally:
            rest = [seg for seg in re.split(r"[\r\n]", captured.getvalue())
                    if seg.strip() and not any(bar in seg for bar in PROGRESS_BARS)]
            if rest:
                sys.stderr.write("\n".join(rest) + "\n")
    for w in caught:
        if "experimental_preserve_all_tensors" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextlib.contextmanager
def _aeq_errors():
    """AEQ / LiteRT refusals of a validated model (``RuntimeError``, ``ValueError``, or any message the catalog
    knows) become explained ``QuantizationError``s, the original as their cause. Anything else AEQ raises (a
    ``KeyError``, ``IndexError`` or ``AssertionError`` inside it) is no known refusal: it goes up as it is, with a
    note saying where it came from, rather than as an "unrecognised failure" that reads like the model's fault."""
    try:
        yield
    except (RuntimeError, ValueError) as err:
        raise diagnose.explain_error(err) from err
    except (KeyError, IndexError, AssertionError) as err:
        known = diagnose.explain(f"{type(err).__name__}: {err}")
        if known.entry is not None:
            raise diagnose.QuantizationError(known) from err
        err.add_note("raised inside ai-edge-quantizer on a model the workbench had validated (not a known "
                     "TFLite refusal; workbench.diagnose has no explanation for it)")
        raise


def _check_runs(model: bytes) -> None:
    from .litert import interpreter

    try:
        interp = interpreter(model)
        interp.allocate_tensors()
        interp.invoke()
    except (RuntimeError, ValueError) as err:
        raise diagnose.explain_error(err) from None


# --- argument checks ---------------------------------------------------------------------------------

def _model_bytes(name: str, value: Any) -> bytes:
    """``.tflite`` bytes from bytes or an object with a ``.tflite`` attribute, checked by LiteRT."""
    from .litert import interpreter

    data = getattr(value, "tflite", value)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{name}={type(value).__name__}; allowed: .tflite bytes "
                         "(or a ConvertedModel / AeqResult holding them)")
    data = bytes(data)
    try:
        interpreter(data)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return data


def _float_model(name: str, value: Any) -> bytes:
    data = _model_bytes(name, value)
    for t in flat_graph(data).tensors:
        if t.dtype in _INT_TYPES and t.quantized:
            raise ValueError(f"{name} is already quantized (tensor {t.name!r} is {t.dtype}); allowed: a float "
                             "model, e.g. the .tflite of the workbench's 'float32' recipe")
    return data


def _threads(value: Any) -> int:
    return checks.number("num_threads", value, low=1, high=MAX_THREADS, integer=True)


def _metrics(value: Any) -> tuple[str, ...]:
    chosen = (value,) if isinstance(value, str) else tuple(value) if value is not None else ()
    if not chosen:
        raise ValueError(f"metrics={value!r} is empty; allowed: one or more of {', '.join(METRICS)}")
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics={value!r}: {unknown} not supported; allowed: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(chosen))


def _signature_input(name: str, model: bytes) -> tuple[str, str, tuple[int, ...]]:
    """The model's only signature, its only input's name and shape (``-1`` for a dynamic dimension)."""
    from .litert import interpreter

    interp = interpreter(model)
    signatures = interp.get_signature_list()
    if len(signatures) != 1:
        raise ValueError(f"{name} has {len(signatures)} signatures ({', '.join(signatures) or 'none'}); allowed: a "
                         "model with exactly one, as the TF2 converter writes (the workbench's 'float32' recipe)")
    key = next(iter(signatures))
    inputs = interp.get_signature_runner(key).get_input_details()
    if len(inputs) != 1:
        raise ValueError(f"{name} has {len(inputs)} inputs ({', '.join(inputs)}); "
                         "allowed: a model with one image input")
    input_name, detail = next(iter(inputs.items()))
    if np.dtype(detail["dtype"]) != np.float32:
        raise ValueError(f"{name} has a {np.dtype(detail['dtype']).name} input; allowed: a float32 input")
    shape = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
    return key, input_name, shape


def _float_images(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    wanted = "(N, " + ", ".join("any" if d < 0 else str(d) for d in shape[1:]) + ")"
    if not np.issubdtype(arr.dtype, np.floating):
        hint = (" (raw pixels? normalize them first, e.g. InputSpec().normalize(images))"
                if arr.dtype == np.uint8 else "")
        raise ValueError(f"{name} has dtype {arr.dtype}{hint}; allowed: float images in the model's input space, "
                         f"shape {wanted}")
    if arr.ndim != len(shape) or any(d >= 0 and d != a for d, a in zip(shape[1:], arr.shape[1:])):
        raise ValueError(f"{name} has shape {arr.shape}; allowed: {wanted}, the model's input shape with N images")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty; allowed: at least one image, shape {wanted}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; allowed: finite floats")
    return np.ascontiguousarray(arr, dtype=np.float32)


# --- the weights AEQ quantizes, from the flatbuffer (litert.flat_graph: int4 tensors as int4) -----------

@dataclass(frozen=True)
class _Weight:
    name: str
    shape: tuple[int, ...]
    op: str  # the first op reading it
    scope: str  # that op's AEQ scope: its output names joined by ";" plus a trailing ";"


def _weights(graph: FlatGraph) -> list[_Weight]:
    """Constant floating-point tensors of rank >= 2 (kernels, matrices), in the order ops first read them."""
    seen: dict[int, _Weight] = {}
    for kind, ins, outs in graph.ops:
        for i in ins:
            t = graph.tensors[i] if 0 <= i < len(graph.tensors) else None
            if t is None or i in seen or not t.constant or t.dtype not in _FLOAT_TYPES or len(t.shape) < 2:
                continue
            scope = "".join(graph.tensors[o].name + ";" for o in outs if o >= 0)
            seen[i] = _Weight(t.name, t.shape, kind, scope)
    return list(seen.values())


def _fc_weights(graph: FlatGraph) -> list[_Weight]:
    return [w for w in _weights(graph) if w.op == "FULLY_CONNECTED" and len(w.shape) == 2]
