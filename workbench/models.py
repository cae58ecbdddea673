"""LeNet-5 and the few variants the troubleshooting gallery needs.

All models take float images ``(N, 28, 28, 1)`` in the ``InputSpec`` range and
end in a softmax over the ten digits. The batch dimension is the only
dynamic one, as TFLite prefers.
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
