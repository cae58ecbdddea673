"""Where the error enters a quantized model: each activation tensor against the float model's, in execution order.

``error_path`` runs the quantized ``.tflite`` and the float one (the reference recipe's conversion of the same
model) on the same samples keeping every tensor (``litert.run(..., keep_tensors=True)``, in chunks), pairs each
activation tensor an op of the quantized model writes with the float model's tensor of the same name (else of the
same first name, without the v1 converter's scopes: the legacy uint8 path names its tensors that way), dequantizes
it with its own scale and zero point, and measures the **cumulative** error there: the SNR (``fidelity.snr_db``)
of the quantized model as it is, every earlier op's error included. The path is in the quantized model's
execution order, so this works for the legacy uint8 path as well as int8 (TFLite's QuantizationDebugger takes int8
models only).

``entry`` is the first tensor whose cumulative SNR falls under ``ENTRY_DB`` (else the one with the largest drop
from the tensor before it on the path): the op where the error comes in. The **local** error of each op alone (fed
the float model's inputs) is not measured here.
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

ENTRY_DB = 20.0  # the cumulative SNR under which the error has come in
MEMORY = 256 * 2**20  # bytes of kept tensors per chunk, both models together


@dataclass(frozen=True)
class PathPoint:
    """One activation tensor of the quantized model: the op that writes it, its dtype, its cumulative SNR (dB)."""

    name: str
    op: str
    dtype: str
    snr_db: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def error_path(reference: Any, model: Any, samples: Samples, spec: InputSpec = InputSpec(), *,
               size: int = 100) -> tuple[PathPoint, ...]:
    """The cumulative SNR of every activation tensor of ``model`` that the float ``reference`` has too, in execution
    order, on the first ``size`` samples (see the module)."""
    ref_info, info = litert.read_model(reference), litert.read_model(model)
    floats = {t.name: t for t in ref_info.tensors if t.is_activation}
    keys = [_key(name) for name in floats]
    by_key = {k: t for k, t in zip(keys, floats.values()) if keys.count(k) == 1}
    pairs = []
    for op in info.op_details:
        for index in op.outputs:
            q = info.tensor(index)
            if op.name in ("QUANTIZE", "DEQUANTIZE") or not q.is_activation:
                continue
            f = floats.get(q.name) or by_key.get(_key(q.name))
            if f is not None and tuple(f.shape[1:]) == tuple(q.shape[1:]):
                pairs.append((q, f))
    if not pairs:
        return ()
    sums = {q.index: [0.0, 0.0] for q, _ in pairs}
    for q_values, f_values in _chunks(reference, model, ref_info, info, pairs, samples, spec, size):
        for q, f in pairs:
            real = litert.dequantize(q_values[q.index], *_quant(q)).astype(np.float64)
            expected = f_values[f.index].astype(np.float64)
            sums[q.index][0] += float(np.sum(expected ** 2))
            sums[q.index][1] += float(np.sum((real - expected) ** 2))
    return tuple(PathPoint(q.name, q.producer or "", q.dtype, fidelity.ratio_db(*sums[q.index])) for q, _ in pairs)


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


def _key(name: str) -> str:
    """A tensor's name as every converter writes it: its first ``;``-joined name, without the v1 converter's
    ``StatefulPartitionedCall/`` scopes and an output index (``lenet/conv1/Relu``, ``StatefulPartitionedCall``)."""
    first = name.split(";")[0]
    return re.sub(r":\d+$", "", re.sub(r"^(StatefulPartitionedCall/)+", "", first))


def _quant(tensor: Any) -> tuple[float, int]:
    scales, zeros = tensor.scales, tensor.zero_points
    if not scales or len(scales) != 1:
        return 0.0, 0
    return float(scales[0]), int(zeros[0]) if zeros else 0


def _chunks(reference: Any, model: Any, ref_info: Any, info: Any, pairs: list, samples: Samples, spec: InputSpec,
            size: int):
    """The paired tensors' values on each chunk of the first ``size`` samples, both models run on the same rows."""
    rows = max(1, min(int(size), len(samples)))
    per_row = sum(int(np.prod(t.shape[1:] or (1,))) * np.dtype(t.dtype).itemsize
                  for i in (ref_info, info) for t in i.tensors if t.is_activation) or 1
    chunk = max(1, min(rows, MEMORY // per_row))
    for start in range(0, rows, chunk):
        part = samples.take(slice(start, min(rows, start + chunk)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            f_run = litert.run(reference, _ordered(part, ref_info).feed(), spec, keep_tensors=True)
            q_run = litert.run(model, _ordered(part, info).feed(), spec, keep_tensors=True)
        yield ({q.index: np.asarray(q_run.tensor(q.index)) for q, _ in pairs},
               {f.index: np.asarray(f_run.tensor(f.index)) for _, f in pairs})


def _ordered(samples: Samples, info: Any) -> Samples:
    return samples.ordered([i.name for i in info.inputs]) if len(samples.inputs) > 1 else samples
