"""A model whose input has ``None`` beyond the batch, fixed to one image shape for conversion.

A fully convolutional classifier is often saved with ``Input((None, None, C))``: it
reads any image size. TFLite needs one: the old ``tflite_convert`` took it from
``--input_shapes``; today's converter accepts the ``None`` sizes but LiteRT cannot
prepare the kernels. ``fixed_input(model, shape)`` gives the same model with its input
fixed to ``(H, W, C)`` (the batch stays free):

* a Keras model (``tf_keras`` or Keras 3): a functional copy with a fixed ``Input`` of the
  same name and the same weights, its layers and their names as in the original
  (``clone_model``; a model Keras cannot clone is called on the fixed ``Input`` instead);
* a SavedModel (``sources.SavedModel`` or its folder): its signature traced at the fixed
  shape and exported once into the artifact cache (``savedmodels/fixed-<key>``), which
  the legacy converter, reading SavedModels only, takes like any other;
* a ``sources.FrozenGraph``: the same graph with ``input_shapes`` set (``--input_shapes``).

``fit_input`` is what ``run_recipes``, ``report`` and ``evaluate`` call: it fixes a
dynamic input to an explicit shape, else to the data's ``H, W, C``, and says so in one
sentence (``input_note``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from .model_io import model_io


class InputFixed(UserWarning):
    """A dynamic input was fixed to the data's shape before conversion (the message says to what)."""


def parse_shape(value: Any, name: str = "input_shape") -> tuple[int, int, int]:
    """``(H, W, C)`` from ``(H, W, C)``, ``(N, H, W, C)`` or the ``tflite_convert`` string ``"N,H,W,C"``.

    The batch number, when given, is checked (a positive integer) and dropped: the batch stays free.
    """
    shown = value
    if isinstance(value, str):
        if ":" in value:
            raise ValueError(f"{name}={shown!r} gives {value.count(':') + 1} shapes; allowed: one shape (the model "
                             "reads one image input), e.g. '1,32,32,3'")
        value = value.split(",")
    try:
        dims = tuple(int(d) for d in value)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) not in (3, 4) or min(dims) < 1:
        raise ValueError(f"{name}={shown!r}; allowed: H,W,C or N,H,W,C of positive sizes, e.g. '1,32,32,3' "
                         "(the batch N stays free)")
    return dims[-3:]


def is_dynamic(model: Any) -> bool:
    """Whether the model's first input has ``None`` beyond the batch (a size the converter cannot fix alone)."""
    shape = model_io(model).input_shape
    return bool(shape) and any(d is None for d in shape)


def shape_text(shape: Sequence[Any]) -> str:
    """A shape as Python writes it, ``None`` for a free size: ``(None, 32, 32, 3)``."""
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ")"


def fixed_input(model: Any, shape: Any, *, cache: str | os.PathLike | None = None) -> Any:
    """``model`` with its input fixed to ``shape`` (``(H, W, C)``, or ``(N, H, W, C)`` / ``"N,H,W,C"``).

    The batch stays free. A model whose input already is that shape is returned as it is.

    Args:
        model: a Keras model (tf_keras or Keras 3), a ``sources.SavedModel`` or SavedModel folder, or a
            ``sources.FrozenGraph``.
        shape: the image shape to fix.
        cache: the artifact cache for a SavedModel's fixed export (default ``$WORKBENCH_CACHE``).

    Returns:
        A Keras model with the same layers and weights, a ``sources.SavedModel`` of the cached fixed export,
        or a ``FrozenGraph`` with ``input_shapes`` set.

    Raises:
        ValueError: a shape of the wrong form, one that changes a size the model already fixes, a model
            of another kind or with more than one input.
    """
    from .sources import FrozenGraph, SavedModel

    hwc = parse_shape(shape)
    if isinstance(model, FrozenGraph):
        if len(model.input_arrays) != 1:
            raise ValueError(f"model has {len(model.input_arrays)} input arrays; allowed: load_source(path, "
                             "input_shapes=...) with one shape per input array")
        return dataclasses.replace(model, input_shapes=((1, *hwc),))
    current = model_io(model).input_shape
    if current is None or len(model_io(model).inputs) != 1:
        raise ValueError(f"model={type(model).__name__} has no single image input to fix; allowed: a Keras model "
                         "or SavedModel with one input (N, H, W, C)")
    if len(current) != 3 or any(d is not None and d != h for d, h in zip(current, hwc)):
        raise ValueError(f"input_shape={shape_text((None, *hwc))} does not fit the model's input "
                         f"{shape_text((None, *current))}; allowed: a shape that fills in only its None sizes")
    if tuple(current) == hwc:
        return model
    if isinstance(model, SavedModel) or isinstance(model, (str, os.PathLike)):
        source = model if isinstance(model, SavedModel) else SavedModel(Path(model))
        return _fixed_saved_model(source, hwc, cache)
    if not hasattr(model, "layers"):
        raise ValueError(f"model={type(model).__name__}; allowed: a Keras model, a SavedModel or a FrozenGraph")
    return _fixed_keras(model, hwc)


def fit_input(model: Any, images_shape: Sequence[int], shape: Any = None, *, data_from: str = "the data",
              shape_from: str = "input_shape", cache: str | os.PathLike | None = None) -> tuple[Any, str | None]:
    """The model ready to convert for images of ``images_shape`` (``(H, W, C)``), and a note when it was fixed.

    An explicit ``shape`` beats the data: the input is fixed to it (named ``shape_from`` in the note). Without
    one, a dynamic input (``is_dynamic``) is fixed to the images' ``H, W, C`` (named ``data_from``); a fixed
    input is left as it is (no note).
    """
    if shape is None and not is_dynamic(model):
        return model, None
    target = parse_shape(shape, shape_from) if shape is not None else parse_shape(tuple(images_shape)[-3:])
    before = model_io(model).inputs[0].shape if model_io(model).inputs else None
    try:
        fixed = fixed_input(model, target, cache=cache)
    except ValueError as err:
        raise ValueError(f"{shape_from}: {err}" if shape is not None else str(err)) from None
    if fixed is model:
        return model, None
    return fixed, input_note(before, target, shape_from if shape is not None else data_from)


def fit_to_images(model: Any, images: Any, cache: str | os.PathLike | None = None) -> Any:
    """``model`` ready to convert for ``images`` (``(N, H, W, C)``): a dynamic input fixed to their ``H, W, C``
    with an ``InputFixed`` warning saying so; anything else (a fixed input, a file path, ``.tflite`` bytes) as
    it is. What ``run_recipes``, sweeps and the explorers do before converting."""
    import warnings

    if isinstance(model, (bytes, bytearray, str, os.PathLike)) or hasattr(model, "tflite"):
        return model
    model, note = fit_input(model, tuple(images.shape[1:]), data_from="the images", cache=cache)
    if note:
        warnings.warn(note, InputFixed, stacklevel=3)
    return model


def input_note(before: Sequence[Any] | None, hwc: Sequence[int], source: str) -> str:
    """``input (None, None, None, 3) fixed to (None, 32, 32, 3) from --data for conversion``."""
    was = shape_text(before) if before else "of unknown shape"
    return f"input {was} fixed to {shape_text((None, *hwc))} from {source} for conversion"


def _fixed_keras(model: Any, hwc: tuple[int, int, int]) -> Any:
    """A copy of a Keras model reading ``(None, *hwc)``: the same layers (cloned, names kept) and weights."""
    from .keras_compat import is_keras3, keras, keras3
    from .sources import is_qat

    k = keras3() if is_keras3(model) else keras
    first = model.inputs[0]
    dtype = getattr(first.dtype, "name", first.dtype)
    name = first.name.split(":")[0]
    scope = contextlib.nullcontext()
    if is_qat(model):  # tfmot's wrappers are rebuilt from their configs inside its scope
        import tensorflow_model_optimization as tfmot

        scope = tfmot.quantization.keras.quantize_scope()
    try:
        with scope:
            copy = k.models.clone_model(model, input_tensors=k.Input(hwc, dtype=dtype, name=name))
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a subclassed or wrapped model Keras cannot clone: call it instead
        inputs = k.Input(hwc, dtype=dtype, name=name)
        copy = k.Model(inputs, model(inputs), name=model.name)
    return copy


def _fixed_saved_model(source: Any, hwc: tuple[int, int, int], cache: str | os.PathLike | None) -> Any:
    """The SavedModel's signature at ``(None, *hwc)``, exported once into the cache; its signature keys kept."""
    from . import artifacts
    from .sources import SavedModel

    key = artifacts.digest(Path(source.path), source.signature, list(hwc))
    folder = artifacts.entry(artifacts.cache_dir(cache) / "savedmodels" / f"fixed-{key}",
                             lambda tmp: _export_fixed(source, hwc, tmp), key=key)
    return SavedModel(folder, "serving_default")


def _export_fixed(source: Any, hwc: tuple[int, int, int], target: Path) -> None:
    from .keras_compat import tf

    loaded = tf.saved_model.load(str(source.path))
    function = loaded.signatures[source.signature]
    _, named = function.structured_input_signature
    (name, spec), = named.items()  # model_io checked: one input
    module = tf.Module()
    module.loaded = loaded  # tracks the variables the signature reads

    @tf.function(input_signature=[tf.TensorSpec((None, *hwc), spec.dtype, name=name)])
    def serve(images):
        return function(**{name: images})

    module.serve = serve
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve.get_concrete_function()})


__all__ = ["InputFixed", "fit_input", "fixed_input", "input_note", "is_dynamic", "parse_shape", "shape_text"]
