"""LeNet-5 and the few variants the troubleshooting gallery needs.

All models take float images ``(N, 28, 28, 1)`` in the ``InputSpec`` range and
end in a softmax over the ten digits. The batch dimension is the only
dynamic one, as TFLite prefers, except in ``any_size_net(fixed=False)``, which
exists to show what happens otherwise.
"""

from __future__ import annotations

from .keras_compat import keras

IMAGE_SHAPE = (28, 28, 1)


def lenet(batchnorm: bool = False, name: str = "lenet") -> keras.Model:
    """LeNet-5: conv 5x5x6, pool, conv 5x5x16, pool, dense 120, 84, 10.

    Args:
        batchnorm: put a BatchNormalization between each conv and its ReLU
            (Conv -> BN -> ReLU, the layout tfmot folds for QAT).
        name: the Keras model name.
    """
    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs
    for i, (filters, padding) in enumerate([(6, "same"), (16, "valid")], start=1):
        if batchnorm:
            x = layers.Conv2D(filters, 5, padding=padding, use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(filters, 5, padding=padding, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


# --- variants for the troubleshooting gallery (notebook 07) -----------------------------------

class InstanceNorm(keras.layers.Layer):
    """Instance normalization written out as in style-transfer code of the TOCO era.

    ``rewritten=False``: ``(x - mean) / sqrt(mean(square(x - mean)) + eps)`` (ops MEAN,
    SUB, SQUARE, ADD, SQRT, DIV). ``rewritten=True``: ``(x - mean) * rsqrt(var + eps)``,
    the same arithmetic with ops that have integer kernels.
    """

    def __init__(self, rewritten: bool = False, epsilon: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rewritten = rewritten
        self.epsilon = epsilon

    def call(self, x):
        from .keras_compat import tf

        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        centred = x - mean
        var = tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True)
        if self.rewritten:
            return centred * tf.math.rsqrt(var + self.epsilon)
        return tf.math.divide(centred, tf.sqrt(var + self.epsilon))

    def get_config(self) -> dict:
        return {**super().get_config(), "rewritten": self.rewritten, "epsilon": self.epsilon}


class PixelCast(keras.layers.Layer):
    """Round the image to whole pixel codes through an integer ``tf.cast`` and back."""

    def call(self, x):
        from .keras_compat import tf

        codes = tf.cast(tf.round(x * 255.0), tf.int32)
        return tf.cast(codes, tf.float32) / 255.0


def instance_norm_net(rewritten: bool = False, name: str = "instance_norm_net") -> keras.Model:
    """A small conv net with a style-transfer instance-norm block: conv -> IN -> ReLU -> pool -> dense.

    Args:
        rewritten: use the rsqrt form of the normalization (see ``InstanceNorm``).
    """
    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = InstanceNorm(rewritten, name="inorm1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(4, name="pool1")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def cast_net(name: str = "cast_net") -> keras.Model:
    """LeNet-like net whose first step is a ``tf.cast`` round trip (``PixelCast``)."""
    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = PixelCast(name="pixel_cast")(inputs)
    x = layers.Conv2D(8, 5, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(4, name="pool1")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def lenet_bn(layout: str = "conv-bn-relu", momentum: float = 0.9, name: str | None = None) -> keras.Model:
    """LeNet with a BatchNormalization after each conv, in one of two layouts.

    Args:
        layout: ``"conv-bn-relu"`` (BN between conv and ReLU: folds into the conv
            for QAT and conversion) or ``"conv-relu-bn"`` (BN after the ReLU: cannot
            fold, so it stays a separate MUL and ADD).
        momentum: BN moving-average momentum (0.9 settles within a short run).
        name: the Keras model name (default: from the layout).
    """
    if layout not in BN_LAYOUTS:
        raise ValueError(f"layout={layout!r}; allowed: {', '.join(BN_LAYOUTS)}")
    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs
    for i, (filters, padding) in enumerate([(6, "same"), (16, "valid")], start=1):
        if layout == "conv-bn-relu":
            x = layers.Conv2D(filters, 5, padding=padding, use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(momentum=momentum, name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(filters, 5, padding=padding, activation="relu", name=f"conv{i}")(x)
            x = layers.BatchNormalization(momentum=momentum, name=f"bn{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name or "lenet_" + layout.replace("-", "_"))


BN_LAYOUTS = ("conv-bn-relu", "conv-relu-bn")


def lstm_rows(units: int = 32, name: str = "lstm_rows") -> keras.Model:
    """An LSTM reading an MNIST image as 28 time steps of 28-pixel rows."""
    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Reshape((28, 28), name="rows")(inputs)
    x = layers.LSTM(units, name="lstm")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def any_size_net(fixed: bool = False, name: str = "any_size_net") -> keras.Model:
    """A fully convolutional classifier: conv, conv, global max pool, dense.

    Args:
        fixed: ``False`` declares the input as ``(None, None, 1)`` (any height and
            width, the dynamic shape TOCO refused); ``True`` fixes it at 28x28.
            Both have the same weights, so one can be loaded into the other.
    """
    layers = keras.layers
    shape = IMAGE_SHAPE if fixed else (None, None, 1)
    inputs = keras.Input(shape, name="image")
    x = layers.Conv2D(16, 5, strides=2, activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


VARIANTS = {
    "lenet": lenet,
    "lenet-bn": lenet_bn,
    "lenet-bn-after-relu": lambda: lenet_bn("conv-relu-bn"),
    "instance-norm": instance_norm_net,
    "instance-norm-rewritten": lambda: instance_norm_net(rewritten=True),
    "cast": cast_net,
    "lstm": lstm_rows,
    "any-size": any_size_net,
    "fixed-size": lambda: any_size_net(fixed=True),
}
