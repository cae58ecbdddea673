"""What a Keras model says about itself: which Keras built it, what it does to its input, its layer outputs.

Works alike for ``tf_keras`` (Keras 2) models and Keras 3 (``import keras``) models:

* ``keras_of(model)``: the Keras package that built the model (a probe model must be built with it);
* ``layer_outputs(model, names, x)``: the outputs of the named layers on ``x``, one array each;
* ``reads_raw_pixels(model)`` / ``input_range_note(model)`` / ``input_spec_for(model)``: a model that
  starts with ``Rescaling`` (e.g. ``1/255``) or an adapted ``Normalization`` scales its input itself, so it
  reads raw pixels 0..255 (``InputSpec(0, 255)``); the augmentation layers in front of it (``RandomFlip``,
  ``RandomRotation``, ...) do nothing at inference and are skipped;
* ``qat_refusal(model)``: why tfmot's QAT does not take a model, in one sentence (``None`` when it does).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .data import InputSpec

RAW_PIXELS = InputSpec(0.0, 255.0)
# A Rescaling maps 0..255 onto at most this width (1/255: 1, 1/127.5 with offset -1: 2); wider: not raw pixels.
_RESCALED_WIDTH = 4.0


def keras_of(model: Any):
    """The Keras package that built ``model``: Keras 3 (``import keras``) or ``tf_keras``."""
    from .keras_compat import is_keras3, keras, keras3

    return keras3() if is_keras3(model) else keras


def layer_outputs(model: Any, names: Sequence[str], x: np.ndarray, batch_size: int = 512) -> list[np.ndarray]:
    """The outputs of the layers ``names`` of ``model`` on the float inputs ``x`` (inference mode), one array each."""
    k = keras_of(model)
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe.predict(x, batch_size=batch_size, verbose=0)
    return [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


def first_layer(model: Any) -> Any | None:
    """The first layer that acts on the input at inference: input layers and augmentation (``Random*``) skipped."""
    for layer in getattr(model, "layers", ()):
        name = type(layer).__name__
        if name == "InputLayer" or name.startswith("Random"):
            continue
        return layer
    return None


def reads_raw_pixels(model: Any) -> bool:
    """Whether the model scales its input itself, so it reads raw pixels 0..255.

    True when its first layer (``first_layer``) is a ``Rescaling`` that maps 0..255 onto a range at most
    4 wide (``1/255``, ``1/127.5`` with offset ``-1``) or a ``Normalization`` whose mean is above 1 (adapted
    on raw pixels). A model known only as a SavedModel, frozen graph or ``.tflite`` has no layers: False.
    """
    layer = first_layer(model)
    name = type(layer).__name__ if layer is not None else ""
    if name == "Rescaling":
        scale = np.abs(np.asarray(layer.scale, dtype=np.float64))
        return bool(scale.size and 255.0 * scale.max() <= _RESCALED_WIDTH)
    if name == "Normalization":
        mean = getattr(layer, "mean", None)
        if mean is None:
            mean = layer.get_config().get("mean")
        return mean is not None and bool(np.max(np.asarray(mean, dtype=np.float64)) > 1.0)
    return False


def input_range_note(model: Any) -> str | None:
    """The sentence that says the model reads 0..255 and why (``reads_raw_pixels``), else ``None``."""
    if not reads_raw_pixels(model):
        return None
    layer = first_layer(model)
    return (f"the model starts with {type(layer).__name__} ({layer.name!r}): it scales its input itself and "
            "reads raw pixels, input range 0..255")


def input_spec_for(model: Any, given: InputSpec | None = None) -> tuple[InputSpec, str | None]:
    """The input range to feed ``model`` with, and a note when the model chose it.

    ``given`` (the user's ``--input-range`` or ``spec=``) wins; without it a model that reads raw pixels
    gets 0..255 (with the note saying so), any other model the default 0..1 (no note).
    """
    if given is not None:
        return given, None
    note = input_range_note(model)
    return (RAW_PIXELS, note + " (used since no input range was given)") if note else (InputSpec(), None)


def qat_refusal(model: Any) -> str | None:
    """Why tfmot's quantization-aware training does not take ``model``, in one sentence; ``None`` when it does."""
    from .keras_compat import is_keras3

    if not is_keras3(model):
        return None
    return ("QAT (tfmot) wraps tf_keras models only and this model was built with Keras 3: rebuild it with "
            "tf_keras (import tf_keras as keras) and train it again, or use a post-training recipe "
            "(int8-ptq, or legacy-uint8 with default_ranges)")
