"""What the activation tensors of a ``.tflite`` hold on the samples: their real range, and where they saturate.

Both measures run the model through ``litert.run(..., keep_tensors=True)`` on the first ``size`` samples, in
chunks small enough that every kept tensor of a chunk fits in ``MEMORY`` bytes, and read every activation
tensor (``TensorInfo.is_activation``: written by an op) one at a time, so the memory they take is about
twice ``MEMORY`` (the interpreter's kept tensors, one tensor's copy) plus ``SUBSAMPLE`` values per tensor,
whatever ``size`` is:

* ``activation_ranges``: per float activation tensor, its smallest and largest value (exact, kept as running
  values), the ``100 - p`` and ``p`` percentiles and, given ``bounds``, the share of its values outside them
  (exact: counted on every value). The percentiles are exact while a tensor has at most ``SUBSAMPLE`` values
  on the rows measured; past that they are those of a uniform random sample of about ``SUBSAMPLE`` of its
  values (each chunk gives its share, a fixed seed: the same figures on every run). The sample ``p``
  percentile of ``n`` random values is the population's ``p +- 2 * 100 * sqrt(q (1 - q) / n)`` percentile
  (``q = p / 100``) 95 % of the time: with ``n = 100,000`` and ``p = 99.9``, between the exact 99.88th and
  99.92nd percentiles;
* ``saturation``: per integer activation tensor, the share of values at the integer minimum and maximum of its
  type. A limit that stands for the real value 0 (the zero point: a ReLU's or a softmax's zeros) is not
  saturation and is not counted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import litert
from .data import InputSpec
from .samples import Samples

MEMORY = 128 * 2**20  # bytes of kept tensors per chunk (MobileNetV2 at 224x224 on 200 rows: 284 MB peak RSS alone)
SUBSAMPLE = 100_000  # values per tensor the percentiles are computed on
INTEGER = ("uint8", "int8", "int16")


@dataclass(frozen=True)
class TensorRange:
    """One float activation tensor on the samples: ``count`` values from ``min`` to ``max``, the ``low``/``high``
    percentiles, and ``outside``: the share of values outside the bounds asked about (0.0 without bounds)."""

    name: str
    index: int
    count: int
    min: float
    max: float
    low: float
    high: float
    outside: float = 0.0

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TensorSaturation:
    """One integer activation tensor on the samples: the share of its ``count`` values at the type's minimum
    (``at_min``) and maximum (``at_max``), each 0.0 where that limit is the tensor's zero point."""

    name: str
    index: int
    dtype: str
    count: int
    at_min: float
    at_max: float

    @property
    def share(self) -> float:
        return self.at_min + self.at_max

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share}


def activation_ranges(model: Any, samples: Samples, spec: InputSpec = InputSpec(), *, size: int = 200,
                      bounds: tuple[float, float] | None = None, percentile: float = 99.9) -> tuple[TensorRange, ...]:
    """Every float activation tensor of ``model`` on the first ``size`` samples (see the module)."""
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile={percentile!r}; allowed: 50 < percentile <= 100")
    info = litert.read_model(model)
    tensors = [t for t in info.tensors if t.is_activation and t.dtype == "float32"]
    found: dict[int, dict[str, Any]] = {t.index: {"count": 0, "min": math.inf, "max": -math.inf, "outside": 0,
                                                  "kept": []} for t in tensors}
    rows, _ = _chunk_rows(info, tensors, samples, size)
    rng = np.random.default_rng(0)
    for chunk, read in _tensor_chunks(model, info, tensors, samples, spec, size):
        for t in tensors:
            flat = read(t.index).reshape(-1)
            if not flat.size:
                continue
            acc = found[t.index]
            acc["count"] += flat.size
            acc["min"], acc["max"] = min(acc["min"], float(flat.min())), max(acc["max"], float(flat.max()))
            if bounds is not None:
                acc["outside"] += int(np.count_nonzero((flat < np.float64(bounds[0])) | (flat > np.float64(bounds[1]))))
            acc["kept"].append(_sample(flat, math.ceil(SUBSAMPLE * chunk / rows), rng))
    ranges = []
    for t in tensors:
        acc = found[t.index]
        if not acc["count"]:
            continue
        kept = np.concatenate(acc["kept"]).astype(np.float64)
        low, high = np.percentile(kept, [100 - percentile, percentile])
        ranges.append(TensorRange(t.name, t.index, acc["count"], acc["min"], acc["max"], float(low), float(high),
                                  acc["outside"] / acc["count"]))
    return tuple(ranges)


def _sample(flat: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
    """All of ``flat`` when it has at most ``quota`` values, else ``quota`` of them drawn at random (a copy: the
    chunk's values are not kept alive)."""
    if flat.size <= quota:
        return flat.copy()
    return flat[np.sort(rng.choice(flat.size, quota, replace=False))]


def saturation(model: Any, samples: Samples, spec: InputSpec = InputSpec(), *,
               size: int = 200) -> tuple[TensorSaturation, ...]:
    """Every integer activation tensor of ``model`` on the first ``size`` samples (see the module)."""
    info = litert.read_model(model)
    tensors = [t for t in info.tensors if t.is_activation and t.dtype in INTEGER and t.quantized]
    counts = {t.index: [0, 0, 0] for t in tensors}
    for _, read in _tensor_chunks(model, info, tensors, samples, spec, size):
        for t in tensors:
            v = read(t.index)
            limits = np.iinfo(t.dtype)
            zero = t.zero_points[0] if t.zero_points else 0
            counts[t.index][0] += v.size
            counts[t.index][1] += int(np.sum(v == limits.min)) if zero > limits.min else 0
            counts[t.index][2] += int(np.sum(v == limits.max)) if zero < limits.max else 0
    return tuple(TensorSaturation(t.name, t.index, t.dtype, n, low / n, high / n)
                 for t in tensors for n, low, high in [counts[t.index]] if n)


def _chunk_rows(info: Any, tensors: Sequence[Any], samples: Samples, size: int) -> tuple[int, int]:
    """``(rows measured, rows per chunk)``."""
    rows = max(1, min(int(size), len(samples)))
    per_row = sum(int(np.prod(t.shape[1:] or (1,))) * np.dtype(t.dtype).itemsize for t in info.tensors
                  if t.is_activation) or 1
    return rows, max(1, min(rows, MEMORY // per_row))


def _tensor_chunks(model: Any, info: Any, tensors: Sequence[Any], samples: Samples, spec: InputSpec,
                   size: int) -> Iterator[tuple[int, Callable[[int], np.ndarray]]]:
    """For each chunk of the first ``size`` samples: its row count and ``read(index)``, the value of one tensor
    on the chunk (read when asked, so one tensor's copy is held at a time)."""
    if len(samples.inputs) > 1:
        samples = samples.ordered([i.name for i in info.inputs])
    rows, chunk = _chunk_rows(info, tensors, samples, size)
    held: list[Any] = []  # the chunk's run, dropped before the next one is made

    def read(index: int) -> np.ndarray:
        return np.asarray(held[0].tensor(index))

    for start in range(0, rows, chunk):
        held.clear()
        part = samples.take(slice(start, min(rows, start + chunk)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            held.append(litert.run(model, part.feed(), spec, keep_tensors=True))
        yield len(part), read
    held.clear()
