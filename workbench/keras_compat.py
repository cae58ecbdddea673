"""The single place where Keras is chosen.

tensorflow-model-optimization only understands Keras 2 (the ``tf_keras``
package); TensorFlow 2.16+ defaults to Keras 3. Setting ``TF_USE_LEGACY_KERAS``
before TensorFlow is imported makes ``tf.keras`` and ``tf_keras`` the same
library, so models built here can go through tfmot and the TFLite converter.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

# The v1 converter and SavedModel export log pages of deprecation notices.
tf.get_logger().setLevel("ERROR")
try:
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
except ImportError:  # absl ships with TensorFlow; be lenient anyway
    pass

__all__ = ["keras", "tf"]
