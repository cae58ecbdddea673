"""Per-layer quantization error, for uint8 (legacy) and int8 models alike.

``layer_errors`` runs the TFLite model keeping every tensor, dequantizes each
quantized activation with its own scale and zero point, and compares it with
the matching Keras layer output of the reference model on the same images.
TFLite tensor names carry the Keras layer names (``lenet/conv1/Relu;...``), so
a tensor belongs to the latest Keras layer named in it; for fused ops (conv +
ReLU, or the MobileNet-style ``conv -> BN -> ReLU6`` fused into one
``CONV_2D`` / ``DEPTHWISE_CONV_2D``) that is the layer whose output already
includes the activation (``relu0``, ``dw1_relu``, ``pw1_relu``). Tensors are
taken in execution order, so a later op of the same layer (the ``SOFTMAX`` after
a dense layer's ``FULLY_CONNECTED``) replaces an earlier one; the tensor that
becomes the model output (through a final ``DEQUANTIZE`` or ``QUANTIZE``) is the
last layer's. Any input shape and class count works; the reference may be the
Keras model itself or the ``.keras``/``.h5``/SavedModel file it was saved to, built with
``tf_keras`` or Keras 3 (``model_facts.layer_outputs`` reads the outputs with the model's own Keras).

``activation_ranges`` gives the float model's own range per layer output (min, max, percentiles).

For int8 models the TFLite QuantizationDebugger gives its own per-layer
statistics (``debugger_statistics``); it does not cover the uint8 path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import litert, checks
from ..core.converters import name_segments
from ..core.data import InputSpec
from ..core.model_facts import layer_outputs


@dataclass(frozen=True)
class LayerError:
    """One Keras layer's output against its quantized TFLite counterpart."""

    layer: str
    tensor: str
    op: str
    dtype: str
    scale: float
    zero_point: int
    rmse: float
    snr_db: float  # 10 log10(mean(ref^2) / mean(err^2))
    relative: float  # rmse / rms(ref)
    max_abs: float

    @property
    def rmse_in_steps(self) -> float:
        """The RMSE in quantization steps (1.0 = one step of this tensor's scale)."""
        return self.rmse / self.scale if self.scale else float("nan")


@dataclass(frozen=True)
class LayerReport:
    """Per-layer errors of one model, in execution order."""

    layers: tuple[LayerError, ...]
    count: int  # images compared
    values: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)

    def table(self):
        """A pandas DataFrame, one row per layer."""
        import pandas as pd

        rows = [{**e.__dict__, "rmse_in_steps": e.rmse_in_steps} for e in self.layers]
        return pd.DataFrame(rows).set_index("layer")

    def get(self, layer: str) -> LayerError:
        for e in self.layers:
            if e.layer == layer:
                return e
        raise ValueError(f"layer={layer!r}; allowed: {', '.join(e.layer for e in self.layers)}")


def error_metrics(quantized: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, float]:
    """``(rmse, snr_db, relative, max_abs)`` of ``quantized`` (real values) against ``reference``."""
    q = np.asarray(quantized, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    if q.shape != r.shape:
        raise ValueError(f"quantized has {q.size} values, reference {r.size}; allowed: the same shape")
    err = q - r
    mse, power = float(np.mean(err ** 2)), float(np.mean(r ** 2))
    rmse = float(np.sqrt(mse))
    snr = float("inf") if mse == 0 else (10 * np.log10(power / mse) if power > 0 else float("-inf"))
    relative = rmse / np.sqrt(power) if power > 0 else float("inf")
    return rmse, float(snr), float(relative), float(np.max(np.abs(err))) if err.size else 0.0


def layer_errors(model: Any, keras_model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
                 keep_values: bool = False) -> LayerReport:
    """Compare every quantized activation of a TFLite model with the Keras layer it came from.

    Args:
        model: the converted model (``ConvertedModel``, bytes or path), uint8 or int8.
        keras_model: its Keras source (the float model, or the QAT model for QAT conversions):
            the model, or a ``.keras``/``.h5`` file or SavedModel folder written by Keras
            (``reference_model``).
        images: raw uint8 images of the shape the model reads (a few hundred are plenty).
        spec: the float range the Keras model was trained on.
        keep_values: also keep each pair of arrays (``report.values[layer]``).

    Returns:
        ``LayerReport`` with one ``LayerError`` per matched layer, in execution order.

    Raises:
        ValueError: bad images, a reference that is not a Keras model, or no quantized
            activation matched any Keras layer.
    """
    from ..core.keras_compat import is_keras3

    keras_model = reference_model(keras_model)
    shape = tuple(keras_model.input_shape[1:])
    data = checks.images("images", images, shape=shape if None not in shape else None)
    info = litert.read_model(model)
    # Reference kernels: XNNPack may fuse ops and leave their intermediate tensors unwritten.
    outcome = litert.run(model, data, spec, keep_tensors=True, reference_kernels=True)

    order = [layer.name for layer in keras_model.layers]
    k3 = is_keras3(keras_model)
    final = {io.index for io in info.outputs}
    step = {out: op.index for op in info.op_details for out in op.outputs}  # execution order
    matched: dict[str, litert.TensorInfo] = {}
    for t in sorted(info.tensors, key=lambda t: step.get(t.index, -1)):
        if not t.is_activation or len(t.scales) != 1 or t.producer == "QUANTIZE":
            continue
        layer = _layer_of(t.name, order, k3) or (order[-1] if _feeds_output(t.index, info.op_details, final) else None)
        if layer is not None:
            matched[layer] = t  # later tensors of a layer (fused activation) replace earlier ones
    if not matched:
        raise ValueError("no quantized activation tensor matched a Keras layer; allowed: a quantized (uint8 or "
                         "int8) model converted from keras_model")
    names = [n for n in order if n in matched]
    refs = layer_outputs(keras_model, names, spec.normalize(data))
    rows, values = [], {}
    for name, ref in zip(names, refs):
        t = matched[name]
        s, z = t.scales[0], t.zero_points[0]
        real = litert.dequantize(outcome.tensor(t.index), s, z)
        rmse, snr, rel, mx = error_metrics(real, ref)
        rows.append(LayerError(name, t.name, t.producer, t.dtype, s, z, rmse, snr, rel, mx))
        if keep_values:
            values[name] = (real, np.asarray(ref))
    return LayerReport(tuple(rows), len(data), values)


def activation_ranges(keras_model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
                      percentiles: tuple[float, ...] = (0.1, 99.9)):
    """The float model's own range per layer output: ``min``, ``max`` and the ``percentiles`` of its values.

    Args:
        keras_model: a ``tf_keras`` or Keras 3 model, or the file or folder it was saved to (``reference_model``).
        images: raw uint8 images of the shape the model reads (a few hundred are plenty).
        spec: the float range the model was trained on.
        percentiles: in 0..100, one column each, named ``p0.1``, ``p99.9``, ...

    Returns:
        A pandas DataFrame indexed by layer name, in layer order (input layers left out): ``type``, ``min``,
        ``max``, one ``p<q>`` column per percentile, and ``count`` (values seen).
    """
    import pandas as pd

    keras_model = reference_model(keras_model)
    shape = tuple(keras_model.input_shape[1:])
    data = checks.images("images", images, shape=shape if None not in shape else None)
    qs = [checks.number("percentile", q, low=0, high=100) for q in percentiles]
    layers = [layer for layer in keras_model.layers if type(layer).__name__ != "InputLayer"]
    outs = layer_outputs(keras_model, [layer.name for layer in layers], spec.normalize(data))
    rows = []
    for layer, out in zip(layers, outs):
        values = np.asarray(out, dtype=np.float64).reshape(-1)
        row = {"layer": layer.name, "type": type(layer).__name__, "min": float(values.min()),
               "max": float(values.max())}
        row.update({f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(values, qs))})
        rows.append({**row, "count": int(values.size)})
    return pd.DataFrame(rows).set_index("layer")


def _layer_of(tensor_name: str, order: list[str], keras3: bool = False) -> str | None:
    """The latest layer of ``order`` named in ``tensor_name`` (``converters.name_segments``)."""
    segments = name_segments(tensor_name, order, keras3)
    found = [name for name in order if name in segments]
    return found[-1] if found else None


def _feeds_output(index: int, ops: tuple, final: set[int]) -> bool:
    """The tensor is the model output, or the input of the DEQUANTIZE (float output) or QUANTIZE
    (int8 computed, uint8 output) that makes it."""
    if index in final:
        return True
    for op in ops:
        if op.name in ("DEQUANTIZE", "QUANTIZE") and index in op.inputs and final & set(op.outputs):
            return True
    return False


def reference_model(model: Any, custom_objects: Any = None) -> Any:
    """The Keras model to compare against: the model itself, or loaded from a Keras-written file or folder.

    Args:
        model: a Keras model, a ``.keras``/``.h5`` path, a SavedModel folder written by Keras
            (``model.save``, ``export_saved_model``), or ``sources.SavedModel``.
        custom_objects: the layer classes of the user's own a ``.keras``/``.h5`` file needs
            (``sources.custom_objects_of``: a ``.py`` file, a dict, classes).

    Raises:
        ValueError: a frozen graph or ``.tflite`` (no Keras layers to compare with), or a file
            or folder Keras cannot load.
    """
    import os
    from pathlib import Path

    from ..core import sources

    if hasattr(model, "layers") and hasattr(model, "input_shape"):
        return model
    if isinstance(model, sources.FrozenGraph) or isinstance(model, (bytes, bytearray)) or hasattr(model, "tflite"):
        raise ValueError(f"keras_model={type(model).__name__}: it has no Keras layers to compare with; allowed: the "
                         "Keras model (or its .keras/.h5 file or Keras SavedModel); for a model known only as a "
                         ".pb or .tflite compare against its float .tflite with tensor_errors")
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"keras_model={type(model).__name__}; allowed: a Keras model, a .keras/.h5 file or a "
                         "SavedModel folder written by Keras")
    path = Path(model)
    if path.is_file() and path.suffix.lower() in sources.KERAS_SUFFIXES:
        return sources.keras_file(path, custom_objects)
    sources.saved_model(path)  # a clear error for a missing folder or one without saved_model.pb
    from ..core.keras_compat import keras

    try:
        import tensorflow_model_optimization as tfmot

        with tfmot.quantization.keras.quantize_scope():  # QAT models need tfmot's layers
            loaded = keras.models.load_model(str(path), compile=False)
    except Exception as err:  # noqa: BLE001 - anything Keras cannot revive
        raise ValueError(f"keras_model={str(path)!r} could not be loaded as a Keras model ({type(err).__name__}: "
                         f"{str(err)[:200]}); allowed: a SavedModel written by Keras (model.export() in Keras 3, model.save in tf_keras)") from None
    if not hasattr(loaded, "layers") or not getattr(loaded, "layers", None):
        raise ValueError(f"keras_model={str(path)!r} is a SavedModel without Keras layers; allowed: one written by "
                         "Keras (model.export() in Keras 3, model.save in tf_keras), or compare .tflite models with tensor_errors")
    return loaded


def plot_layer_errors(reports: dict[str, LayerReport], metric: str = "snr_db", ax=None):
    """Bar chart of one metric per layer for one or more models (``{"uint8": report, ...}``).

    Args:
        reports: a ``LayerReport`` per model, keyed by its legend label.
        metric: ``snr_db``, ``rmse``, ``relative`` or ``rmse_in_steps``.
        ax: matplotlib axes to draw on; a new figure (not registered with pyplot) when ``None``.

    Returns:
        The matplotlib ``Axes`` drawn on (``ax.figure`` shows it in a notebook).
    """
    checks.choice("metric", metric, ("snr_db", "rmse", "relative", "rmse_in_steps"))
    layers = list(dict.fromkeys(e.layer.removeprefix("quant_") for r in reports.values() for e in r.layers))
    if ax is None:
        from ..core.figures import new_axes

        ax = new_axes((max(8.0, 0.8 * len(layers) + 1), 3.5), layout=None)  # MobileNet: 9 layers
    width = 0.8 / max(len(reports), 1)
    for i, (label, report) in enumerate(reports.items()):
        by_name = {e.layer.removeprefix("quant_"): e for e in report.layers}
        ys = [getattr(by_name[n], metric) if n in by_name else np.nan for n in layers]
        ax.bar(np.arange(len(layers)) + i * width, ys, width, label=label)
    ax.set_xticks(np.arange(len(layers)) + width * (len(reports) - 1) / 2, layers, rotation=30)
    ax.set_ylabel({"snr_db": "SNR (dB, higher is better)", "rmse": "RMSE", "relative": "RMSE / RMS",
                   "rmse_in_steps": "RMSE (quantization steps)"}[metric])
    ax.legend()
    ax.set_title("Per-layer quantization error")
    return ax


def tensor_errors(model: Any, float_model: Any, images: np.ndarray, spec: InputSpec = InputSpec(),
                  metrics: tuple[str, ...] = ("mse", "cosine_similarity", "snr")):
    """Per-tensor error of a converted model against its float ``.tflite``, from ai-edge-quantizer's validation.

    Works for any model with the float model's tensor names (the AEQ recipes;
    for the TFLite recipes use ``layer_errors``). Each tensor present in both
    models is compared on the same images.

    Args:
        model: the quantized model (``ConvertedModel`` or bytes), e.g. ``convert(m, "aeq-int4-weights")``.
        float_model: the float ``.tflite`` (``ConvertedModel`` of ``float32`` or bytes).
        images: raw uint8 images (a few hundred; about 8 ms each).
        spec: the float range the model was trained on.
        metrics: AEQ's metric names (``aeq.METRICS``).

    Returns:
        A DataFrame, one row per tensor (see ``aeq.validate_per_tensor``).
    """
    from ..core import aeq

    data = checks.images("images", images)
    return aeq.validate_per_tensor(litert.model_bytes(float_model), litert.model_bytes(model),
                                   spec.normalize(data), metrics=metrics)


def plot_tensor_errors(frames: dict[str, Any], metric: str = "mse", kind: str = "intermediate", ax=None):
    """Bars of one metric per tensor of ``kind`` for several ``tensor_errors`` frames (log scale)."""
    from ..core.figures import new_axes

    checks.choice("kind", kind, ("output", "intermediate", "constant", "input"))
    if ax is None:
        ax = new_axes((9, 3.5), layout=None)
    width = 0.8 / max(len(frames), 1)
    names: list[str] = []
    for frame in frames.values():
        names += [n for n in frame[frame.kind == kind].op.astype(str) + ":" + frame[frame.kind == kind].position
                  .astype(str) if n not in names]
    for i, (label, frame) in enumerate(frames.items()):
        if metric not in frame:
            raise ValueError(f"metric={metric!r}; allowed: {[c for c in frame.columns if c not in ('tensor', 'kind')]}")
        rows = frame[frame.kind == kind]
        values = dict(zip(rows.op.astype(str) + ":" + rows.position.astype(str), rows[metric]))
        ax.bar(np.arange(len(names)) + i * width, [values.get(n, np.nan) for n in names], width, label=label)
    ax.set_xticks(np.arange(len(names)) + width * (len(frames) - 1) / 2, names, rotation=30)
    ax.set_yscale("log")
    ax.set_ylabel(f"{metric} ({kind} tensors)")
    ax.legend()
    ax.set_title("Per-tensor error against the float model (ai-edge-quantizer validation)")
    return ax


def debugger_statistics(keras_model: Any, representative: np.ndarray, spec: InputSpec = InputSpec()):
    """The TFLite QuantizationDebugger's per-layer statistics for int8 PTQ of ``keras_model``.

    Args:
        keras_model: a float Keras model.
        representative: raw uint8 images used both to calibrate and to compare.
        spec: the float range the model was trained on.

    Returns:
        A pandas DataFrame, one row per quantized op output, with the debugger's
        columns plus ``rmse/scale``.
    """
    import pandas as pd

    from ..core.keras_compat import tf

    x = spec.normalize(checks.images("representative", representative))

    def dataset():
        for i in range(len(x)):
            yield [x[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    debugger.run()
    frame = pd.DataFrame.from_dict(debugger.layer_statistics, orient="index")
    frame["tensor"] = [name.split("NumericVerify/", 1)[-1].rsplit(":", 1)[0] for name in frame.index]
    frame["rmse/scale"] = np.sqrt(frame["mean_squared_error"]) / _scales(debugger, frame.index)
    return frame.reset_index(drop=True)


def _scales(debugger: Any, names) -> np.ndarray:
    details = {t["name"]: t for t in litert.debugger_interpreter(debugger).get_tensor_details()}
    scales = []
    for name in names:
        idx = int(name.rsplit(":", 1)[-1])
        t = next((d for d in details.values() if d["index"] == idx), None)
        q = (t or {}).get("quantization_parameters", {}).get("scales", ())
        scales.append(float(q[0]) if len(q) else np.nan)
    return np.asarray(scales)


def suggest_float_layers(statistics, keras_model: Any, count: int = 1) -> list[str]:
    """The Keras layers whose outputs have the largest ``rmse/scale`` (candidates to keep float).

    Args:
        statistics: the DataFrame from ``debugger_statistics``.
        keras_model: the model the statistics are for (its layer names).
        count: how many layers to suggest.
    """
    from ..core.keras_compat import is_keras3

    count = checks.number("count", count, low=1, integer=True)
    order = [layer.name for layer in keras_model.layers]
    k3 = is_keras3(keras_model)
    ranked = statistics.sort_values("rmse/scale", ascending=False)
    chosen: list[str] = []
    for tensor in ranked["tensor"]:
        layer = _layer_of(tensor, order, k3)
        if layer and layer not in chosen and any(w.size for w in keras_model.get_layer(layer).get_weights()):
            chosen.append(layer)
        if len(chosen) == count:
            break
    return chosen
