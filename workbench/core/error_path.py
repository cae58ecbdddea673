"""Where the error enters a quantized model: each activation tensor against the float model's, in execution order.

``error_path`` runs the quantized ``.tflite`` and the float one (the reference recipe's conversion of the same
model) on the same samples keeping every tensor (``litert.run(..., keep_tensors=True)``, in chunks), pairs each
activation tensor an op of the quantized model writes with the float model's tensor of the same name (else of the
same first name, without the v1 converter's scopes: the legacy uint8 path names its tensors that way), dequantizes
it with its own scale and zero point, and measures two SNRs (``fidelity.ratio_db``) against the float model there:

* the **cumulative** one: the quantized model as it is, every earlier op's error included;
* the **local** one: the op alone, fed the float model's values of the tensors it reads (each quantized with the
  scale and zero point of the tensor it stands for). One run of ``litert.disconnected(model)``, the model with
  every op reading fresh inputs, gives every op's output at once. An op that cannot run alone (custom, control
  flow, state), or reads a tensor the float model has no counterpart of, has no local SNR and says why.

An op whose local SNR is low makes the error itself; one whose local SNR is high while its cumulative SNR is low
inherits it. The path is in the quantized model's execution order, so this works for the legacy uint8 path as well
as int8 (TFLite's QuantizationDebugger takes int8 models only).

``entry`` is the first tensor whose cumulative SNR falls under ``ENTRY_DB`` (else the one with the largest drop
from the tensor before it on the path): the op where the error comes in; ``entry_sentence`` says it, with both
figures.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import fidelity, litert
from .data import InputSpec
from .samples import Samples

ENTRY_DB = 20.0  # the cumulative SNR under which the error has come in; a local SNR under it: the op's own error
MEMORY = 96 * 2**20  # bytes of kept tensors per chunk, every model together (2 inputs of MobileNetV2 at 224x224)


@dataclass(frozen=True)
class PathPoint:
    """One activation tensor of the quantized model: the op that writes it, its dtype, its cumulative SNR (dB) and
    the op's local SNR (dB; ``None`` when the op was not run alone, ``no_local`` saying why)."""

    name: str
    op: str
    dtype: str
    snr_db: float
    local_snr_db: float | None = None
    no_local: str = ""

    @property
    def blame(self) -> str | None:
        """``"op"``: the op alone is under ``ENTRY_DB`` (it makes the error); ``"upstream"``: alone it is not, but
        its cumulative SNR is (it inherits the error); ``None``: neither, or no local SNR."""
        if self.local_snr_db is None:
            return None
        return "op" if self.local_snr_db < ENTRY_DB else "upstream" if self.snr_db < ENTRY_DB else None

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "blame": self.blame}


def error_path(reference: Any, model: Any, samples: Samples, spec: InputSpec = InputSpec(), *,
               size: int = 100) -> tuple[PathPoint, ...]:
    """The cumulative and local SNR of every activation tensor of ``model`` that the float ``reference`` has too, in
    execution order, on the first ``size`` samples (see the module)."""
    ref_info, info = litert.read_model(reference), litert.read_model(model)
    floats = _counterparts(ref_info, info)
    pairs = []
    for pos, op in enumerate(info.op_details):
        for index in op.outputs:
            q = info.tensor(index)
            if op.name in ("QUANTIZE", "DEQUANTIZE") or not q.is_activation:
                continue
            f = floats.get(q.index)
            if f is not None and f.is_activation:
                pairs.append((pos, q, f))
    if not pairs:
        return ()
    alone = _Alone(model, info, floats)
    sums, unmeasured = {q.index: [0.0, 0.0, 0.0] for _, q, _ in pairs}, set()
    for q_run, f_run in _chunks(reference, model, ref_info, info, samples, spec, size, alone.info):
        local = alone.run(q_run, f_run)
        for _, q, f in pairs:
            expected = np.asarray(f_run.tensor(f.index), np.float64)
            sums[q.index][0] += float(np.sum(expected ** 2))
            for j, got in ((1, q_run.tensor(q.index)), (2, local.get(q.index))):
                if got is not None:
                    sums[q.index][j] += float(np.sum((litert.dequantize(got, *_quant(q)) - expected) ** 2))
                else:
                    unmeasured.add(q.index)
    points = []
    for pos, q, _ in pairs:
        signal, noise, local_noise = sums[q.index]
        why = alone.why_not(pos, info.op_details[pos]) or ("not run alone" if q.index in unmeasured else "")
        points.append(PathPoint(q.name, q.producer or "", q.dtype, fidelity.ratio_db(signal, noise),
                                None if why else fidelity.ratio_db(signal, local_noise), why))
    return tuple(points)


def entry(path: tuple[PathPoint, ...]) -> PathPoint | None:
    """Where the error comes in: the first point under ``ENTRY_DB``, else the largest drop along the path."""
    if not path:
        return None
    under = next((p for p in path if p.snr_db < ENTRY_DB), None)
    if under is not None:
        return under
    drops = [(before.snr_db - point.snr_db, point) for before, point in zip(path, path[1:])
             if math.isfinite(before.snr_db) and math.isfinite(point.snr_db)]
    return max(drops, key=lambda dp: dp[0])[1] if drops else path[0]


def entry_sentence(point: PathPoint) -> str:
    """Where the error enters, with the cumulative and the local SNR there, and which of the two is to blame."""
    head = (f"The error enters at {point.name.split(';')[0]} ({point.op}): {point.snr_db:.1f} dB SNR against the "
            "float model there")
    if point.local_snr_db is None:
        return f"{head} (the op was not run alone: {point.no_local})."
    alone = f"the op alone, fed the float model's inputs, measures {point.local_snr_db:.1f} dB"
    if point.blame == "op":
        return f"{head}, and {alone}: the op itself makes the error."
    if point.blame == "upstream":
        return f"{head}, but {alone}: it inherits the error from the ops before it."
    return f"{head}, the largest drop along the path ({alone})."  # no tensor under ENTRY_DB


def _key(name: str) -> str:
    """A tensor's name as every converter writes it: its first ``;``-joined name, without the v1 converter's
    ``StatefulPartitionedCall/`` scopes and an output index (``lenet/conv1/Relu``, ``StatefulPartitionedCall``)."""
    first = name.split(";")[0]
    return re.sub(r":\d+$", "", re.sub(r"^(StatefulPartitionedCall(_\d+)?/)+", "", first))


def _quant(tensor: Any) -> tuple[float, int]:
    scales, zeros = tensor.scales, tensor.zero_points
    if not scales or len(scales) != 1:
        return 0.0, 0
    return float(scales[0]), int(zeros[0]) if zeros else 0


def _counterparts(ref_info: Any, info: Any) -> dict[int, Any]:
    """The float model's tensor standing for each tensor of the quantized model: an activation of the same name,
    else of the same ``_key`` when only one has it, else the only one sharing one of its ``;``-joined names (each
    read as a ``_key``: the v1 converter joins the float model's name after its own), with the same shape past the
    batch; or the model input of the same name (a one-input model's input, whatever its name)."""
    floats = [t for t in ref_info.tensors if t.is_activation]
    keys = [_key(t.name) for t in floats]
    by_key = {k: t for k, t in zip(keys, floats) if keys.count(k) == 1}
    by_name = {t.name: t for t in floats} | {i.name: ref_info.tensor(i.index) for i in ref_info.inputs}
    by_part: dict[str, list] = {}
    for t in floats:
        for part in {_key(p) for p in t.name.split(";")}:
            by_part.setdefault(part, []).append(t)
    found = {}
    for q in info.tensors:
        shared = {t.index: t for p in {_key(p) for p in q.name.split(";")} for t in by_part.get(p, ())}
        f = by_name.get(q.name) or by_key.get(_key(q.name)) or (next(iter(shared.values())) if len(shared) == 1
                                                                 else None)
        if f is not None and tuple(f.shape[1:]) == tuple(q.shape[1:]):
            found[q.index] = f
    if len(info.inputs) == len(ref_info.inputs) == 1:
        found.setdefault(info.inputs[0].index, ref_info.tensor(ref_info.inputs[0].index))
    return found


class _Alone:
    """Every op of the quantized model run alone (``litert.disconnected``), fed the float model's values."""

    def __init__(self, model: Any, info: Any, floats: dict[int, Any]) -> None:
        self.failed, self.feeds, self.missing = "", [], {}
        try:
            self.tflite, fed, self.skipped = litert.disconnected(model)
            self.info = litert.read_model(self.tflite)
        except (ValueError, RuntimeError, IndexError, AttributeError) as err:  # a model the schema or LiteRT refuses
            self.failed, self.info, self.skipped = _failure(err), None, {}
            return
        producers = {out: op for op in info.op_details for out in op.outputs}
        own = {i.index for i in info.inputs}
        # self.feeds: per input of the disconnected model, (original tensor, float tensor or None); self.missing:
        # original tensor -> why it cannot be fed the float model's value
        for d in self.info.inputs:
            index = fed.get(d.index, d.index)
            tensor, source = info.tensor(index), index
            while source not in floats and (op := producers.get(source)) is not None \
                    and op.name in ("QUANTIZE", "DEQUANTIZE"):
                source = op.inputs[0]  # a quantize or dequantize stands for the value it reads
            if index in own or not (tensor.quantized or tensor.dtype == "float32"):
                self.feeds.append((index, None))  # the model's input as fed, or integers (shapes, indices) as run
            elif source in floats:
                self.feeds.append((index, floats[source]))
            else:
                self.feeds.append((index, None))
                self.missing[index] = f"the float model has no tensor standing for its input {tensor.name!r}"

    def why_not(self, position: int, op: Any) -> str:
        """Why the op at ``position`` has no local SNR ("" when it has one)."""
        if self.failed:
            return self.failed
        if position in self.skipped:
            return f"{self.skipped[position]}, which cannot run alone"
        return next((self.missing[i] for i in op.inputs if i in self.missing), "")

    def run(self, q_run: Any, f_run: Any) -> dict[int, np.ndarray]:
        """Each op's output, dequantized, by tensor index, fed the float model's values of one chunk."""
        if self.failed:
            return {}
        arrays = []
        for (index, f), d in zip(self.feeds, self.info.inputs):
            if f is None:
                arrays.append(np.asarray(q_run.tensor(index)))
            else:
                arrays.append(litert.prepare_input(np.asarray(f_run.tensor(f.index), np.float32), d.dtype, d.scale,
                                                   d.zero_point))
        try:
            ran = litert.run(self.tflite, arrays, batch_size=None, reference_kernels=True, prepared=True)
        except (ValueError, RuntimeError) as err:
            self.failed = _failure(err)
            return {}
        return dict(zip((d.index for d in self.info.outputs), ran.all_outputs))


def _failure(err: Exception) -> str:
    return f"the model's ops could not run alone ({type(err).__name__}: {' '.join(str(err).split())[:160]})"


def _chunks(reference: Any, model: Any, ref_info: Any, info: Any, samples: Samples, spec: InputSpec, size: int,
            alone: Any):
    """Both models run on each chunk of the first ``size`` samples, keeping every tensor: ``(q_run, f_run)``. A chunk
    holds as many rows as fit in ``MEMORY``: both models' tensors, and the disconnected model's (``alone``) inputs
    and outputs, these dequantized."""
    rows = max(1, min(int(size), len(samples)))
    per_row = sum(_bytes(t) for i in (ref_info, info) for t in i.tensors if t.is_activation)
    if alone is not None:
        per_row += sum(_bytes(d) for d in alone.inputs) + sum(_bytes(d) + _bytes(d, 4) for d in alone.outputs)
    chunk = max(1, min(rows, MEMORY // max(per_row, 1)))
    for start in range(0, rows, chunk):
        part = samples.take(slice(start, min(rows, start + chunk)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            f_run = litert.run(reference, _ordered(part, ref_info).feed(), spec, keep_tensors=True)
            q_run = litert.run(model, _ordered(part, info).feed(), spec, keep_tensors=True)
        yield q_run, f_run
        del q_run, f_run


def _bytes(tensor: Any, itemsize: int | None = None) -> int:
    """Bytes of one row of a tensor (of ``itemsize``-byte values, else its own dtype's)."""
    return int(np.prod(tensor.shape[1:] or (1,))) * (itemsize or np.dtype(tensor.dtype).itemsize)


def _ordered(samples: Samples, info: Any) -> Samples:
    return samples.ordered([i.name for i in info.inputs]) if len(samples.inputs) > 1 else samples
