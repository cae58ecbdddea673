"""The data a model is measured on: its inputs, with or without labels, read from a user's ``.npz``.

Inputs are uint8 images ``(N, H, W[, C])`` (raw pixels; a 3-D array gets a channel axis) or float
arrays of any shape ``(N, ...)`` fed as they are (``feeding``); a model with several inputs takes one
array per input, named like the input. Labels are optional:

* ``labels``: integer classes ``(N,)`` (a classifier's accuracy beside its fidelity);
* ``boxes (N, M, 4)`` ``[ymin, xmin, ymax, xmax]`` in the units of the model's box output, with
  ``classes (N, M)`` integer classes, rows padded with ``-1`` (a detector's mAP against the truth);
* ``targets``: the outputs wanted, shaped like the model's first output (an image-to-image model).

Without labels, every quantized model is measured against the float model's own outputs
(``fidelity``), which every user has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import checks
from .data import InputSpec, read_npz
from .stats import stats_for_range

INPUT_KEYS = ("images", "inputs", "x_test", "x")  # the one input of a one-input model, in this order
LABEL_KEYS = ("labels", "y_test", "y")
BOX_KEYS = ("boxes", "classes")


@dataclass(frozen=True, eq=False)
class Samples:
    """Inputs (one array per model input, ``names`` their arrays in the file) and the labels the file has.

    An input read from a big ``.npz`` is a ``data.NpyRows`` (its rows read when indexed: ``take`` gives arrays;
    ``litert.run`` feeds it batch by batch)."""

    inputs: tuple[np.ndarray, ...]
    names: tuple[str, ...] = ("images",)
    labels: np.ndarray | None = None
    boxes: np.ndarray | None = None
    box_classes: np.ndarray | None = None
    targets: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    path: Path | None = None
    label_array: str | None = None  # the array the labels came from

    def __post_init__(self) -> None:
        counts = {len(a) for a in self.inputs}
        if not self.inputs or len(counts) != 1:
            raise ValueError(f"inputs={self.names!r} have {sorted(counts)} rows; allowed: one or more arrays "
                             "with the same number of rows (one per input, the same inputs in each)")

    @classmethod
    def of(cls, data: Any, labels: Any = None) -> "Samples":
        """``data`` as ``Samples``: a ``Samples`` (``labels`` replace its own when given), one array, or one array
        per input; ``labels``: integer classes, one per row.

        Raises:
            ValueError: data that are not arrays of one length; labels not one integer per row.
        """
        if isinstance(data, Samples):
            samples = data
        else:
            arrays = [data] if not isinstance(data, (list, tuple)) else list(data)
            samples = cls(tuple(_input(f"images[{i}]" if len(arrays) > 1 else "images", a)
                                for i, a in enumerate(arrays)),
                          tuple(f"input_{i}" for i in range(len(arrays))) if len(arrays) > 1 else ("images",))
        if labels is not None:
            samples = replace(samples, labels=checks.labels("labels", labels, len(samples)))
        return samples

    def __len__(self) -> int:
        return len(self.inputs[0])

    @property
    def images(self) -> np.ndarray:
        """The first input (the images of an image model)."""
        return self.inputs[0]

    @property
    def is_images(self) -> bool:
        """Every input is uint8 pixels (mapped onto the model's float range); else some are fed as they are."""
        return all(a.dtype == np.uint8 for a in self.inputs)

    @property
    def labelled(self) -> bool:
        return self.labels is not None or self.boxes is not None or self.targets is not None

    def feed(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """What ``litert.run`` takes: the array of a one-input model, else the tuple."""
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    def take(self, rows: Sequence[int] | slice) -> "Samples":
        """The same samples, only ``rows``."""
        pick = (lambda a: None if a is None else a[rows])
        return replace(self, inputs=tuple(a[rows] for a in self.inputs), labels=pick(self.labels),
                       boxes=pick(self.boxes), box_classes=pick(self.box_classes), targets=pick(self.targets))

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest value over the float inputs (``(0, 255)`` for images)."""
        floats = [a for a in self.inputs if a.dtype != np.uint8]
        if not floats:
            return 0.0, 255.0
        return float(min(a.min() for a in floats)), float(max(a.max() for a in floats))

    def ordered(self, input_names: Sequence[str], flag: str = "data") -> "Samples":
        """The arrays in the order of a model's inputs (``input_names``), matched by name; a one-input model takes
        the one array it has.

        Raises:
            ValueError: arrays that do not match the model's inputs (the message lists both).
        """
        from .feeding import match_inputs, short_name

        if len(input_names) == len(self.inputs) == 1:
            return self
        chosen = match_inputs(self.names, input_names)
        if chosen is None or len(input_names) != len(self.inputs):
            wanted = ", ".join(short_name(n) for n in input_names)
            raise ValueError(f"{flag}={str(self.path or '')!r} holds input arrays {', '.join(self.names)} for a model "
                             f"with {len(input_names)} input(s) ({wanted}); allowed: one array per model input, named "
                             "like the input")
        index = {n: i for i, n in enumerate(self.names)}
        return replace(self, inputs=tuple(self.inputs[index[c]] for c in chosen), names=tuple(chosen))

    def describe(self) -> str:
        shapes = ", ".join(f"{n} {'x'.join(map(str, a.shape[1:]))} {a.dtype}" for n, a in zip(self.names, self.inputs))
        given = [k for k, v in (("labels", self.labels), ("boxes", self.boxes), ("targets", self.targets))
                 if v is not None]
        where = f"{self.path.name}: " if self.path is not None else ""
        unit = "images" if self.is_images else "inputs"
        return f"{where}{len(self)} {unit} ({shapes}), {'with ' + ', '.join(given) if given else 'no labels'}"


def input_spec_of(samples: Samples, given: InputSpec | None, model_spec: InputSpec) -> tuple[InputSpec, str | None]:
    """The float range the uint8 input stats are computed for, and the sentence saying where it came from.

    Images keep the model's range (``model_spec``: 0..1, or 0..255 after ``Rescaling``). Float data take
    ``given`` (``--input-range``), else their own min and max, widened to hold 0 (uint8 input stats map 0..255 onto
    a range that holds 0)."""
    if samples.is_images:
        return (given or model_spec), None
    if given is not None:
        return given, f"input stats for the uint8 paths from the input range [{given.lo:g}, {given.hi:g}] given"
    lo, hi = samples.value_range()
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi <= lo:
        hi = lo + 1.0
    spec = InputSpec(lo, hi)
    stats = stats_for_range(lo, hi)
    return spec, (f"input stats for the uint8 paths from the data's own range [{lo:.4g}, {hi:.4g}] (mean "
                  f"{stats.mean:.4g}, std {stats.std:.4g}); pass --input-range LO HI for the range the model was "
                  "trained on")


def read_samples(flag: str, path: str | os.PathLike, inputs: Sequence[str] | None = None,
                 labels: str | None = "labels", flags: tuple[str, str] = ("inputs", "labels")) -> Samples:
    """The samples of an ``.npz`` (see module doc).

    Args:
        flag: the argument or command-line flag the path came from (the messages name it).
        path: the ``.npz``.
        inputs: the input arrays (default: ``images``, else ``inputs``, ``x_test`` or ``x``; else every array that
            is not a label: a model with several inputs, matched by name later with ``Samples.ordered``).
        labels: the class-label array (default ``labels``, else ``y_test``/``y``); absent is fine.
        flags: what the messages call the ``inputs`` and ``labels`` arguments (``--images``, ``--labels``).

    Raises:
        ValueError: a missing or unreadable file, a named array that is missing (the message lists those present),
            arrays of different lengths, labels that are not one integer per input, boxes not ``(N, M, 4)``.
    """
    arrays = read_npz(flag, path, lazy=True)
    where = f"{flag}={str(path)!r}"
    present = ", ".join(sorted(arrays)) or "none: the file is empty"
    if inputs:
        missing = [n for n in inputs if n not in arrays]
        if missing:
            raise ValueError(f"{where} has no array {missing[0]!r} ({flags[0]}); allowed: one of {present}")
        names = tuple(inputs)
    else:
        first = next((k for k in INPUT_KEYS if k in arrays), None)
        label_like = {*LABEL_KEYS, *BOX_KEYS, "targets", "class_names", "y_train", "x_train"}
        names = (first,) if first else tuple(k for k in arrays if k not in label_like)
        if not names:
            raise ValueError(f"{where} has no input array; allowed: an array named images (uint8 pixels) or "
                             f"inputs (float), or one per model input; the file has {present}")
    data = tuple(_input(f"{where} array {n!r}", arrays[n]) for n in names)
    count = len(data[0])
    if labels is None:
        label_key = None
    elif labels in arrays:
        label_key = labels
    elif labels == "labels":
        label_key = next((k for k in LABEL_KEYS if k in arrays), None)
    else:
        raise ValueError(f"{where} has no array {labels!r} ({flags[1]}); allowed: one of {present}")
    y = None if label_key is None else checks.labels(f"{where} array {label_key!r}", arrays[label_key], count)
    boxes = box_classes = None
    if "boxes" in arrays:
        boxes, box_classes = _boxes(where, arrays, count)
    targets = arrays.get("targets")
    if targets is not None and len(targets) != count:
        raise ValueError(f"{where} array 'targets' has {len(targets)} rows for {count} inputs; allowed: one per input")
    names_array = tuple(str(n) for n in np.asarray(arrays.get("class_names", ())).reshape(-1))
    return Samples(data, names, y, boxes, box_classes, targets, names_array, Path(path), label_key)


def _input(where: str, value: np.ndarray) -> np.ndarray:
    value = value if getattr(value, "rows_on_demand", False) else np.asarray(value)  # a big uint8 array stays lazy
    if value.dtype == np.uint8:
        return checks.images(where, value)
    if value.dtype.kind not in "fiub" or value.ndim < 1 or len(value) == 0:
        raise ValueError(f"{where} is {value.dtype} of shape {value.shape}; allowed: uint8 images (N, H, W[, C]) or "
                         "a numeric array (N, ...) with at least one row")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{where} holds NaN or infinite values; allowed: finite numbers")
    return value.astype(np.float32) if value.dtype.kind in "fb" else value


def _boxes(where: str, arrays: dict, count: int) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(arrays["boxes"], dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[0] != count or boxes.shape[2] != 4:
        raise ValueError(f"{where} array 'boxes' has shape {boxes.shape}; allowed: ({count}, M, 4) "
                         "[ymin, xmin, ymax, xmax] rows, padded with -1")
    if "classes" not in arrays:
        raise ValueError(f"{where} has 'boxes' without 'classes'; allowed: classes ({count}, M) integers, -1 padding")
    classes = np.asarray(arrays["classes"])
    if classes.shape != boxes.shape[:2] or classes.dtype.kind not in "iu":
        raise ValueError(f"{where} array 'classes' is {classes.dtype} {classes.shape}; allowed: integers of shape "
                         f"{boxes.shape[:2]} (one per box, -1 for padding)")
    return boxes, classes.astype(np.int64)
