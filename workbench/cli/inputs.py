"""What the ``convert``, ``evaluate`` and ``report`` commands read: a model by path, data and calibration ``.npz`` files.

Every check here runs before any conversion or evaluation and raises one
``ValueError`` that names the flag, the value and what is allowed, which the
command line prints as one ``error: ...`` line (exit code 2). Arrays are read
with NumPy alone; TensorFlow is imported only when a model has to be loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core import checks
from ..core.data import InputSpec, read_npz
from ..core.samples import Samples, read_samples


def input_spec(flag: str, value: Any) -> InputSpec:
    """The float range the model was trained on, from ``--input-range LO HI``."""
    try:
        lo, hi = checks.range_pair("range", value)
        return InputSpec(lo, hi)
    except ValueError as err:
        raise ValueError(f"{flag} {' '.join(map(str, value))}: {err}; allowed: LO HI with LO <= 0 <= HI and "
                         "LO < HI, the float range the model was trained on (e.g. 0 1 or -1 1)") from None


def samples(flag: str, path: str | os.PathLike, images: str = "images", labels: str = "labels") -> Samples:
    """Every input of an ``.npz`` and its labels if it has them (``core.samples.read_samples``): the ``images``
    array (several, comma-separated, for a model with several inputs), else ``inputs``, ``x_test`` or ``x``, else
    every array that is not a label; labels from ``labels``, else ``y_test``/``y``, boxes from ``boxes``/``classes``.

    Raises:
        ValueError: a missing or unreadable file, a named array that is missing (the message lists the arrays
            present), inputs that are not numbers, labels that are not one integer per input, class names that
            repeat or do not cover the labels.
    """
    names = None if images == "images" else [n for n in images.split(",") if n]
    data = read_samples(flag, path, names, labels, flags=("--images", "--labels"))
    names = data.class_names
    if names and len(set(names)) != len(names):
        raise ValueError(f"{flag}={str(path)!r} array 'class_names' repeats a name; allowed: one distinct name "
                         "per class")
    if names and data.labels is not None and data.labels.size and int(data.labels.max()) >= len(names):
        raise ValueError(f"{flag}={str(path)!r} array {data.label_array!r} contains {int(data.labels.max())}; allowed: "
                         f"class indices 0..{len(names) - 1} (the file's class_names has {len(names)} names)")
    return data


def calibration_images(flag: str, path: str | os.PathLike, images: str = "images") -> tuple[np.ndarray, str]:
    """Representative images from an ``.npz``: the named array, else ``x_train`` (labels are not needed).

    Returns:
        The uint8 images ``(N, H, W, C)`` and the name of the array they came from.
    """
    arrays = read_npz(flag, path)
    key = images if images in arrays or images != "images" else ("x_train" if "x_train" in arrays else images)
    if key not in arrays:
        raise ValueError(f"{flag}={str(path)!r} has no array {key!r}; allowed: one of "
                         f"{', '.join(sorted(arrays)) or 'none: the file is empty'} (name it with --images NAME), "
                         "or x_train")
    return checks.images(f"{flag}={str(path)!r} array {key!r}", arrays[key]), key


def check_images_fit(flag: str, images: np.ndarray, shape: tuple[int | None, ...] | None) -> None:
    """Images of the ``(H, W, C)`` the model reads (``None`` entries, or no shape, accept any)."""
    if not shape or len(shape) != 3:
        return
    got = tuple(int(d) for d in images.shape[1:])
    if any(want is not None and int(want) != g for want, g in zip(shape, got)):
        want = "x".join("?" if d is None else str(int(d)) for d in shape)
        raise ValueError(f"{flag}: images are {'x'.join(map(str, got))} (H x W x C) but the model reads {want}; "
                         f"allowed: images of the model's input shape")


def check_data_fit(flag: str, data: Samples, io: Any) -> Samples:
    """The data in the model's input order (``io``: its ``ModelIO``; names matched), images of the ``(H, W, C)``
    it reads, other arrays of its input shapes (``None`` entries, or no shape, accept any)."""
    if io.inputs:
        data = data.ordered([t.name for t in io.inputs], flag)
    for spec, array, name in zip(io.inputs or (None,), data.inputs, data.names):
        shape = None if spec is None or spec.shape is None else tuple(spec.shape[1:])
        if array.dtype == np.uint8 and array.ndim == 4:
            check_images_fit(flag, array, shape)
        elif shape is not None and (len(shape) != array.ndim - 1 or any(
                want is not None and want != got for want, got in zip(shape, array.shape[1:]))):
            want = ", ".join("?" if d is None else str(d) for d in shape)
            raise ValueError(f"{flag}: array {name!r} is {tuple(array.shape[1:])} per input but the model reads "
                             f"({want}); allowed: arrays (N, {want}) of the model's input shape")
    return data


def check_labels_fit(flag: str, data: Samples, io: Any) -> None:
    """Class labels that one of the model's ``(N, K)`` outputs can hold (``io``: its ``ModelIO``; no labels, or no
    such output known: nothing to check)."""
    counts = io.class_counts if io is not None else ()
    if not counts or data.labels is None:
        return
    top = int(data.labels.max(initial=0))
    if top >= max(counts):
        said = f"the model has {counts[0]} outputs" if len(counts) == 1 else \
            f"the model's outputs give {', '.join(map(str, counts))} scores"
        raise ValueError(f"{flag}={str(data.path)!r} array {data.label_array!r} contains {top}; allowed: class "
                         f"indices 0..{max(counts) - 1} ({said})")


def model_source(flag: str, path: str, *, signature: str = "serving_default", input_arrays: Any = None,
                 output_arrays: Any = None, input_shapes: Any = None, custom_objects: str | None = None) -> Any:
    """``sources.load_source`` with its messages naming the command-line flag (or argument) they are about."""
    from ..core import sources

    file = Path(path)
    if file.suffix.lower() == ".pb" and file.name != "saved_model.pb" and file.is_file() and not input_arrays:
        raise ValueError(f"{flag}={path!r} is a frozen graph; allowed: with --input_arrays NAMES --output_arrays "
                         "NAMES (and, if the graph does not fix it, --input_shapes)")
    try:
        return sources.load_source(file, signature=signature, input_arrays=input_arrays,
                                   output_arrays=output_arrays, input_shapes=input_shapes,
                                   custom_objects=custom_objects)
    except ValueError as err:
        raise ValueError(flag_message(str(err), flag)) from None


def flag_message(message: str, model_flag: str) -> str:
    """A core message (``model=...``, ``input_arrays: ...``) with the command-line flag's name in front."""
    from ..core.sources import CUSTOM_OBJECTS_HINT

    message = message.replace(CUSTOM_OBJECTS_HINT, "--custom-objects FILE.py")
    if message.startswith("model="):
        return f"{model_flag}={message[len('model='):]}"
    if message.startswith("graph_def_file="):
        return f"{model_flag}={message[len('graph_def_file='):]}"
    if message.startswith("custom_objects="):
        return f"--custom-objects={message[len('custom_objects='):]}"
    for name in ("input_arrays", "output_arrays", "input_shapes", "signature"):
        if message.startswith(name):
            return f"--{name}{message[len(name):]}"
    return f"{model_flag}: {message}"


