"""A TFLite model's op graph without a browser: a tensor table and a drawing of the op chain.

This is what Netron shows, as data: which op writes each tensor, its dtype,
shape, scale and zero point. It works wherever a notebook does (remote kernels,
static HTML exports), because nothing is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.litert import ModelInfo, TensorInfo, read_model

# One color per dtype, shared by the drawing and its legend.
DTYPE_COLORS = {
    "float32": "#9ecae1", "float16": "#c6dbef", "int8": "#fdae6b", "uint8": "#fb6a4a",
    "int16": "#bcbddc", "int32": "#d9d9d9", "int64": "#bdbdbd", "bool": "#f0f0f0",
}


@dataclass(frozen=True)
class OpNode:
    """One op in execution order and the tensors it reads and writes (tensor indexes)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class OpGraph:
    """The ops of a TFLite model and its tensors by index."""

    ops: tuple[OpNode, ...]
    info: ModelInfo

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_index", {t.index: t for t in self.info.tensors})

    def tensor(self, index: int) -> TensorInfo:
        """The tensor with this index."""
        return self._by_index[index]


def op_graph(model: Any) -> OpGraph:
    """Read the op graph of ``model``.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or the path of a ``.tflite`` file.

    Returns:
        ``OpGraph`` with ops in execution order.

    Raises:
        ValueError: the model is missing, unreadable or not a TFLite flatbuffer.
    """
    info = model.info if hasattr(model, "info") else read_model(model)
    ops = tuple(OpNode(op.index, op.name, op.inputs, op.outputs) for op in info.op_details)
    return OpGraph(ops, info)


def tensor_table(model: Any):
    """One row per tensor: what Netron shows when a tensor is clicked.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or a ``.tflite`` path.

    Returns:
        ``pandas.DataFrame`` with columns ``index, name`` (the first of the
        converter's ``;``-joined names), ``role`` (input, output, activation,
        weight, bias, constant), ``op`` (the op writing it, or for constants the
        op reading it), ``dtype, shape, scale, zero_point`` (per-tensor values;
        NaN / missing when float or per-channel) and ``channels`` (number of
        per-channel scales; 1 per-tensor, 0 unquantized).

    Raises:
        ValueError: see ``op_graph``.
    """
    import pandas as pd

    graph = op_graph(model)
    consumer: dict[int, tuple[str, int]] = {}
    for node in graph.ops:
        for slot, index in enumerate(node.inputs):
            consumer.setdefault(index, (node.op, slot))
    inputs = {io.index for io in graph.info.inputs}
    outputs = {io.index for io in graph.info.outputs}
    rows = []
    for t in sorted(graph.info.tensors, key=lambda t: t.index):
        op, slot = consumer.get(t.index, ("", -1))
        if t.index in inputs:
            role = "input"
        elif t.index in outputs:
            role, op = "output", t.producer
        elif t.producer is not None:
            role, op = "activation", t.producer
        else:
            role = {1: "weight", 2: "bias"}.get(slot, "constant") if op in _WEIGHTED else "constant"
        per_tensor = len(t.scales) == 1 and t.scales[0] != 0.0
        rows.append({
            "index": t.index, "name": t.name.split(";")[0], "role": role, "op": op, "dtype": t.dtype,
            "shape": t.shape, "scale": t.scales[0] if per_tensor else np.nan,
            "zero_point": t.zero_points[0] if per_tensor else pd.NA,
            "channels": len(t.scales) if any(t.scales) else 0,
        })
    table = pd.DataFrame(rows)
    table["zero_point"] = table["zero_point"].astype("Int64")
    return table


def bias_scales(model: Any):
    """Check the integer-kernel rule: ``bias_scale == input_scale * weight_scale`` for each conv / FC op.

    Args:
        model: a quantized ``ConvertedModel``, ``.tflite`` bytes or path.

    Returns:
        ``pandas.DataFrame``: ``op, bias_dtype, input_scale, weight_scale`` (the
        first channel's when per-channel), ``bias_scale`` (same), ``channels`` and
        ``max_rel_error`` of ``bias_scale / (input_scale * weight_scale) - 1`` over
        all channels. Empty when the model has no quantized bias.

    Raises:
        ValueError: see ``op_graph``.
    """
    import pandas as pd

    graph = op_graph(model)
    rows = []
    for node in graph.ops:
        if node.op not in _WEIGHTED or len(node.inputs) < 3 or node.inputs[2] < 0:
            continue
        x, w, b = (graph.tensor(i) for i in node.inputs[:3])
        if not (x.scales and w.scales and b.scales):
            continue
        expected = x.scales[0] * np.asarray(w.scales)
        actual = np.asarray(b.scales)
        rows.append({"op": f"{node.op} #{node.index}", "bias_dtype": b.dtype, "input_scale": x.scales[0],
                     "weight_scale": w.scales[0], "bias_scale": b.scales[0], "channels": len(b.scales),
                     "max_rel_error": float(np.max(np.abs(actual / expected - 1)))})
    return pd.DataFrame(rows, columns=["op", "bias_dtype", "input_scale", "weight_scale", "bias_scale", "channels",
                                       "max_rel_error"])


def plot_op_chain(model: Any, ax=None, title: str | None = None):
    """Draw the ops top to bottom, each box colored by the dtype of the tensor it writes.

    Each box reads ``OP  ->  dtype shape``, with the weight and bias dtypes
    (``w:int8 b:int32``) and the output ``(scale, zero_point)`` when quantized.

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or path.
        ax: matplotlib axes to draw on; a new figure (not registered with pyplot) when ``None``.
        title: axes title; default: the recipe label of a ``ConvertedModel``.

    Returns:
        The matplotlib ``Axes`` drawn on (``ax.figure`` shows it in a notebook).

    Raises:
        ValueError: see ``op_graph``.
    """
    from matplotlib.patches import FancyBboxPatch, Patch

    graph = op_graph(model)
    first = graph.info.inputs[0]
    rows = [("input", first.dtype, first.shape, (first.scale, first.zero_point) if first.quantized else None, "")]
    for node in graph.ops:
        out = graph.tensor(node.outputs[0])
        consts = [graph.tensor(i) for i in node.inputs[1:] if i >= 0 and graph.tensor(i).producer is None
                  and i not in {io.index for io in graph.info.inputs}]
        extra = " ".join(f"{tag}:{t.dtype}{'/ch' if t.per_channel else ''}" for tag, t in zip("wb", consts)
                         ) if node.op in _WEIGHTED else ""
        q = (out.scales[0], out.zero_points[0]) if len(out.scales) == 1 and out.scales[0] else None
        rows.append((node.op, out.dtype, out.shape, q, extra))
    if ax is None:
        from ..core.figures import new_axes

        ax = new_axes((7.5, 0.62 * len(rows) + 0.6), layout=None)
    n = len(rows)
    for i, (op, dtype, shape, q, extra) in enumerate(rows):
        y = n - 1 - i
        ax.add_patch(FancyBboxPatch((0.02, y + 0.12), 0.96, 0.66, boxstyle="square,pad=0.0",
                                    facecolor=DTYPE_COLORS.get(dtype, "white"), edgecolor="#444444", linewidth=0.8))
        ax.text(0.05, y + 0.45, op, va="center", ha="left", fontsize=9, fontweight="bold", family="monospace")
        detail = f"{dtype} {'x'.join(str(s) for s in shape)}"
        if q is not None:
            detail += f"  s={q[0]:.3g} zp={q[1]}"
        ax.text(0.42, y + 0.45, detail + (f"   {extra}" if extra else ""), va="center", ha="left", fontsize=8,
                family="monospace")
        if i:
            ax.annotate("", xy=(0.5, y + 0.78), xytext=(0.5, y + 1.12),
                        arrowprops={"arrowstyle": "->", "color": "#444444", "lw": 0.8})
    used = sorted({r[1] for r in rows} | {e.split(":")[1].split("/")[0] for r in rows for e in r[4].split()})
    ax.legend(handles=[Patch(facecolor=DTYPE_COLORS.get(d, "white"), edgecolor="#444444", label=d) for d in used],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(used), fontsize=8, frameon=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    label = title if title is not None else (model.recipe.label() if hasattr(model, "recipe") else "")
    if label:
        ax.set_title(label, fontsize=10)
    return ax


@dataclass(frozen=True)
class DepthwiseCheck:
    """A Conv2D on a 1-channel input recomputed as a DepthwiseConv2D."""

    layer: str
    in_channels: int
    depth_multiplier: int
    max_abs_difference: float
    max_abs_output: float

    @property
    def equivalent(self) -> bool:
        """Equal up to float rounding."""
        return self.max_abs_difference <= 1e-5 * max(1.0, self.max_abs_output)


def depthwise_equivalence(model: Any, images: np.ndarray, layer: str | None = None,
                          spec: Any = None) -> DepthwiseCheck:
    """Run a Keras ``Conv2D`` layer both as a convolution and as a depthwise convolution with the same kernel.

    With one input channel, a Conv2D with ``k`` filters is exactly a
    DepthwiseConv2D with ``depth_multiplier=k`` (the kernel shape
    ``(h, w, 1, k)`` even reads the same), which is why converters may emit
    ``DEPTHWISE_CONV_2D`` for the first layer of a grayscale model (LeNet's
    ``conv1``, the MobileNet-style net's ``conv0``). On a colour image the first
    Conv2D reads 3 channels and the equivalence does not hold.

    Args:
        model: a Keras model (float or QAT; ``quant_<layer>`` wrappers are unwrapped).
        images: raw uint8 images of the shape the model reads.
        layer: the Conv2D layer's name; default: the model's first Conv2D.
        spec: the ``InputSpec`` that normalizes ``images`` (default ``InputSpec()``).

    Returns:
        ``DepthwiseCheck`` with the largest absolute difference between the two outputs.

    Raises:
        ValueError: no such layer (or no Conv2D at all), not a Conv2D, more than one input
            channel, bad images.
    """
    from ..core import checks
    from ..core.data import InputSpec
    from ..core.keras_compat import tf

    shape = tuple(model.input_shape[1:])
    images = checks.images("images", images, shape=shape if None not in shape else None)
    names = [lyr.name for lyr in model.layers]
    if layer is None:
        convs = [lyr.name for lyr in model.layers if type(getattr(lyr, "layer", lyr)).__name__ == "Conv2D"]
        if not convs:
            raise ValueError(f"model {model.name!r} has no Conv2D layer; allowed: a model with a Conv2D "
                             f"(layers: {names})")
        layer = convs[0].removeprefix("quant_")
    name = layer if layer in names else f"quant_{layer}"
    if name not in names:
        raise ValueError(f"layer={layer!r} is not in the model; allowed: one of {names}")
    wrapper = model.get_layer(name)
    conv = getattr(wrapper, "layer", wrapper)
    if type(conv).__name__ != "Conv2D":
        raise ValueError(f"layer={layer!r} is a {type(conv).__name__}; allowed: a Conv2D layer")
    # The variable itself: a QAT wrapper replaces the inner layer's .kernel by a fake-quantized graph tensor.
    kernel = tf.constant(next(w for w in wrapper.weights if w.name.endswith("kernel:0")).numpy())
    if kernel.shape[2] != 1:
        raise ValueError(f"layer={layer!r} reads {kernel.shape[2]} channels; allowed: a Conv2D on a 1-channel input "
                         "(on several channels a Conv2D sums over them, a DepthwiseConv2D does not)")
    x = (spec or InputSpec()).normalize(images)  # any 1-channel input shows it; the images are one
    strides = (1, *conv.strides, 1)
    padding = conv.padding.upper()
    as_conv = tf.nn.conv2d(x, kernel, strides=strides, padding=padding).numpy()
    as_depthwise = tf.nn.depthwise_conv2d(x, kernel, strides=strides, padding=padding).numpy()
    return DepthwiseCheck(layer=conv.name, in_channels=1, depth_multiplier=int(kernel.shape[3]),
                          max_abs_difference=float(np.max(np.abs(as_conv - as_depthwise))),
                          max_abs_output=float(np.max(np.abs(as_conv))))


_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
