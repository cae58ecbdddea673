"""The built-in architectures (LeNet-5, a small MobileNet-style net) and the gallery's variants.

LeNet and the MobileNet-style net take any ``(H, W, C)`` and class count; the
gallery's variants take MNIST's ``(N, 28, 28, 1)``. All read float images in the
``InputSpec`` range and end in a softmax. The batch dimension is the only
dynamic one, as TFLite prefers, except in ``any_size_net(fixed=False)``, which
exists to show what happens otherwise.
"""

from __future__ import annotations

from .keras_compat import keras

IMAGE_SHAPE = (28, 28, 1)


def lenet(batchnorm: bool = False, name: str = "lenet", input_shape: tuple[int, int, int] = IMAGE_SHAPE,
          classes: int = 10) -> keras.Model:
    """LeNet-5: conv 5x5x6, pool, conv 5x5x16, pool, dense 120, 84, ``classes``.

    Args:
        batchnorm: put a BatchNormalization between each conv and its ReLU
            (Conv -> BN -> ReLU, the layout tfmot folds for QAT).
        name: the Keras model name.
        input_shape: ``(H, W, C)``; the second conv keeps LeNet's "valid" padding when
            the image is at least 20 pixels on each side, "same" below (8x8 digits).
        classes: outputs of the softmax.
    """
    input_shape, classes = _shape_and_classes(input_shape, classes)
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    second = "valid" if min(input_shape[:2]) >= 20 else "same"
    for i, (filters, padding) in enumerate([(6, "same"), (16, second)], start=1):
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
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def mobilenet_style(input_shape: tuple[int, int, int] = IMAGE_SHAPE, classes: int = 10, width: int = 16,
                    name: str = "mobilenet_style") -> keras.Model:
    """A small MobileNet-style net: a 3x3 conv, three depthwise-separable blocks, global average pooling.

    Every convolution is followed by BatchNormalization and ReLU6 (Conv -> BN -> ReLU6,
    the layout tfmot folds for QAT). Strides of 2 are used while the feature map is at
    least 8 pixels on each side, so any ``H, W >= 1`` works.

    Args:
        input_shape: ``(H, W, C)``.
        classes: outputs of the softmax.
        width: filters of the first conv; the blocks use 2x, 4x and 4x as many.
        name: the Keras model name.
    """
    input_shape, classes = _shape_and_classes(input_shape, classes)
    width = int(width)
    if width < 1:
        raise ValueError(f"width={width!r}; allowed: a whole number >= 1")
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    size = min(input_shape[:2])

    def stride() -> int:
        nonlocal size
        if size >= 8:
            size = (size + 1) // 2
            return 2
        return 1

    x = layers.Conv2D(width, 3, strides=stride(), padding="same", use_bias=False, name="conv0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = layers.ReLU(6.0, name="relu0")(x)
    for i, filters in enumerate((2 * width, 4 * width, 4 * width), start=1):
        x = layers.DepthwiseConv2D(3, strides=stride(), padding="same", use_bias=False, name=f"dw{i}")(x)
        x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dw{i}_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}")(x)
        x = layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"pw{i}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of a single-chain model with each BatchNormalization folded into the convolution before it.

    ``y = gamma (conv(x) - mean) / sqrt(var + eps) + beta`` becomes a convolution with
    weights scaled per output channel and a bias: the same function at inference, with
    no BN layer left for the legacy uint8 converter to leave in float.

    Raises:
        ValueError: a BatchNormalization that does not directly follow a Conv2D or
            DepthwiseConv2D, or a model that is not a single chain.
    """
    import numpy as np

    layers = keras.layers
    chain = model.layers[1:]
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x, folded_weights = inputs, {}
    i = 0
    while i < len(chain):
        layer = chain[i]
        following = chain[i + 1] if i + 1 < len(chain) else None
        if isinstance(layer, layers.BatchNormalization):
            raise ValueError(f"layer {layer.name!r} is a BatchNormalization that follows "
                             f"{type(chain[i - 1]).__name__ if i else 'the input'}; allowed: BN right after a "
                             "Conv2D or DepthwiseConv2D")
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and isinstance(following,
                                                                                     layers.BatchNormalization):
            config = {**layer.get_config(), "use_bias": True}
            new = type(layer).from_config(config)
            x = new(x)
            kernel = layer.get_weights()[0]
            bias = layer.get_weights()[1] if layer.use_bias else np.zeros(kernel.shape[-1] if isinstance(
                layer, layers.Conv2D) else kernel.shape[2] * kernel.shape[3], kernel.dtype)
            gamma, beta, mean, var = following.get_weights()
            factor = gamma / np.sqrt(var + following.epsilon)
            if isinstance(layer, layers.DepthwiseConv2D):
                kernel = kernel * factor.reshape(kernel.shape[2], kernel.shape[3])
            else:
                kernel = kernel * factor
            folded_weights[new.name] = [kernel.astype(np.float32), ((bias - mean) * factor + beta).astype(np.float32)]
            i += 2
            continue
        new = type(layer).from_config(layer.get_config())
        x = new(x)
        folded_weights[new.name] = layer.get_weights()
        i += 1
    folded = keras.Model(inputs, x, name=f"{model.name}_bn_folded")
    for layer in folded.layers[1:]:
        layer.set_weights(folded_weights[layer.name])
    return folded


def has_batchnorm(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def _shape_and_classes(input_shape, classes) -> tuple[tuple[int, int, int], int]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape={input_shape!r}; allowed: (height, width, channels), each >= 1")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes={classes!r}; allowed: a whole number >= 2")
    return shape, classes


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
