"""Converter and interpreter messages, explained: cause and fix in plain words.

A catalog of known failures keyed by message patterns. ``convert`` and
``evaluate`` pass every failure through ``explain`` and raise
``QuantizationError``, whose text is the explanation with the original
message beneath it. Each entry carries the real messages it was written for
(``examples``, from TF 2.21 / LiteRT runs or the TOCO-era forum threads), and
the tests check that each one is recognised by its own entry. A title with ``{op}`` names the op and node
LiteRT could not prepare, read off the message (``at_op``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from . import checks


@dataclass(frozen=True)
class Entry:
    """One known failure: how to recognise it, why it happens, what to do."""

    key: str
    title: str
    patterns: tuple[str, ...]  # regular expressions, searched case-insensitively
    cause: str
    fix: str
    examples: tuple[str, ...] = ()  # real messages this entry was written for (tested)

    def matches(self, message: str) -> bool:
        return any(re.search(p, message, re.IGNORECASE | re.DOTALL) for p in self.patterns)


@dataclass(frozen=True)
class Diagnosis:
    """An explained message: the catalog entry (``None`` if unknown) and the original text."""

    entry: Entry | None
    original: str

    def __str__(self) -> str:
        if self.entry is None:
            return (f"Unrecognised TFLite failure (no explanation in workbench.diagnose yet).\n\n"
                    f"Original message:\n{self.original}")
        e = self.entry
        return f"{e.title}\nCause: {e.cause}\nFix: {e.fix}\n\nOriginal message:\n{self.original}"


class QuantizationError(RuntimeError):
    """A conversion or interpreter failure, explained (see ``.diagnosis``)."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(str(diagnosis))
        self.diagnosis = diagnosis

    @property
    def key(self) -> str | None:
        return self.diagnosis.entry.key if self.diagnosis.entry else None


CATALOG: tuple[Entry, ...] = (
    Entry(
        key="per-channel-on-uint8",
        title="Per-channel weights cannot run in a uint8 model.",
        patterns=(r"input->type == kTfLiteInt8 \|\| input->type == kTfLiteInt16 was not true",
                  r"per-channel weights in a uint8 model"),
        cause=("The model was trained with tfmot's default QAT scheme, which quantizes Conv2D weights per "
               "output channel. TFLite's per-channel kernels exist only for int8 (and int16) tensors; the "
               "legacy uint8 path converts the model but the CONV_2D kernel refuses it when it is prepared."),
        fix=("Either convert to int8 with the TF2 converter (recipe 'qat-int8'), or train with a per-tensor "
             "scheme for the uint8 path (QatConfig(scheme='uint8-legacy'))."),
        examples=("tflite/kernels/conv.cc:363 input->type == kTfLiteInt8 || input->type == kTfLiteInt16 was "
                  "not true.Node number 0 (CONV_2D) failed to prepare.",
                  "tflite/kernels/kernel_util.cc:240 input->type == kTfLiteInt8 || input->type == kTfLiteInt16 was "
                  "not true.Node number 0 (CONV_2D) failed to prepare.\n(per-channel weights in a uint8 model)"),
    ),
    Entry(
        key="no-quantized-kernel",
        title="An op has no kernel for the quantized type.",
        patterns=(r"Type (U?INT8|INT16) is unsupported by op", r"quantized form is not yet implemented",
                  r"Quantization not yet supported for op", r"Unsupported (input|data) type.*(uint8|int8)"),
        cause=("Not every TFLite op has a uint8 (or int8) kernel. The legacy uint8 path quantizes every op it "
               "has a range for (default_ranges gives all of them one), and an op without a uint8 kernel "
               "(RSQRT, the heart of an instance norm, CAST, ...) then fails when the interpreter prepares it. "
               "TOCO refused such graphs at conversion ('not yet implemented')."),
        fix=("Convert with the TF2 converter to int8 (recipe 'int8-ptq' or 'qat-int8'): it has int8 kernels "
             "for MEAN, SQUARED_DIFFERENCE, RSQRT and MUL and keeps ops it cannot quantize (CAST) in float "
             "with QUANTIZE/DEQUANTIZE around them; or keep the block float (keep_float=...); or rewrite the "
             "model without the op."),
        examples=("tflite/kernels/elementwise.cc:146 Type UINT8 is unsupported by op Rsqrt.Node number 6 "
                  "(RSQRT) failed to prepare.",
                  "Unimplemented: this graph contains an operator of type Cast for which the quantized form is "
                  "not yet implemented. Sorry, and patches welcome",
                  "Unimplemented: this graph contains an operator of type SquaredDifference for which the "
                  "quantized form is not yet implemented."),
    ),
    Entry(
        key="lacking-min-max",
        title="Some tensors have no quantization range (min/max).",
        patterns=(r"lacking min/?max data", r"missing min/?max", r"has no min/max",
                  r"(lacks|does not have) MinMax information"),
        cause=("A fully quantized model needs a (min, max) range for every activation. QAT records them "
               "with fake-quant nodes; a float model has none, so the uint8 converter stops or falls back."),
        fix=("Train with QAT (train_qat) so every layer learns its range, or give default_ranges=(min, max) "
             "to fill the gaps (costs accuracy, see notebook 05), or use int8 PTQ with a representative set."),
        examples=("Array conv0_bn/FusedBatchNorm, which is an input to the Relu operator producing the output "
                  "array cell_stem_0/Relu, is lacking min/max data, which is necessary for quantization.",
                  "prediction does not have MinMax information, and is not a constant array. Cannot proceed "
                  "with quantization."),
    ),
    Entry(
        key="came-out-float",
        title="The uint8 conversion came out float.",
        patterns=(r"came out float",),
        cause=("The legacy converter was asked for uint8 but the model has no min/max ranges for its "
               "activations and no default_ranges were given; instead of failing it silently emits a "
               "float32 model."),
        fix="Use a QAT model, or pass default_ranges=(min, max) (e.g. (0, 6) for ReLU6-like activations).",
        examples=("came out float: uint8 was asked for but 10 of 11 activation tensors are float32",),
    ),
    Entry(
        key="stats-ignored",
        title="The mean/std you passed were ignored.",
        patterns=(r"mean/std.*ignored",),
        cause=("The QAT model learned its own input range (tfmot's input QuantizeLayer). The converter "
               "takes the input quantization from that learned range and ignores quantized_input_stats."),
        fix=("Feed bytes the way the effective stats say, or train with QatConfig(scheme='uint8-legacy') "
             "without a learned input range so the stats define the input quantization."),
        examples=("mean/std ignored: asked for mean=0, std=1 but the model reads its input with mean=0, "
                  "std=255",),
    ),
    Entry(
        key="dynamic-shape",
        title="The input has a dynamic size beyond the batch dimension.",
        patterns=(r"None is only supported in the 1st dimension", r"dynamic input shape",
                  r"failed to reshape runtime"),
        cause=("The model was exported with None for height/width. TOCO refused that outright; today's "
               "converter accepts it, but the interpreter then starts with a 1x1 image, and the kernels "
               "cannot be prepared until a real size is set."),
        fix=("Fix the input to your images' height, width and channels (H, W, C) before converting: "
             "workbench.fixed_input(model, (H, W, C)) gives a copy with keras.Input((H, W, C)) and the same "
             "weights (a SavedModel is re-exported at that shape); report and evaluate do it from --data, or "
             "from --input_shapes N,H,W,C. At run time, interpreter.resize_tensor_input(index, [1, H, W, C]) "
             "before allocate_tensors() also works."),
        examples=("ValueError: None is only supported in the 1st dimension. Tensor 'input' has invalid shape "
                  "'[1, None, None, 3]'.",
                  "XNNPack delegate failed to reshape runtimeNode number 5 (TfLiteXNNPackDelegate) failed to "
                  "prepare."),
    ),
    Entry(
        key="input-shape-mismatch",
        title="The input shape given does not match the graph's input.",
        patterns=(r"The shape of tensor '[^']*' cannot be changed from",),
        cause=("A frozen graph's input placeholder has a fixed shape (its height, width, channels and often a "
               "batch of 1). --input_shapes (input_shapes=) may fill in unknown dimensions but cannot change "
               "known ones."),
        fix=("Give the shape the graph was built for, e.g. the placeholder's own (load_source without "
             "input_shapes reads it), or re-export the model for the new shape."),
        examples=("ValueError: The shape of tensor 'image' cannot be changed from (1, 8, 8, 1) to [1, 28, 28, 1]. "
                  "Dimension 1 in both shapes must be equal, but are 8 and 28.",),
    ),
    Entry(
        key="unknown-array",
        title="An input or output array name is not in the graph.",
        patterns=(r"Invalid tensors '[^']*' were found",),
        cause=("--input_arrays / --output_arrays (input_arrays=, output_arrays=) name tensors of the frozen "
               "GraphDef; a name that no node has (a typo, a ':0' suffix, a scope prefix) matches nothing."),
        fix=("Use the node names of the graph: the input is usually a Placeholder, the output the last "
             "Identity or Softmax; load_source(path, input_arrays=..., output_arrays=...) checks them and "
             "lists the candidates, and Netron (wb.viewer.show) shows every node's name."),
        examples=("ValueError: Invalid tensors 'foo' were found.",),
    ),
    Entry(
        key="lstm-dynamic-batch",
        title="The LSTM cannot be converted with a dynamic batch size.",
        patterns=(r"TensorListReserve.*element_shape to be static", r"failed to legalize operation 'tf\.TensorList"),
        cause=("A Keras LSTM runs as a TensorFlow while-loop over a TensorList; with an unknown batch size "
               "the converter cannot give the list a static element shape, so it cannot turn the loop into "
               "TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM."),
        fix=("Build the inference model with a fixed batch (keras.Input(shape, batch_size=1)), copy the "
             "weights, and convert that; it becomes one fused LSTM op."),
        examples=("'tf.TensorListReserve' op requires element_shape to be static during TF Lite "
                  "transformation pass",),
    ),
    Entry(
        key="legacy-lstm",
        title="The legacy uint8 converter cannot quantize an LSTM.",
        patterns=(r"cannot duplicate the value since it's not constant",),
        cause=("The TOCO-era uint8 path predates TFLite's integer LSTM; its quantizer meets the LSTM's "
               "state tensors (variables, not constants) and gives up."),
        fix=("Use dynamic-range quantization (recipe 'dynamic-range') or int8 post-training quantization "
             "('int8-ptq', which has an integer LSTM kernel) instead."),
        examples=("error: We cannot duplicate the value since it's not constant.",),
    ),
    Entry(
        key="int16x8-lstm",
        title="The int16x8 recipe has no kernel for this op (an LSTM among them).",
        patterns=(r"Quantization to 16x8-bit not yet supported for op",),
        cause=("16-bit activations with 8-bit weights exist for a subset of TFLite's ops only. The fused "
               "UNIDIRECTIONAL_SEQUENCE_LSTM has an integer kernel with int8 activations (its cell state in "
               "int16) but none for 16x8, and the converter stops at the first op it cannot quantize that way."),
        fix=("Convert the model with int8-ptq (the integer LSTM kernel, calibrated on a few hundred input "
             "sequences), or with dynamic-range or float16. Letting the 16x8 conversion fall back to float "
             "(TFLITE_BUILTINS beside the 16x8 ops) is no way out for an LSTM: see 'lstm-lost-state'."),
        examples=("RuntimeError: Quantization to 16x8-bit not yet supported for op: "
                  "'UNIDIRECTIONAL_SEQUENCE_LSTM'.",),
    ),
    Entry(
        key="lstm-lost-state",
        title="The fused LSTM has no state tensor to write to.",
        patterns=(r"unidirectional_sequence_lstm\.cc:\d+ output_state != nullptr was not true",),
        cause=("A fused LSTM keeps its hidden and cell state in variable tensors of the model. The int16x8 "
               "conversion with a float fallback (TFLITE_BUILTINS beside the 16x8 ops) leaves the LSTM in float "
               "but writes it without those variable tensors, so the kernel refuses when it is prepared."),
        fix=("Do not convert an LSTM with 16x8 activations: use int8-ptq (integer LSTM), dynamic-range or "
             "float16, or keep the whole model float."),
        examples=("tflite/kernels/unidirectional_sequence_lstm.cc:971 output_state != nullptr was not true.Node "
                  "number 1 (UNIDIRECTIONAL_SEQUENCE_LSTM) failed to prepare.",),
    ),
    Entry(
        key="int16-activation-clamp-overflow",
        title="The int16 output steps of {op} are too fine for its fused ReLU6: the activations there are nearly zero.",
        patterns=(r"no_integer_overflow_from_quantization was not true",),
        cause=("int16x8 gives each activation tensor a symmetric int16 scale: its largest calibrated |value| / 32767. "
               "When an op fuses a ReLU6 (CONV_2D, DEPTHWISE_CONV_2D, ...), the kernel writes the clamp 6.0 in "
               "those steps, 6 / scale, and refuses to prepare the op when that passes the int32 limit, i.e. when "
               "its outputs never exceed about 9e-5 on the calibration data. Activations that small are an untrained "
               "or badly scaled model's (measured: Keras' MobileNetV2 with weights=None shrinks them block after "
               "block, to 1e-5 at block_4's depthwise conv, 6 / scale = 2e10), or a layer that is nearly always zero. "
               "int8-ptq gets through because its converter widens every range to at least about 2e-6, but integer "
               "outputs of activations that small are noise: read its SNR."),
        fix=("Quantize the trained model, calibrated on real inputs (measured: the same MobileNetV2 with its "
             "BatchNorm statistics measured on 32 images converts with int16x8 and runs at 24 dB SNR against the "
             "float model). Keeping that one op float does not help when the ops after it are as small; until the "
             "model is trained, use float16 or dynamic-range (activations stay float)."),
        examples=("tflite/kernels/kernel_util.cc:349 no_integer_overflow_from_quantization was not true.Node number "
                  "15 (DEPTHWISE_CONV_2D) failed to prepare.",),
    ),
    Entry(
        key="qat-recurrent",
        title="tfmot has no QAT for recurrent layers (LSTM, GRU, RNN).",
        patterns=(r"Layer \w+:<class '[\w.]*\.(LSTM|GRU|SimpleRNN|RNN|Bidirectional)'> is not supported",),
        cause=("tfmot's default 8-bit scheme lists no recurrent cell (its LSTMCell and GRUCell entries are "
               "commented out, unverified), so quantize_model refuses the model at its LSTM layer before any "
               "training; there is no QAT model to convert with qat-int8."),
        fix=("Quantize after training instead: int8-ptq gives TFLite's integer LSTM kernel (calibrate it on a "
             "few hundred float input sequences), dynamic-range keeps activations float; or annotate only the "
             "other layers for QAT (quantize_annotate_layer) and convert with int8-ptq."),
        examples=("Layer lstm:<class 'tf_keras.src.layers.rnn.lstm.LSTM'> is not supported. You can quantize this "
                  "layer by passing a `tfmot.quantization.keras.QuantizeConfig` instance to the "
                  "`quantize_annotate_layer` API.",),
    ),
    Entry(
        key="qat-activation",
        title="tfmot cannot quantize this activation given as a layer's argument (e.g. activation='relu6').",
        patterns=(r"Only some Keras activations under `?keras\.activations`? are supported",),
        cause=("tfmot's QAT wraps the activation a Conv2D or Dense takes as an argument only for relu, linear, "
               "softmax, sigmoid, tanh, swish and gelu; any other ('relu6', 'elu', 'hard_sigmoid', a function of "
               "your own) stops quantize_model before any training. An SSD head or extra layer written as "
               "Conv2D(..., activation='relu6') meets it."),
        fix=("Give the layer no activation and put the activation in its own layer after it: keras.layers.ReLU(6.0) "
             "for 'relu6' (tfmot folds Conv -> ReLU as TFLite fuses it). Measured on a MobileNet v1 SSD head: with "
             "ReLU(6.0) layers quantize_model wraps it and qat-int8 converts and runs. Or skip QAT: int8-ptq "
             "quantizes the model as it is."),
        examples=("ValueError: Only some Keras activations under `keras.activations` are supported. For other "
                  "activations, use `Quantizer` directly, and update layer config using `QuantizeConfig`.",),
    ),
    Entry(
        key="low-bit-qat",
        title="The converter's integer passes met an op whose input and output types disagree.",
        patterns=(r"op failed to verify that input and output must have same element type",
                  r"num_bits.*(must be|not supported)"),
        cause=("Two common ways in: (1) a QAT model with fewer than 8 bits: fake-quant at 2..7 bits is simulated "
               "in training only, TFLite's integer kernels are 8-bit, and the int8 passes do not accept the n-bit "
               "ranges; (2) the int16x8 recipe on a QAT model (its fake-quant ranges are int8) or on ops without "
               "int16 kernels. The converter stops at the first op whose input and output types differ."),
        fix=("For (1) train with bits=8 for deployment (lower bits can only be studied in simulation, the Keras "
             "model's accuracy); for (2) convert the QAT model with qat-int8, or run int16x8 on the float model."),
        examples=("'tfl.softmax' op failed to verify that input and output must have same element type",),
    ),
    Entry(
        key="qat-layer-unsupported",
        title="tfmot cannot quantize this layer in this position.",
        patterns=(r"^(?!.*(LSTM|GRU|RNN|Bidirectional)'>).*is not supported\. You can quantize this layer by "
                  r"passing a `?tfmot",),  # a recurrent layer: 'qat-recurrent'
        cause=("tfmot quantizes BatchNormalization only where it folds into the conv before it "
               "(Conv -> BN -> ReLU). A BN after the ReLU (or on its own) has no QAT recipe; nor has a layer "
               "outside tfmot's default scheme, such as a Rescaling that adds constants (a detector decoding "
               "its anchors) or a custom layer."),
        fix=("Put BN between the conv and its activation (Conv -> BN -> ReLU), or annotate only the other "
             "layers for QAT, or use int8 post-training quantization (the BN becomes MUL and ADD; int8-ptq "
             "quantizes a Rescaling's MUL and ADD too)."),
        examples=("Layer bn1:<class 'tf_keras.src.layers.normalization.batch_normalization."
                  "BatchNormalization'> is not supported. You can quantize this layer by passing a "
                  "`tfmot.quantization.keras.QuantizeConfig` instance to the `quantize_annotate_layer` API.",
                  "Layer box_decode:<class 'tf_keras.src.layers.preprocessing.image_preprocessing.Rescaling'> is "
                  "not supported. You can quantize this layer by passing a `tfmot.quantization.keras.QuantizeConfig` "
                  "instance to the `quantize_annotate_layer` API."),
    ),
    Entry(
        key="input-type",
        title="The input array has the wrong dtype for this model.",
        patterns=(r"Got value of type \w+ but expected type \w+ for input",),
        cause=("A quantized model's input tensor is uint8 (legacy path) or int8 (integer I/O); it does not "
               "convert floats for you."),
        fix=("Feed raw uint8 pixels to a uint8 model (its mean/std decide how they are read), or quantize "
             "with the input's scale and zero point for int8: q = round(x / scale + zero_point)."),
        examples=("Cannot set tensor: Got value of type FLOAT32 but expected type UINT8 for input 0, name: "
                  "serving_default_image ",),
    ),
    Entry(
        key="input-stats-required",
        title="A uint8 conversion needs the input mean/std.",
        patterns=(r"quantized_input_stats.*must be defined", r"std_dev and mean must be defined",
                  r"mean_values?.*std.*required"),
        cause=("With inference_type uint8 the converter must know how input bytes map to real values: "
               "real = (byte - mean) / std."),
        fix=("Pass mean/std for the range the model was trained on: [0,1] -> (0, 255), [-1,1] -> "
             "(127.5, 127.5), [0,255] -> (0, 1) (workbench.stats_for_range)."),
        examples=("The `quantized_input_stats` flag must be defined when either `inference_type` flag or "
                  "`inference_input_type` flag is set to tf.int8 or tf.uint8.",),
    ),
    Entry(
        key="representative-required",
        title="Full integer quantization needs a representative data set.",
        patterns=(r"representative_dataset.*(must|required)", r"requires a representative dataset"),
        cause="Post-training integer quantization measures activation ranges by running sample inputs.",
        fix="Pass representative=<a few hundred training images> (convert(..., 'int8-ptq', representative=x)).",
        examples=("For full integer quantization, a `representative_dataset` must be specified.",),
    ),
    Entry(
        key="unsupported-tf-op",
        title="The graph uses a TensorFlow op that TFLite does not have.",
        patterns=(r"neither a custom op nor a flex op", r"Some ops are not supported by the native TFLite",
                  r"Converting unsupported operation"),
        cause="TFLite implements a subset of TensorFlow ops; this one has no builtin TFLite kernel.",
        fix=("Rewrite that part with supported ops, or allow Select TF ops "
             "(target_spec.supported_ops += [SELECT_TF_OPS]) at the cost of a bigger runtime; "
             "preprocessing (decoding, spectrograms) is better done outside the model."),
        examples=("Converting unsupported operation: DecodeWav",
                  "'tf.Foo' op is neither a custom op nor a flex op"),
    ),
    Entry(
        key="not-a-tflite-file",
        title="The file is not a TFLite model.",
        patterns=(r"not a valid flatbuffer model", r"not a TFLite flatbuffer", r"Model provided has model identifier"),
        cause=("A frozen GraphDef (.pb) or SavedModel was passed where a .tflite flatbuffer is expected; "
               "only the converter's output can be loaded by the interpreter."),
        fix="Convert first (workbench.convert) and load the .tflite bytes it returns (ConvertedModel.save).",
        examples=("java.lang.IllegalArgumentException: ByteBuffer is not a valid flatbuffer model",),
    ),
    Entry(
        key="op-version",
        title="The runtime has no kernel for this op version: the model is newer than the runtime.",
        patterns=(r"Didn't find op for builtin opcode",),
        cause=("Every op in a .tflite carries a version, raised whenever the converter starts using a new "
               "feature of the op (a new type, a new option). A runtime older than the converter that wrote the "
               "model has no kernel for that version, and loading the model stops ('Registration failed')."),
        fix=("Run the model with a runtime at least as new as the converter (ai-edge-litert, or the app's TFLite "
             "library, from the same release as the TensorFlow that converted it), or convert with the "
             "TensorFlow that matches the deployed runtime; the message names the op and the version missing."),
        examples=("Didn't find op for builtin opcode 'CONV_2D' version '5'. An older version of this builtin might "
                  "be supported. Are you using an old TFLite binary with a newer model?\nRegistration failed.",),
    ),
    Entry(
        key="rank-limit",
        title="A tensor has more dimensions than the kernel supports.",
        patterns=(r"only supports 1D-4D input", r"(dimensions|rank) (must be|should be) (<=|at most)"),
        cause="Some TFLite kernels (TRANSPOSE in older runtimes, several others) accept at most 4-D tensors.",
        fix=("Reshape so the op works on 4-D tensors (merge dimensions before it, split after), or rewrite "
             "the layer; use Netron to find the node number in the message."),
        examples=("Transpose op only supports 1D-4D input arrays.Node number 11 (TRANSPOSE) failed to prepare.",),
    ),
)


# How LiteRT names the op it could not prepare: "Node number 15 (DEPTHWISE_CONV_2D) failed to prepare."
_NODE = re.compile(r"Node number (\d+) \((\w+)\) failed to prepare")


def explain(message: str) -> Diagnosis:
    """Match ``message`` against the catalog; the first matching entry wins (a ``{op}`` in its title names the op
    the message names, see ``at_op``)."""
    text = str(message)
    for entry in CATALOG:
        if entry.matches(text):
            return Diagnosis(at_op(entry, text), text)
    return Diagnosis(None, text)


def at_op(entry: Entry, message: str = "") -> Entry:
    """``entry`` with the ``{op}`` of its title filled from ``message``: ``DEPTHWISE_CONV_2D (node 15)`` for
    LiteRT's "Node number 15 (DEPTHWISE_CONV_2D) failed to prepare", else "an op"."""
    if "{op}" not in entry.title:
        return entry
    found = _NODE.search(message)
    return replace(entry, title=entry.title.replace("{op}", f"{found[2]} (node {found[1]})" if found else "an op"))


def entry(key: str) -> Entry:
    """The catalog entry named ``key``."""
    return checks.keyed("key", key, CATALOG, "in the catalog")


def catalog_rows() -> list[dict[str, str]]:
    """The catalog as plain rows (key, title, cause, fix) for a table."""
    return [{"key": e.key, "title": at_op(e).title, "cause": e.cause, "fix": e.fix} for e in CATALOG]


def explain_error(error: BaseException) -> QuantizationError:
    """Wrap any exception raised by TensorFlow, tfmot or LiteRT in an explained ``QuantizationError``.

    Args:
        error: the exception (a ``QuantizationError`` is returned unchanged).

    Returns:
        ``QuantizationError`` whose message is the explanation above the original text.
    """
    if isinstance(error, QuantizationError):
        return error
    return QuantizationError(explain(f"{type(error).__name__}: {error}"))
