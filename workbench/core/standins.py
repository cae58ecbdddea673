"""Offline stand-ins for models that are not labelled image classifiers, trained here and cached.

Each function trains a small Keras model (tf_keras) with no download, saves it as a ``.keras`` file
and writes two ``.npz`` files of held-out data: one with inputs only, one with inputs and labels.

* ``detector_example``: an SSD-style detector of 1-3 scikit-learn digits placed on a 64x64 canvas;
  its two outputs are decoded already: ``boxes (N, A, 4)`` corner boxes ``[ymin, xmin, ymax, xmax]``
  in 0..1 and ``scores (N, A, 11)``, a softmax whose column 0 is the background.
* ``denoiser_example``: an image-to-image conv net that removes Gaussian noise from MNIST digits.
* ``sequence_example``: an LSTM classifier reading MNIST images as 28 rows of 28 floats, saved with
  batch size 1 so the TF2 converter makes it one fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op.

Data format (the arrays others read): ``images`` uint8 ``(N, H, W, C)`` pixels 0..255 (every model
here reads them mapped to 0..1, ``images / 255``), or ``inputs`` float32 ``(N, ...)`` fed as they
are. Labels: ``labels`` int ``(N,)`` for a classifier; ``boxes (N, M, 4)`` float ``[ymin, xmin, ymax,
xmax]`` in 0..1 and ``classes (N, M)`` int, padded with -1, for detection; ``targets`` (the clean
images, uint8) for the denoiser; ``class_names`` where there are classes.

Every file is a cache entry keyed by the function's arguments (``artifacts.entry``): a second call
with the same arguments trains nothing and writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import artifacts, checks

_VERSION = 1  # raise when the training below changes: every stand-in is trained afresh
CANVAS = 64  # detector canvas side, pixels
DIGIT = 16  # a digits image (8x8) scaled up twice
GRID = 8  # detector anchor grid: one 16x16 anchor per 8x8-pixel cell
MAX_OBJECTS = 3


@dataclass(frozen=True)
class StandinFiles:
    """A model file and its held-out data: inputs only (``inputs``) and inputs with labels (``labelled``)."""

    model: Path
    inputs: Path
    labelled: Path


# --- the detector -------------------------------------------------------------------------------

def detector_example(folder: str | os.PathLike | None = None, count: int = 6000, epochs: int = 15,
                     eval_count: int = 300, seed: int = 0,
                     cache: str | os.PathLike | None = None) -> StandinFiles:
    """A small SSD-style digit detector, and canvases to run it on.

    The model reads ``(N, 64, 64, 1)`` floats in 0..1 (``images / 255``; no Rescaling layer). A conv
    backbone (three stride-2 convolutions) ends on an 8x8 grid with one 16x16 anchor per cell (A = 64);
    the box head's ``tanh`` offsets move each anchor corner by at most 8 pixels and the model adds the
    anchors itself, so its outputs are decoded: ``boxes`` ``(N, 64, 4)`` corners in 0..1 and ``scores``
    ``(N, 64, 11)``, softmax over background (column 0) and the digits 0..9 (column ``d + 1``).
    A detection is an anchor whose highest column is not the background. At the defaults it trains in
    about 30-40 s on 2 cores and scores COCO mAP@.5 0.93, mAP@[.5:.95] 0.86 on the 300 held-out canvases.

    Args:
        folder: where to write the files (default: ``examples/`` in the cache folder).
        count: training canvases (each holds 1-3 digits of the training split of ``digits``).
        epochs: training epochs (batch 32).
        eval_count: canvases in the two ``.npz`` files, made of digits the model never saw.
        seed: placement and training seed.
        cache: the artifact folder (default ``$WORKBENCH_CACHE``).

    Returns:
        ``StandinFiles``: the ``.keras`` model; ``images`` uint8 ``(N, 64, 64, 1)``; and the same images with
        ``boxes (N, 3, 4)``, ``classes (N, 3)`` (padded with -1) and ``class_names``.
    """
    params = _params(count=count, epochs=epochs, eval_count=eval_count, seed=seed)

    def arrays() -> tuple[dict, dict]:
        images, boxes, classes = digit_canvases(eval_count, seed + 1, split="test")
        names = np.array([str(d) for d in range(10)])
        return {"images": images}, {"images": images, "boxes": boxes, "classes": classes, "class_names": names}

    return _standin("detector", params, lambda: _train_detector(count, epochs, seed), arrays, folder, cache)


def digit_canvases(count: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` 64x64 uint8 canvases, each with 1-3 digits (16x16, of ``digits``' ``split``) that do not overlap.

    Returns:
        ``images (count, 64, 64, 1)`` uint8, ``boxes (count, 3, 4)`` float32 ``[ymin, xmin, ymax, xmax]``
        in 0..1 and ``classes (count, 3)`` int64, unused rows -1.
    """
    from .data import load_digits

    digits = load_digits()
    pool_images, pool_labels = ((digits.train_images, digits.train_labels) if split == "train"
                                else (digits.test_images, digits.test_labels))
    rng = np.random.default_rng(seed)
    images = np.zeros((count, CANVAS, CANVAS, 1), np.uint8)
    boxes = np.full((count, MAX_OBJECTS, 4), -1.0, np.float32)
    classes = np.full((count, MAX_OBJECTS), -1, np.int64)
    for n in range(count):
        placed: list[tuple[int, int]] = []
        for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
            for _try in range(50):
                y, x = (int(v) for v in rng.integers(0, CANVAS - DIGIT + 1, size=2))
                if all(abs(y - py) >= DIGIT or abs(x - px) >= DIGIT for py, px in placed):
                    break
            else:
                continue
            pick = int(rng.integers(len(pool_images)))
            images[n, y:y + DIGIT, x:x + DIGIT] = np.kron(pool_images[pick], np.ones((2, 2, 1), np.uint8))
            boxes[n, len(placed)] = np.array([y, x, y + DIGIT, x + DIGIT], np.float32) / CANVAS
            classes[n, len(placed)] = pool_labels[pick]
            placed.append((y, x))
    return images, boxes, classes


def anchors() -> np.ndarray:
    """The detector's anchors, ``(64, 4)`` corners in 0..1, row-major over the 8x8 grid."""
    cell = CANVAS // GRID
    centres = (np.arange(GRID) + 0.5) * cell
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    half = DIGIT / 2
    return (np.stack([cy - half, cx - half, cy + half, cx + half], -1).reshape(-1, 4) / CANVAS).astype(np.float32)


def detector_targets(boxes: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor training targets: the box (-1 where no digit) and the class column (0: background).

    Each digit belongs to the anchor whose cell holds its centre; digits that do not overlap never share one.
    """
    n = len(boxes)
    box_t = np.full((n, GRID * GRID, 4), -1.0, np.float32)
    cls_t = np.zeros((n, GRID * GRID), np.int64)
    rows, slots = np.nonzero(classes >= 0)
    centre = (boxes[rows, slots, :2] + boxes[rows, slots, 2:]) / 2
    cell = np.clip((centre * GRID).astype(int), 0, GRID - 1)
    anchor = cell[:, 0] * GRID + cell[:, 1]
    box_t[rows, anchor] = boxes[rows, slots]
    cls_t[rows, anchor] = classes[rows, slots] + 1
    return box_t, cls_t


def detector_model(classes: int = 10):
    """The untrained detector (see ``detector_example``): built-in layers only, outputs ``boxes`` and ``scores``."""
    from .keras_compat import keras

    layers = keras.layers
    inputs = keras.Input((CANVAS, CANVAS, 1), name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4")(x)
    a = GRID * GRID
    raw = layers.Reshape((a, 4), name="box_offsets")(layers.Conv2D(4, 3, padding="same", name="box_head")(x))
    offsets = layers.Activation("tanh", name="box_tanh")(raw)
    # Each corner of an anchor moves by at most half the anchor's side (8 pixels); the anchors are the offset.
    shifted = layers.Rescaling(DIGIT / 2 / CANVAS, offset=anchors().tolist(), name="box_decode")(offsets)
    boxes = layers.ReLU(max_value=1.0, name="boxes")(shifted)
    logits = layers.Reshape((a, classes + 1), name="class_logits")(
        layers.Conv2D(classes + 1, 3, padding="same", name="class_head")(x))
    scores = layers.Softmax(name="scores")(logits)
    return keras.Model(inputs, [boxes, scores], name="digit_detector")


def _train_detector(count: int, epochs: int, seed: int):
    from .keras_compat import keras, tf
    from .train import set_seed

    images, boxes, classes = digit_canvases(count, seed, split="train")
    box_t, cls_t = detector_targets(boxes, classes)

    def box_loss(y_true, y_pred):
        mask = tf.cast(y_true[..., 2] > 0, tf.float32)
        per_anchor = tf.reduce_sum(tf.abs(y_true - y_pred), axis=-1) * mask
        return 20.0 * tf.reduce_sum(per_anchor, -1) / tf.maximum(tf.reduce_sum(mask, -1), 1.0)

    def score_loss(y_true, y_pred):
        y = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:2]), tf.int32)
        ce = keras.losses.sparse_categorical_crossentropy(y, y_pred)
        weight = tf.where(y > 0, 5.0, 1.0)  # a few digits among 64 anchors
        return tf.reduce_sum(ce * weight, -1) / tf.reduce_sum(weight, -1)

    set_seed(seed)
    model = detector_model()
    model.compile(keras.optimizers.Adam(2e-3), loss={"boxes": box_loss, "scores": score_loss})
    model.fit(images.astype(np.float32) / 255.0, {"boxes": box_t, "scores": cls_t}, batch_size=32,
              epochs=epochs, verbose=0, shuffle=True)
    return model


# --- the denoiser -------------------------------------------------------------------------------

NOISE = 0.35  # standard deviation of the added noise, on the 0..1 scale


def denoiser_example(folder: str | os.PathLike | None = None, count: int = 12000, epochs: int = 3,
                     eval_count: int = 300, seed: int = 0,
                     cache: str | os.PathLike | None = None) -> StandinFiles:
    """A conv encoder-decoder that removes Gaussian noise from MNIST digits, and noisy digits to run it on.

    The model reads ``(N, 28, 28, 1)`` floats in 0..1 (``images / 255``; no Rescaling layer) and writes the
    same shape in 0..1 (a sigmoid): the clean image over 255. Noise: Gaussian, standard deviation 0.35 on
    the 0..1 scale, rounded and clipped to uint8. At the defaults it trains in about 22 s on 2 cores and
    raises the PSNR of the 300 held-out digits from 12.1 dB (noisy) to 21.5 dB.

    Args:
        folder, cache, seed: as for ``detector_example``.
        count: noisy training images (MNIST's training split).
        epochs: training epochs (batch 64).
        eval_count: noisy images in the two ``.npz`` files (MNIST's test split).

    Returns:
        ``StandinFiles``: the ``.keras`` model; ``images`` uint8 ``(N, 28, 28, 1)`` (noisy); the same with
        ``targets`` uint8 ``(N, 28, 28, 1)`` (clean).
    """
    params = _params(count=count, epochs=epochs, eval_count=eval_count, seed=seed)

    def arrays() -> tuple[dict, dict]:
        clean = _mnist(cache).test_images[:eval_count]
        noisy = noisy_images(clean, seed + 1)
        return {"images": noisy}, {"images": noisy, "targets": clean}

    return _standin("denoiser", params, lambda: _train_denoiser(count, epochs, seed, cache), arrays, folder, cache)


def noisy_images(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    """``clean`` uint8 images with Gaussian noise (``NOISE`` on the 0..1 scale), rounded and clipped to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE * 255.0, clean.shape)
    return np.clip(np.round(clean.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def denoiser_model():
    """The untrained denoiser (see ``denoiser_example``)."""
    from .keras_compat import keras

    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="enc1")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="enc2")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="mid")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="dec1")(x)
    outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="denoised")(x)
    return keras.Model(inputs, outputs, name="denoiser")


def _train_denoiser(count: int, epochs: int, seed: int, cache):
    from .keras_compat import keras
    from .train import set_seed

    clean = _mnist(cache).train_images[:count]
    set_seed(seed)
    model = denoiser_model()
    model.compile(keras.optimizers.Adam(2e-3), loss="binary_crossentropy")
    model.fit(noisy_images(clean, seed).astype(np.float32) / 255.0, clean.astype(np.float32) / 255.0,
              batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    return model


# --- the sequence classifier --------------------------------------------------------------------

def sequence_example(folder: str | os.PathLike | None = None, count: int = 30000, epochs: int = 4,
                     eval_count: int = 300, units: int = 64, seed: int = 0,
                     cache: str | os.PathLike | None = None) -> StandinFiles:
    """An LSTM classifier of MNIST digits read as sequences of 28 rows of 28 floats, and sequences to run it on.

    The model reads float32 ``(1, 28, 28)`` (time steps, features; pixels / 255, fed as they are) and
    writes ``probs (1, 10)``. It is trained with any batch size, then saved as a copy with the batch fixed
    at 1: with a dynamic batch the TF2 converter cannot turn the Keras LSTM's while-loop into TFLite's
    fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (catalogue entry ``lstm-dynamic-batch``). Keras still predicts
    any batch with it; a ``.tflite`` of it runs one sequence per invoke. At the defaults it trains in
    about 12-22 s on 2 cores and classifies 98 % of the 300 held-out sequences.

    Args:
        folder, cache, seed: as for ``detector_example``.
        count: training sequences (MNIST's training split).
        epochs: training epochs (batch 128).
        eval_count: sequences in the two ``.npz`` files (MNIST's test split).
        units: LSTM units.

    Returns:
        ``StandinFiles``: the ``.keras`` model; ``inputs`` float32 ``(N, 28, 28)``; the same with
        ``labels`` int64 ``(N,)`` and ``class_names``.
    """
    params = _params(count=count, epochs=epochs, eval_count=eval_count, units=units, seed=seed)

    def arrays() -> tuple[dict, dict]:
        mnist = _mnist(cache)
        inputs = mnist_rows(mnist.test_images[:eval_count])
        labels = mnist.test_labels[:eval_count].astype(np.int64)
        names = np.array([str(d) for d in range(10)])
        return {"inputs": inputs}, {"inputs": inputs, "labels": labels, "class_names": names}

    return _standin("sequence", params, lambda: _train_sequence(count, epochs, units, seed, cache), arrays,
                    folder, cache)


def mnist_rows(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST images ``(N, 28, 28[, 1])`` as float32 sequences ``(N, 28, 28)`` in 0..1."""
    return (np.asarray(images, np.float32) / 255.0).reshape(len(images), 28, 28)


def sequence_model(units: int = 64, batch_size: int | None = None):
    """The untrained LSTM classifier (see ``sequence_example``); ``batch_size=1`` for conversion."""
    from .keras_compat import keras

    layers = keras.layers
    inputs = keras.Input((28, 28), batch_size=batch_size, name="rows")
    x = layers.LSTM(units, name="lstm")(inputs)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="lstm_sequence")


def _train_sequence(count: int, epochs: int, units: int, seed: int, cache):
    from .keras_compat import keras
    from .train import set_seed

    mnist = _mnist(cache)
    set_seed(seed)
    model = sequence_model(units)
    model.compile(keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(mnist_rows(mnist.train_images[:count]), mnist.train_labels[:count], batch_size=128,
              epochs=epochs, verbose=0, shuffle=True)
    fixed = sequence_model(units, batch_size=1)
    fixed.set_weights(model.get_weights())
    return fixed


# --- shared -------------------------------------------------------------------------------------

def _params(**params: int) -> dict[str, int]:
    for name, value in params.items():
        checks.number(name, value, low=0 if name == "seed" else 1, integer=True)
    return {name: int(value) for name, value in params.items()}


def _mnist(cache):
    from .data import load_mnist

    return load_mnist(cache=cache)


def _standin(kind: str, params: dict, train: Callable, arrays: Callable[[], tuple[dict, dict]],
             folder, cache) -> StandinFiles:
    """Write (or find) ``kind``'s model and its two data files, each a cache entry keyed by ``params``."""
    from .keras_compat import keras

    target = Path(folder) if folder is not None else artifacts.cache_dir(cache) / "examples"
    key = ("standin", kind, params, _VERSION)
    stem = f"{kind}-{artifacts.config_key(*key)[:12]}"

    def write_model(tmp: Path) -> None:
        trained = train()
        keras.Model(trained.inputs, trained.outputs, name=trained.name).save(str(tmp))  # saved uncompiled

    model = artifacts.entry(target / f"{stem}.keras", write_model, key=key, suffix=".keras")
    made: list[tuple[dict, dict]] = []

    def writer(which: int) -> Callable[[Path], None]:
        def write(tmp: Path) -> None:
            if not made:
                made.append(arrays())
            with open(tmp, "wb") as handle:  # a handle: np.savez would add ".npz" to a temporary name
                np.savez(handle, **made[0][which])
        return write

    inputs = artifacts.entry(target / f"{stem}-inputs.npz", writer(0), key=(*key, "inputs"), suffix=".npz")
    labelled = artifacts.entry(target / f"{stem}-labelled.npz", writer(1), key=(*key, "labelled"), suffix=".npz")
    return StandinFiles(model, inputs, labelled)
