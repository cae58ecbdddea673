"""What every point of a sweep converts (``sweep_source``) and the content hashes that key the point cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core import artifacts
from ..core.converters import keras_saved_model, saved_model_dir
from ..core.sources import KERAS_SUFFIXES, FrozenGraph, SavedModel


def saved_model_folder(model: Any, cache: str | os.PathLike | None = None) -> Path:
    """A SavedModel folder for ``model``: the path itself (checked), or a Keras model exported once into the cache
    (``converters.keras_saved_model``, the export legacy conversions use too).

    Raises:
        ValueError: a path without ``saved_model.pb``, or something that is not a model.
    """
    if isinstance(model, (str, os.PathLike)):
        return saved_model_dir(model)
    if not hasattr(model, "get_weights"):
        raise ValueError(f"model={type(model).__name__}; allowed: a Keras model or a SavedModel folder path")
    return keras_saved_model(model, cache)


def sweep_source(model: Any, cache: str | os.PathLike | None = None) -> Path | SavedModel | FrozenGraph:
    """What every point of a sweep (and every slider move) converts, picklable for worker processes.

    Args:
        model: a Keras model (exported once to a SavedModel folder in the cache), a
            SavedModel folder, a ``sources.SavedModel`` (kept with its signature), a
            ``sources.FrozenGraph``, or the path of a ``.keras``/``.h5`` file (loaded, then exported).

    Returns:
        The folder ``Path``, the ``SavedModel`` of a signature other than ``serving_default``,
        or the ``FrozenGraph``.

    Raises:
        ValueError: a ``.tflite`` (bytes, a ``ConvertedModel`` or a file: there is nothing left
            to convert), a frozen ``.pb`` path without its arrays, or anything that is not a model.
    """
    if isinstance(model, FrozenGraph):
        return model
    if isinstance(model, SavedModel):
        folder = saved_model_folder(model.path)
        return folder if model.signature == "serving_default" else SavedModel(folder, model.signature)
    if is_tflite(model):
        raise ValueError("model is a .tflite: it has nothing left to convert; allowed: the model it was converted "
                         "from (a Keras model or .keras/.h5 file, a SavedModel folder, a frozen .pb as "
                         "sources.load_source(path, input_arrays=..., output_arrays=...))")
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() in (*KERAS_SUFFIXES, ".pb") \
            and Path(model).is_file() and Path(model).name != "saved_model.pb":
        from ..core.sources import load_source

        return sweep_source(load_source(model), cache)  # a frozen .pb without arrays: load_source says so
    return saved_model_folder(model, cache)


def is_tflite(model: Any) -> bool:
    """Whether ``model`` is a converted model (bytes, a ``ConvertedModel``, a ``.tflite`` path): nothing to convert."""
    return isinstance(model, (bytes, bytearray)) or hasattr(model, "tflite") or (
        isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".tflite")


def source_fingerprint(source: Any) -> str:
    """A content hash of what ``sweep_source`` returned (files, signature, arrays and shapes)."""
    if isinstance(source, FrozenGraph):
        return artifacts.digest(Path(source.path), source.input_arrays, source.output_arrays, source.input_shapes)
    if isinstance(source, SavedModel):
        return artifacts.digest(folder_fingerprint(source.path), source.signature)
    return folder_fingerprint(source)


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A content hash of every file in a folder (a SavedModel is a few hundred KB)."""
    return artifacts.digest(Path(folder))


def array_fingerprint(*arrays: np.ndarray | None) -> str:
    """A content hash of arrays (shape, dtype and bytes; ``None`` entries allowed)."""
    return artifacts.digest(*(None if a is None else np.asarray(a) for a in arrays))
