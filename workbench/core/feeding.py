"""How data reaches a model's inputs and how its outputs come back as real values: pure NumPy, no runtime.

Two kinds of data are fed:

* **images**: uint8 pixels ``(N, H, W[, C])``. A uint8 input gets the raw bytes (its scale and zero
  point, the mean/std it was converted with, decide how they are read); a float input gets the pixels
  mapped linearly from 0..255 onto the ``InputSpec`` range; an int8/int16 input those floats quantized
  with the input's own scale and zero point.
* **float arrays** of any shape ``(N, ...)`` (sequences, spectrograms, images already normalised): a
  float input gets them as they are; a quantized input (uint8, int8, int16) gets them quantized with the
  input's own scale and zero point. Integer arrays other than uint8 (token ids) go as they are to an
  integer input of the same width.

Outputs are dequantized with the output's own scale and zero point: ``scale * (q - zero_point)``.

``match_inputs`` pairs the arrays of a data file with a model's inputs by name.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .data import InputSpec

QUANTIZED = ("uint8", "int8", "int16")


def is_images(data: np.ndarray) -> bool:
    """uint8 data are raw pixels (mapped onto the model's float range); anything else is fed as it is."""
    return np.asarray(data).dtype == np.uint8


def prepare_input(data: np.ndarray, dtype: str, scale: float, zero_point: int,
                  spec: InputSpec = InputSpec()) -> np.ndarray:
    """``data`` as an input of ``dtype`` with quantization ``(scale, zero_point)`` expects it (see module doc).

    Raises:
        ValueError: an input dtype the workbench cannot feed, or a quantized input without a scale.
    """
    data = np.asarray(data)
    if is_images(data):
        if dtype == "uint8":
            return data
        x = spec.normalize(data)
    elif np.issubdtype(data.dtype, np.integer) and dtype in ("int32", "int64", "int16", "int8", "uint8") \
            and scale == 0.0:
        return data.astype(dtype)  # ids and counts, not quantized values
    else:
        x = data.astype(np.float32, copy=False)
    if dtype == "float32":
        return x
    if dtype in QUANTIZED:
        if not scale:
            raise ValueError(f"a {dtype} model input without a scale cannot be fed {data.dtype} data; allowed: "
                             "uint8 images, or data of the input's own integer type")
        info = np.iinfo(dtype)
        q = np.round(x / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    raise ValueError(f"model input dtype {dtype!r} is not supported; allowed: uint8, int8, int16, int32, int64, "
                     "float32")


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values from quantized ones: ``scale * (q - zero_point)`` (floats, and unquantized integers, pass through)."""
    if np.issubdtype(values.dtype, np.floating) or scale == 0.0:
        return values.astype(np.float32)
    return (scale * (values.astype(np.float32) - zero_point)).astype(np.float32)


def short_name(name: str) -> str:
    """A TFLite or SavedModel tensor name without what the converter adds: ``serving_default_x:0`` -> ``x``."""
    name = re.sub(r":\d+$", "", str(name))
    return re.sub(r"^serving_default_", "", name)


def match_inputs(available: Sequence[str], inputs: Sequence[str]) -> list[str] | None:
    """For each of a model's ``inputs`` (names in the model's order), the one array of ``available`` named like it
    (the same name once the converter's additions are removed; else the one whose name the input's ends with),
    or ``None`` when some input has no array or two inputs would take the same one."""
    chosen = []
    for name in inputs:
        short = short_name(name)
        exact = [a for a in available if a == name or a == short]
        close = exact or [a for a in available if short.endswith(a) or a.endswith(short)]
        if len(close) != 1:
            return None
        chosen.append(close[0])
    return chosen if len(set(chosen)) == len(chosen) else None


def check_arrays(arrays: list, inputs: list[dict]) -> list:
    """``arrays`` when they fit a model's ``inputs`` (LiteRT's input details): one array per input, of one length,
    each row of the input's shape (``-1`` dimensions free); else a ValueError saying what is allowed."""
    if len(arrays) != len(inputs) or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"data of {len(arrays)} array(s) of {sorted({len(a) for a in arrays})} rows for a model with "
                         f"{len(inputs)} input(s); allowed: one array per input, each with the same number of rows")
    for i, (a, d) in enumerate(zip(arrays, inputs)):
        want = [int(v) for v in d["shape_signature"][1:]] if len(d["shape_signature"]) else []
        got = list(np.shape(a)[1:])
        if len(got) != len(want) or any(w > 0 and w != g for w, g in zip(want, got)):
            shape = ", ".join("?" if w < 1 else str(w) for w in want)
            raise ValueError(f"{'images' if len(arrays) == 1 else f'input {i}'} of shape {tuple(np.shape(a))} for a "
                             f"model input {d['name']!r} of ({shape}) per row; allowed: arrays (N, {shape})")
    return arrays
