"""The single place where Keras is chosen.

tensorflow-model-optimization only understands Keras 2 (the ``tf_keras``
package); TensorFlow 2.16+ defaults to Keras 3. Setting ``TF_USE_LEGACY_KERAS``
before TensorFlow is imported makes ``tf.keras`` and ``tf_keras`` the same
library, so models built here can go through tfmot and the TFLite converter.
It also imports TensorFlow quietly: its irrelevant native start-up notices are
dropped (``native_log``), its Python loggers set to errors only.
"""

from __future__ import annotations

import os

from .native_log import native_stderr

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow's libraries log their start-up notices (oneDNN, CUDA drivers, cuInit) before they read
# TF_CPP_MIN_LOG_LEVEL: import them, and let them look for devices, with those lines dropped.
with native_stderr():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices()

# The v1 converter and SavedModel export log pages of deprecation notices.
tf.get_logger().setLevel("ERROR")
try:
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
except ImportError:  # absl ships with TensorFlow; be lenient anyway
    pass

__all__ = ["keras", "tf"]


def quiet_v1_converter(converter):
    """Silence a ``tf.compat.v1`` TFLite converter's per-node source-location output.

    The v1 converter's private ``_debug_info_func`` only adds a stderr line per
    node for Keras graphs; TF has no public switch for it.
    """
    converter._debug_info_func = None  # noqa: SLF001
    return converter


def saved_model_proto():
    """The ``SavedModel`` protobuf message (what ``saved_model.pb`` holds); TF gives it no public path."""
    from tensorflow.core.protobuf import saved_model_pb2

    return saved_model_pb2.SavedModel


def tflite_calibrator():
    """TensorFlow's TFLite ``Calibrator`` module (internal: ``shared_calibration`` wraps two of its methods)."""
    from tensorflow.lite.python.optimize import calibrator

    return calibrator


def freeze_function(function):
    """A concrete function with its variables turned into constants (TF's helper has no public alias)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(function)


def optimize_for_inference(graph_def, inputs: list[str], outputs: list[str], dtype_enum: int):
    """TF1's ``optimize_for_inference`` on a GraphDef; the tool was never given a public path."""
    from tensorflow.python.tools import optimize_for_inference_lib

    return optimize_for_inference_lib.optimize_for_inference(graph_def, inputs, outputs, dtype_enum)


def input_layer_names(model) -> set[str]:
    """The names of a functional Keras model's input layers (tf_keras keeps them in ``_input_layers``)."""
    return {layer.name for layer in model._input_layers}  # noqa: SLF001


def n_bit_quantize_scheme(**kwargs):
    """tfmot's N-bit QAT scheme; it lives only under tfmot's private ``python.core`` path."""
    from tensorflow_model_optimization.python.core.quantization.keras.experimental.default_n_bit import (
        default_n_bit_quantize_scheme as n_bit)

    return n_bit.DefaultNBitQuantizeScheme(**kwargs)


def keras3():
    """The Keras 3 package (``import keras``): what today's tutorials save with; imported on first use."""
    with native_stderr():
        import keras as keras_3

    return keras_3


def is_keras3(model) -> bool:
    """Whether ``model`` is a Keras 3 model (``import keras``) rather than a tf_keras (Keras 2) one."""
    return type(model).__module__.split(".")[0] == "keras" and hasattr(model, "layers")
