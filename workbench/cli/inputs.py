"""What the ``convert``, ``evaluate`` and ``report`` commands read: a model by path, labelled and calibration ``.npz`` files.

Every check here runs before any conversion or evaluation and raises one
``ValueError`` that names the flag, the value and what is allowed, which the
command line prints as one ``error: ...`` line (exit code 2). Arrays are read
with NumPy alone; TensorFlow is imported only when a model has to be loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import checks
from ..core.data import InputSpec, read_npz


@dataclass(frozen=True, eq=False)
class Labelled:
    """Images and labels from an ``.npz``, all of them (no train/test split), and which arrays they came from."""

    path: Path
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    arrays: tuple[str, str]

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        h, w, c = self.images.shape[1:]
        return (f"{self.path.name}: {len(self.images)} images {h}x{w}x{c} ({self.arrays[0]}/{self.arrays[1]}, "
                f"every one of them), {self.classes} classes")


def input_spec(flag: str, value: Any) -> InputSpec:
    """The float range the model was trained on, from ``--input-range LO HI``."""
    try:
        lo, hi = checks.range_pair("range", value)
        return InputSpec(lo, hi)
    except ValueError as err:
        raise ValueError(f"{flag} {' '.join(map(str, value))}: {err}; allowed: LO HI with LO <= 0 <= HI and "
                         "LO < HI, the float range the model was trained on (e.g. 0 1 or -1 1)") from None


def labelled(flag: str, path: str | os.PathLike, images: str = "images", labels: str = "labels") -> Labelled:
    """Every image and label of an ``.npz``: the named pair, else ``x_test``/``y_test`` (a Keras-style file).

    Raises:
        ValueError: a missing or unreadable file, a missing array (the message lists the arrays
            present), images that are not uint8 ``(N, H, W[, C])``, labels that are not one
            integer per image, class names that repeat.
    """
    arrays = read_npz(flag, path)
    if images in arrays or labels in arrays or (images, labels) != ("images", "labels"):
        keys = (images, labels)
    elif {"x_test", "y_test"} <= set(arrays):
        keys = ("x_test", "y_test")
    else:
        keys = (images, labels)
    for role, key in zip(("--images", "--labels"), keys):
        if key not in arrays:
            raise ValueError(f"{flag}={str(path)!r} has no array {key!r} ({role}); allowed: one of "
                             f"{', '.join(sorted(arrays)) or 'none: the file is empty'} (name them with "
                             "--images NAME --labels NAME), or x_test/y_test")
    x = checks.images(f"{flag}={str(path)!r} array {keys[0]!r}", arrays[keys[0]])
    y = checks.labels(f"{flag}={str(path)!r} array {keys[1]!r}", arrays[keys[1]], len(x))
    names = tuple(str(n) for n in np.asarray(arrays.get("class_names", ())).reshape(-1))
    if not names:
        names = tuple(str(i) for i in range(int(y.max(initial=0)) + 1))
    elif len(set(names)) != len(names):
        raise ValueError(f"{flag}={str(path)!r} array 'class_names' repeats a name; allowed: one distinct name "
                         "per class")
    elif y.size and int(y.max()) >= len(names):
        raise ValueError(f"{flag}={str(path)!r} array {keys[1]!r} contains {int(y.max())}; allowed: class "
                         f"indices 0..{len(names) - 1} (the file's class_names has {len(names)} names)")
    return Labelled(Path(path), x, y, names, keys)


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


def check_labels_fit(flag: str, data: Labelled, classes: int | None) -> None:
    """Labels ``0..classes-1`` for a model with ``classes`` outputs."""
    if classes is None:
        return
    top = int(data.labels.max(initial=0))
    if top >= classes:
        raise ValueError(f"{flag}={str(data.path)!r} array {data.arrays[1]!r} contains {top}; allowed: class "
                         f"indices 0..{classes - 1} (the model has {classes} outputs)")


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


