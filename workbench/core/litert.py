"""The one door to LiteRT: reading a ``.tflite`` (ops, tensors, quantization, I/O) and running it.

Everything else in the workbench inspects and runs TFLite models through this
module, so the interpreter's private corners (``_get_ops_details``, the
QuantizationDebugger's interpreter) and the (de)quantization rules live in one
place:

* how data are fed to each input and outputs dequantized is ``feeding``'s (uint8 images, float
  arrays of any shape, several inputs); ``run`` applies it, batched, and returns every output.

Corrupt bytes are a ``ValueError`` before LiteRT sees them, not a crash.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, diagnose, progress
from .data import InputSpec
from .feeding import check_arrays, dequantize, prepare_input  # noqa: F401 - the feeding rules, used here and by callers

# Measured on LeNet: batches of a few hundred images keep the activations in
# cache and beat both one huge batch and one image per invoke.
DEFAULT_BATCH = 256
# A batch is also held to BATCH_BYTES of the model's largest activation tensor (the interpreter's memory grows with
# the batch: MobileNetV2 at 224x224 holds about 7 MB per image): 256 LeNet images, 13 MobileNetV2 ones at 224x224.
BATCH_BYTES = 64 * 2**20
MAX_THREADS = 64  # LiteRT's thread pool is created eagerly: huge counts crash the process


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a TFLite model."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    producer: str | None  # the op that writes it; None for constants and model inputs

    @property
    def is_activation(self) -> bool:
        """Written by an op at run time (as opposed to a weight, bias or model input)."""
        return self.producer is not None

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def quantized(self) -> bool:
        return bool(self.scales)


@dataclass(frozen=True)
class IoInfo:
    """A model input or output: dtype, shape and (scale, zero_point) (``(0.0, 0)`` when float)."""

    name: str
    index: int
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


@dataclass(frozen=True)
class OpInfo:
    """One op in execution order: its builtin name and the tensor indices it reads and writes."""

    index: int
    name: str  # e.g. "CONV_2D"
    inputs: tuple[int, ...]  # -1 marks an optional input left out
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """The structure of one TFLite model."""

    inputs: tuple[IoInfo, ...]
    outputs: tuple[IoInfo, ...]
    tensors: tuple[TensorInfo, ...]
    op_details: tuple[OpInfo, ...] = field(repr=False)

    @property
    def ops(self) -> tuple[str, ...]:
        """Op names in execution order, e.g. ``("CONV_2D", "MAX_POOL_2D", ...)``."""
        return tuple(op.name for op in self.op_details)

    def dtype_counts(self, activations_only: bool = False) -> dict[str, int]:
        """How many tensors of each dtype (optionally only activations)."""
        return dict(Counter(t.dtype for t in self.tensors if t.is_activation or not activations_only))

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(self.ops))

    def tensor(self, index: int) -> TensorInfo:
        """The tensor with this index."""
        return next(t for t in self.tensors if t.index == index)


def model_bytes(model: Any) -> bytes:
    """The ``.tflite`` bytes of a ``ConvertedModel``, a path, or bytes."""
    if hasattr(model, "tflite"):
        return model.tflite
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model={str(path)!r} does not exist; allowed: a .tflite file path, "
                             "its bytes, or a ConvertedModel")
        return path.read_bytes()
    raise ValueError(f"model={type(model).__name__}; allowed: a ConvertedModel, .tflite bytes or a path")


def check_identifier(head: bytes, subject: str = "model bytes are") -> None:
    """Raise ``ValueError`` (``"<subject> not a TFLite flatbuffer ..."``) unless ``head`` (a model's first bytes,
    8 are enough) carries the TFLite flatbuffer identifier ``TFL3`` at byte 4."""
    if len(head) < 8 or bytes(head[4:8]) != b"TFL3":
        raise ValueError(f"{subject} not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                         "allowed: the bytes of a .tflite file written by the converter")


def interpreter(model_bytes: bytes, num_threads: int | None = None, keep_tensors: bool = False,
                reference_kernels: bool = False):
    """A LiteRT interpreter on ``model_bytes`` (``ValueError`` if they are not a TFLite model).

    Args:
        model_bytes: the flatbuffer.
        num_threads: interpreter threads (``None``: LiteRT's default).
        keep_tensors: keep every intermediate tensor readable after ``invoke``.
        reference_kernels: the builtin reference kernels only (no XNNPack), as the
            per-layer error and the QuantizationDebugger use.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if not isinstance(model_bytes, (bytes, bytearray)) or len(model_bytes) < 8:
        raise ValueError(f"model bytes of length {len(model_bytes) if model_bytes is not None else 0} "
                         "are not a TFLite flatbuffer; allowed: the bytes of a .tflite file")
    check_identifier(model_bytes)
    if num_threads is not None:  # LiteRT crashes the process on absurd counts; a negative one reads as a model error
        num_threads = checks.number("num_threads", num_threads, low=1, high=MAX_THREADS, integer=True)
    kwargs = {}
    if reference_kernels:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads,
                             experimental_preserve_all_tensors=keep_tensors, **kwargs)
    except (ValueError, RuntimeError, UnicodeDecodeError) as err:
        known = diagnose.explain(f"{type(err).__name__}: {err}")
        if known.entry is not None:  # a readable model this runtime refuses (e.g. an op version it lacks)
            raise diagnose.QuantizationError(known) from None
        raise ValueError(f"model bytes could not be read as a TFLite model ({type(err).__name__}: {str(err)[:200]}); "
                         "allowed: the bytes of a valid .tflite file") from None
    from . import native_log

    if not reference_kernels and not native_log.done("litert-allocation"):
        # LiteRT announces its XNNPack delegate once per process, at the first allocation that creates it.
        allocate = interp.allocate_tensors

        def allocate_tensors():
            with native_log.native_stderr():
                result = allocate()
            native_log.mark_done("litert-allocation")
            return result

        interp.allocate_tensors = allocate_tensors
    return interp


def op_versions(model: Any) -> tuple[tuple[str, int], ...]:
    """``(op name, version)`` of each operator code a ``.tflite`` declares."""
    tree, name = _tree(model)
    return tuple((name(oc), int(oc.version)) for oc in tree.operatorCodes)


def with_op_version(model: Any, op: str, version: int) -> bytes:
    """A copy of a ``.tflite`` whose ``op`` (e.g. ``"CONV_2D"``) claims operator version ``version``: what a model
    from a newer converter looks like to an older runtime (the same graph, an op version it has no kernel for).
    Raises ValueError: ``op`` is not in the model, ``version`` is not a whole number >= 1."""
    version = checks.number("version", version, low=1, high=2**31 - 1, integer=True)
    tree, name = _tree(model)
    found = [oc for oc in tree.operatorCodes if name(oc) == op]
    if not found:
        present = sorted({name(oc) for oc in tree.operatorCodes})
        raise ValueError(f"op={op!r} is not in the model; allowed: {', '.join(present)}")
    for oc in found:
        oc.version = version
    return _packed(tree)


def _tree(model: Any) -> tuple[Any, Any]:
    """A ``.tflite`` as the schema's object tree (``ModelT``; ``_packed`` writes it) and the name of an operator code
    (``"?"``: not a builtin)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    raw = model_bytes(model)
    tree = schema.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    for buffer in [b for b in tree.buffers or () if (b.offset or 0) > 1]:  # data after the flatbuffer: inlined
        data = np.frombuffer(raw, np.uint8, int(buffer.size), int(buffer.offset))
        buffer.data, buffer.offset, buffer.size = data, 0, 0
    return tree, lambda oc: names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "?")


def _packed(tree: Any) -> bytes:
    import flatbuffers

    (builder := flatbuffers.Builder(1024)).Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def disconnected(model: Any) -> tuple[bytes, dict[int, int], dict[int, str]]:
    """A copy of a ``.tflite`` whose ops each run alone, on inputs of one's choosing: ``(tflite, fed, skipped)``. Each
    non-constant tensor an op reads, bar the model's inputs and int32/int64/bool ones (shapes, indices), becomes a
    fresh model input of its type, shape and quantization (``fed``: its index -> the original's); every op output is
    a model output; no signatures. Left out (``skipped``: op -> why): custom ops, control flow, state tensors."""
    from ai_edge_litert import schema_py_generated as schema

    tree, name = _tree(model)
    graph, state = tree.subgraphs[0], (schema.TensorType.RESOURCE, schema.TensorType.VARIANT)
    counts = (schema.TensorType.INT32, schema.TensorType.INT64, schema.TensorType.BOOL)
    tensors, inputs, buffers = graph.tensors, [int(i) for i in graph.inputs], tree.buffers
    kept, fresh, skipped, outputs = [], {}, {}, {}
    for pos, op in enumerate(graph.operators):
        code, ins = tree.operatorCodes[op.opcodeIndex], [int(i) for i in op.inputs] if op.inputs is not None else []
        options = [key for o in (op.builtinOptions, op.builtinOptions2) if o is not None for key in vars(o)]
        why = ("a custom op" if name(code) in ("CUSTOM", "?")
               else "control flow calling other subgraphs" if any("ubgraph" in key for key in options)
               else "reads a variable (state) tensor" if any(tensors[i].isVariable or tensors[i].type in state
                                                             for i in ins if i >= 0) else "")
        if why:
            skipped[pos] = why
            continue
        for j, i in enumerate(ins):
            data = buffers[tensors[i].buffer] if i >= 0 else None
            if i < 0 or i in inputs or (data.data is not None and len(data.data)) or tensors[i].type in counts:
                continue  # shapes and indices: computed by the copy's own ops, as in the model
            if i not in fresh:  # a copy, sharing the original's empty buffer
                fresh[i] = len(tensors)
                tensors.append(copy.copy(tensors[i]))
            op.inputs[j] = fresh[i]
        kept.append(op)
        outputs.update((int(o), None) for o in (op.outputs if op.outputs is not None else ()) if o >= 0)
    graph.operators, graph.outputs, graph.inputs = kept, list(outputs), inputs + list(fresh.values())
    tree.signatureDefs = []
    return _packed(tree), {new: old for old, new in fresh.items()}, skipped


# --- the flatbuffer, read with the schema module LiteRT ships ------------------------------------
# What the interpreter does not say: int4 tensors as int4 (it reports them as int8), whether a tensor has a
# constant buffer, and the byte positions of values that can be rewritten in place.

@dataclass(frozen=True)
class FlatTensor:
    """One tensor of a model's first subgraph, as the flatbuffer declares it."""

    index: int
    name: str
    dtype: str  # the schema's type name, lower case: "float32", "int4", ...
    shape: tuple[int, ...]
    constant: bool  # has a buffer with data
    quantized: bool  # has scales or blockwise quantization details


@dataclass(frozen=True)
class FlatGraph:
    """Tensors and ops (``(op name, input indices, output indices)``, in order) of a model's first subgraph."""

    tensors: tuple[FlatTensor, ...]
    ops: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    def dtype(self, name: str) -> str:
        """The type of tensor ``name`` (``"missing"`` when the model has no tensor of that name)."""
        found = [t for t in self.tensors if t.name == name]
        return found[0].dtype if found else "missing"

    def place(self, name: str) -> tuple[str, int]:
        """The op writing tensor ``name`` (else the first op reading it) and its index; ``("", -1)`` if none."""
        found = [t.index for t in self.tensors if t.name == name]
        if not found:
            return "", -1
        for pos, (kind, _, outs) in enumerate(self.ops):
            if found[0] in outs:
                return kind, pos
        for pos, (kind, ins, _) in enumerate(self.ops):
            if found[0] in ins:
                return kind, pos
        return "", -1


def flat_graph(model: Any) -> FlatGraph:
    """The first subgraph of a ``.tflite`` (``ConvertedModel``, bytes or path), read from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
    builtins = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    root = schema.Model.GetRootAs(model_bytes(model), 0)
    sg = root.Subgraphs(0)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        buf = root.Buffers(t.Buffer()) if t.Buffer() < root.BuffersLength() else None
        constant = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
        q = t.Quantization()
        quantized = q is not None and (q.ScaleLength() > 0 or q.DetailsType() != 0)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(FlatTensor(i, t.Name().decode(), types.get(t.Type(), str(t.Type())), shape, constant,
                                  quantized))
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = root.OperatorCodes(op.OpcodeIndex())
        kind = builtins.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        ops.append((kind, ins, outs))
    return FlatGraph(tuple(tensors), tuple(ops))


@dataclass(frozen=True)
class InputLayerSites:
    """Where a uint8 model keeps its input's quantization and its first op's bias (byte positions)."""

    input_scale: int  # float32
    input_zero_point: int  # int64
    bias_scale: int  # float32
    bias_values: int  # int32 x bias_count
    bias_count: int
    weight_scale: float  # the first op's (per-tensor) weight scale


def input_layer_sites(model: Any) -> InputLayerSites | None:
    """The byte positions of a uint8 input's ``(scale, zero_point)`` and of the bias of the op reading it, or
    ``None`` when the model is not of that form.

    The form: one uint8 model input with one (scale, zero point), read by an op (the first one that reads
    it) whose weight has one scale and whose int32 bias has one scale and a buffer of its own.
    """
    import struct

    buf = model_bytes(model)
    try:
        check_identifier(buf)
    except ValueError:
        return None
    try:
        return _input_layer_sites(buf)
    except (struct.error, IndexError):
        return None


def _input_layer_sites(buf: bytes) -> InputLayerSites | None:
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(buf, 0)
    if root.SubgraphsLength() == 0:
        return None
    graph = root.Subgraphs(0)
    if graph.InputsLength() != 1:
        return None
    first = int(graph.Inputs(0))
    readers = [op for op in (graph.Operators(i) for i in range(graph.OperatorsLength()))
               if op.InputsLength() and first in op.InputsAsNumpy()]
    if not readers:
        return None
    op_inputs = [int(i) for i in readers[0].InputsAsNumpy()]
    if len(op_inputs) < 3 or op_inputs[0] != first or min(op_inputs[1:3]) < 0:
        return None
    input_t, weight_t, bias_t = (graph.Tensors(i) for i in op_inputs[:3])
    if input_t.Type() != schema.TensorType.UINT8 or bias_t.Type() != schema.TensorType.INT32:
        return None
    (in_scale, in_zp), (w_scale, _), (b_scale, _) = (_quant_sites(t) for t in (input_t, weight_t, bias_t))
    if None in (in_scale, in_zp, w_scale, b_scale):
        return None
    # a bias buffer shared with another tensor cannot be rewritten for this one alone
    buffer_index = bias_t.Buffer()
    if sum(graph.Tensors(i).Buffer() == buffer_index for i in range(graph.TensorsLength())) != 1:
        return None
    data, size = _vector_site(root.Buffers(buffer_index), 0)
    if size == 0 or size % 4:
        return None
    return InputLayerSites(in_scale, in_zp, b_scale, data, size // 4, float(weight_t.Quantization().Scale(0)))


def _vector_site(table: Any, field_index: int) -> tuple[int, int]:
    """``(byte position of the first element, length)`` of a vector field of a schema table (``(0, 0)`` if absent)."""
    tab = table._tab  # noqa: SLF001 - the generated classes give values, not their positions
    offset = tab.Offset(4 + 2 * field_index)
    return (tab.Vector(offset), tab.VectorLen(offset)) if offset else (0, 0)


def _quant_sites(tensor: Any) -> tuple[int | None, int | None]:
    """Positions of a tensor's single scale (float32) and zero point (int64); ``None`` if not exactly one."""
    quant = tensor.Quantization()
    if quant is None:
        return None, None
    scale, n_scale = _vector_site(quant, 2)  # QuantizationParameters: min, max, scale, zero_point
    zero, n_zero = _vector_site(quant, 3)
    return (scale if n_scale == 1 else None), (zero if n_zero == 1 else None)


def op_details(interp: Any) -> tuple[OpInfo, ...]:
    """The ops of an interpreter's model, in execution order.

    LiteRT lists ops only through the private ``_get_ops_details``; read it
    before ``allocate_tensors`` (delegates may rename ops afterwards).
    """
    return tuple(OpInfo(int(d["index"]), d["op_name"], tuple(int(i) for i in d["inputs"]),
                        tuple(int(o) for o in d["outputs"]))
                 for d in interp._get_ops_details())  # noqa: SLF001 - the only API listing ops


def read_model(model: Any) -> ModelInfo:
    """Inspect a TFLite model (``ConvertedModel``, bytes or path) without running it.

    Raises:
        ValueError: the bytes are not a readable TFLite model (also when the flatbuffer
            passes LiteRT's verifier but holds names or types that cannot be decoded).
    """
    interp = interpreter(model_bytes(model))
    try:
        return _info(interp)
    except (UnicodeDecodeError, KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"model bytes could not be read as a TFLite model ({type(err).__name__} while listing "
                         "its tensors); allowed: the bytes of a valid .tflite file") from None


def _info(interp: Any) -> ModelInfo:
    ops = op_details(interp)
    producer = {out: op.name for op in ops for out in op.outputs}
    tensors = []
    for t in interp.get_tensor_details():
        q = t.get("quantization_parameters", {})
        tensors.append(TensorInfo(
            index=int(t["index"]), name=t["name"], dtype=np.dtype(t["dtype"]).name,
            shape=tuple(int(s) for s in t["shape"]),
            scales=tuple(float(s) for s in q.get("scales", ())),
            zero_points=tuple(int(z) for z in q.get("zero_points", ())),
            quantized_dimension=int(q.get("quantized_dimension", 0)),
            producer=producer.get(int(t["index"]))))
    return ModelInfo(
        inputs=tuple(_io(d) for d in interp.get_input_details()),
        outputs=tuple(_io(d) for d in interp.get_output_details()),
        tensors=tuple(tensors),
        op_details=ops,
    )


def _io(detail: dict) -> IoInfo:
    scale, zp = detail.get("quantization", (0.0, 0))
    return IoInfo(name=detail["name"], index=int(detail["index"]), dtype=np.dtype(detail["dtype"]).name,
                  shape=tuple(int(s) for s in detail["shape"]), scale=float(scale), zero_point=int(zp))


@dataclass(frozen=True, eq=False)
class Run:
    """What one run of a model gave: ``outputs`` are the first output, dequantized, one row per input; ``raw`` the
    same values as the model wrote them. ``all_outputs`` every output, dequantized, in its own shape (batch first),
    named by ``output_names`` (the signature's output keys where the model has a signature, else the tensor names).
    ``tensor(index)`` reads any tensor of the last batch (all inputs when ``keep_tensors=True``: one batch)."""

    outputs: np.ndarray = field(repr=False)
    raw: np.ndarray = field(repr=False)
    interp: Any = field(repr=False)
    all_outputs: tuple[np.ndarray, ...] = field(default=(), repr=False)
    output_names: tuple[str, ...] = ()

    def tensor(self, index: int) -> np.ndarray:
        return self.interp.get_tensor(index)


# Ops that keep state in variable tensors between invokes (a fused LSTM's cell and output state).
_STATEFUL = ("LSTM", "RNN", "GRU", "VARIABLE", "VAR_HANDLE")


def output_names(interp: Any) -> tuple[str, ...]:
    """The names of a model's outputs, in ``get_output_details`` order: the signature's output keys (what the
    Keras model or SavedModel called them; the same for every conversion of one source) where the model has one
    signature, else the tensor names."""
    details = interp.get_output_details()
    names = [d["name"] for d in details]
    signatures = interp.get_signature_list()
    if len(signatures) == 1:
        runner_outputs = interp._get_full_signature_list()[next(iter(signatures))]["outputs"]  # noqa: SLF001
        by_index = {int(index): key for key, index in runner_outputs.items()}
        names = [by_index.get(int(d["index"]), d["name"]) for d in details]
    return tuple(names)


def run(model: Any, images: Any, spec: InputSpec = InputSpec(), *, batch_size: int | None = DEFAULT_BATCH,
        num_threads: int | None = None, keep_tensors: bool = False, reference_kernels: bool = False,
        reset_variables: bool | None = None, prepared: bool = False) -> Run:
    """Run a TFLite model, batched, with the model's own I/O (de)quantization (``feeding``).

    Args:
        model: a ``ConvertedModel``, ``.tflite`` bytes or path.
        images: the data: raw uint8 pixels ``(N, H, W, C)`` or a float array ``(N, ...)`` for a one-input model,
            or a sequence of arrays, one per input in the model's input order (already prepared with ``prepared=True``).
        spec: the float range the model was trained on (uint8 pixels fed to float and int8 inputs).
        batch_size: inputs per invoke (``None``: all at once; ``1``: the one-input loop), at most as many as keep
            the largest activation tensor within ``BATCH_BYTES``. A recurrent model whose conversion fixed its batch
            size runs at that size (the last batch padded, the padding dropped).
        num_threads: interpreter threads (``None``: LiteRT's default).
        keep_tensors: keep every intermediate tensor; runs all inputs in one batch.
        reference_kernels: builtin reference kernels, no XNNPack.
        reset_variables: reset variable tensors (an LSTM's state) before every invoke (``None``: when the model
            has a recurrent or variable op, so each input starts from a fresh state as in Keras).
        prepared: the data already have the model's input dtypes and normalization.

    Raises:
        ValueError: as many arrays as the model has inputs, of one length, are needed.
        QuantizationError: LiteRT refused to prepare or run the model (explained).
    """
    interp = interpreter(model_bytes(model), num_threads=num_threads, keep_tensors=keep_tensors,
                         reference_kernels=reference_kernels)
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    if reset_variables is None:
        reset_variables = any(any(key in op.name for key in _STATEFUL) for op in op_details(interp))
    arrays = check_arrays(list(images) if isinstance(images, (list, tuple)) else [images], ins)
    count = len(arrays[0])
    # A recurrent model converted at a fixed batch size keeps its state per row: run it at that size. Others are
    # resized to the batch (a fixed-size frozen graph included, as LiteRT allows).
    fixed = int(ins[0]["shape_signature"][0]) if reset_variables and len(ins[0]["shape_signature"]) else -1
    if batch_size is None or keep_tensors:
        batch_size = count
    cap = count if keep_tensors else _batch_cap(interp)
    batch = fixed if fixed > 0 else max(1, min(int(batch_size), count, cap))
    current = None
    raw: list[list[np.ndarray]] = [[] for _ in outs]
    for start in range(0, count, batch):
        # Fed batch by batch: the whole set is never held in the input's dtype (float32 for a float model).
        chunks = [a[start:start + batch] if prepared else
                  prepare_input(a[start:start + batch], np.dtype(d["dtype"]).name, *d["quantization"], spec)
                  for a, d in zip(arrays, ins)]
        rows = len(chunks[0])
        if fixed > 0 and rows < fixed:  # a fixed batch: pad the last one, drop the padding below
            chunks = [np.concatenate([c, np.zeros((fixed - rows, *c.shape[1:]), c.dtype)]) for c in chunks]
        if len(chunks[0]) != current:  # the first batch, and the last, shorter one
            _explained(lambda: ([interp.resize_tensor_input(d["index"], [len(c), *c.shape[1:]])
                                 for d, c in zip(ins, chunks)], interp.allocate_tensors()))
            current = len(chunks[0])
        if reset_variables:
            interp.reset_all_variables()
        for d, c in zip(ins, chunks):
            interp.set_tensor(d["index"], c)
        _explained(interp.invoke)
        for j, d in enumerate(outs):
            value = interp.get_tensor(d["index"])
            raw[j].append(value[:rows] if value.ndim and len(value) == len(chunks[0]) else value[None])
        progress.advance(rows)
    joined = [np.concatenate(r) for r in raw]
    real = tuple(dequantize(r, *d["quantization"]) for r, d in zip(joined, outs))
    first = joined[0].reshape(len(joined[0]), -1)
    return Run(real[0].reshape(len(first), -1), first, interp, real, output_names(interp))


def _batch_cap(interp: Any) -> int:
    """The most rows whose largest tensor (its shape at batch 1, before any resize) fits in ``BATCH_BYTES``."""
    largest = max((int(np.prod(d["shape"][1:])) * np.dtype(d["dtype"]).itemsize for d in interp.get_tensor_details()
                   if len(d["shape"]) > 1), default=1)
    return max(1, BATCH_BYTES // max(1, largest))


def constant(model: Any, index: int) -> np.ndarray:
    """The value of a constant tensor (a weight or bias) of ``model``."""
    interp = interpreter(model_bytes(model))
    interp.allocate_tensors()
    return interp.get_tensor(index)


def debugger_interpreter(debugger: Any):
    """The quantized model's interpreter inside a ``tf.lite.experimental.QuantizationDebugger`` (its tensor names key
    the debugger's per-layer statistics; TF offers no public accessor)."""
    return debugger._quant_interpreter  # noqa: SLF001


def _explained(call):
    try:
        return call()
    except RuntimeError as err:
        raise diagnose.QuantizationError(diagnose.explain(str(err))) from None
