"""Float training and quantization-aware training (QAT) of LeNet.

Two QAT schemes:

* ``int8`` — tfmot's default: per-channel conv weights and a learned input
  range (an input ``QuantizeLayer``). Converts to int8 with the TF2 converter.
* ``uint8-legacy`` — per-tensor weights and, by default, no input quantizer,
  like TF1's ``create_training_graph``: the converter's ``quantized_input_stats``
  then define how input bytes are read. ``learned_input_range=True`` keeps an
  input quantizer (and the converter will ignore the stats).

``bits`` (2-8) simulates lower precision with fake-quant; TFLite kernels still
run 8-bit. ``delay_steps`` is TF1's ``quant_delay``: the QAT budget's first N
training steps run without fake-quant (the float model trains on), the rest with
it, so a delayed run sees exactly the images an undelayed one sees.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import artifacts, checks
from .data import InputSpec, Mnist
from .keras_compat import input_layer_names, keras
from .models import fold_batchnorm, has_batchnorm, lenet, mobilenet_style

QAT_SCHEMES = ("int8", "uint8-legacy")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs, batch size, how many training images, seed, learning rate."""

    epochs: int = 1
    batch_size: int = 128
    train_size: int | None = None
    seed: int = 0
    learning_rate: float = 1e-3
    spec: InputSpec = InputSpec()
    batchnorm: bool = False

    def __post_init__(self) -> None:
        checks.number("epochs", self.epochs, low=0, integer=True)
        checks.number("batch_size", self.batch_size, low=1, integer=True)
        if self.train_size is not None:
            checks.number("train_size", self.train_size, low=1, integer=True)
        checks.number("seed", self.seed, low=0, integer=True)
        checks.number("learning_rate", self.learning_rate, low=0, low_open=True)


@dataclass(frozen=True)
class QatConfig:
    """Which QAT scheme, how many simulated bits, and whether the input range is learned.

    ``learned_input_range=None`` means the scheme's default: learned for
    ``int8``, not learned for ``uint8-legacy``. ``delay_steps`` (TF1's
    ``quant_delay``): how many of the ``epochs`` worth of training steps run in
    float before fake-quant starts (0: from the first step). It is part of the
    cache key only when it is not 0, so undelayed models keep their cached weights.
    """

    scheme: str = "int8"
    bits: int = 8
    learned_input_range: bool | None = None
    epochs: int = 1
    delay_steps: int = field(default=0, metadata={"key": "omit-default"})

    def __post_init__(self) -> None:
        checks.choice("scheme", self.scheme, QAT_SCHEMES)
        if self.learned_input_range is not None and not isinstance(self.learned_input_range, bool):
            raise ValueError(f"learned_input_range={self.learned_input_range!r}; allowed: True, False or None "
                             "(the scheme's default)")
        checks.number("bits", self.bits, low=2, high=8, integer=True)
        checks.number("epochs", self.epochs, low=0, integer=True)
        checks.number("delay_steps", self.delay_steps, low=0, integer=True)

    @property
    def input_quantizer(self) -> bool:
        if self.learned_input_range is None:
            return self.scheme == "int8"
        return bool(self.learned_input_range)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow for a repeatable run."""
    keras.utils.set_random_seed(int(seed))


def quantize_model(float_model: keras.Model, qat: QatConfig = QatConfig()) -> keras.Model:
    """Wrap a trained float model with fake-quant for QAT (weights carried over).

    Raises:
        ValueError: a Keras 3 model (tfmot wraps tf_keras models only; the message says what to do instead).
    """
    import tensorflow_model_optimization as tfmot

    from .keras_compat import n_bit_quantize_scheme

    check_qat_model(float_model)
    per_tensor = qat.scheme == "uint8-legacy"
    if qat.bits == 8:
        scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme(disable_per_axis=per_tensor)
    else:
        scheme = n_bit_quantize_scheme(
            disable_per_axis=per_tensor, num_bits_weight=qat.bits, num_bits_activation=qat.bits)
    if not qat.input_quantizer:
        scheme = _WithoutInputQuantizer(scheme)
    annotated = tfmot.quantization.keras.quantize_annotate_model(float_model)
    return tfmot.quantization.keras.quantize_apply(annotated, scheme)


def check_qat_model(model) -> None:
    """Refuse a model tfmot cannot wrap (a Keras 3 one) with the sentence that says why and what to do instead.

    Raises:
        ValueError: ``model_facts.qat_refusal``'s sentence.
    """
    from .model_facts import qat_refusal

    refusal = qat_refusal(model)
    if refusal is not None:
        raise ValueError(refusal)


def train_qat(float_model: keras.Model, data: Mnist, qat: QatConfig = QatConfig(),
              config: TrainConfig = TrainConfig(), progress: bool = False) -> keras.Model:
    """Fine-tune a QAT copy of ``float_model`` for ``qat.epochs`` epochs and return it.

    With ``qat.delay_steps`` the first steps of that budget train a float copy first
    (``quant_delay``); fake-quant is then applied and the remaining steps train with it.
    Each phase starts its own Adam optimizer (TF1 kept one optimizer across the delay).

    Raises:
        ValueError: ``delay_steps`` not below the budget's number of steps, or a Keras 3 model
            (``check_qat_model``).
    """
    check_qat_model(float_model)
    set_seed(config.seed + 1)
    if not qat.delay_steps:
        model = quantize_model(float_model, qat)
        fit(model, data, config, epochs=qat.epochs, progress=progress, desc=f"QAT {qat.scheme}")
        return model
    total = qat_steps(data, config, qat)
    if qat.delay_steps >= total:
        raise ValueError(f"delay_steps={qat.delay_steps}; allowed: 0 to {total - 1} (the QAT budget is "
                         f"{qat.epochs} epoch(s) of {total // max(qat.epochs, 1)} steps)")
    x, y = _training_arrays(data, config)
    rng = np.random.default_rng(config.seed + 1)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(qat.epochs)])
    split = qat.delay_steps * config.batch_size
    warm = keras.models.clone_model(float_model)
    warm.set_weights(float_model.get_weights())
    _fit_once(warm, x[order[:split]], y[order[:split]], config)
    model = quantize_model(warm, qat)
    _fit_once(model, x[order[split:]], y[order[split:]], config)
    return model


def qat_steps(data: Mnist, config: TrainConfig, qat: QatConfig) -> int:
    """How many training steps (batches) a QAT run of ``qat.epochs`` epochs takes."""
    n = len(data.train_images) if config.train_size is None else min(config.train_size, len(data.train_images))
    return qat.epochs * int(np.ceil(n / config.batch_size))


def _training_arrays(data: Mnist, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    images, labels = data.train_images, data.train_labels
    if config.train_size is not None:
        images, labels = images[: config.train_size], labels[: config.train_size]
    return config.spec.normalize(images), labels


def _fit_once(model: keras.Model, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> None:
    """One pass over ``x`` in the given order (the caller shuffled it), compiled as ``fit`` compiles."""
    fit(model, None, config, epochs=0)
    if len(x):
        model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=False)


def fit(model: keras.Model, data: Mnist, config: TrainConfig, epochs: int,
        progress: bool = False, desc: str = "train") -> None:
    """Compile and fit ``model`` on ``data`` per ``config`` (Adam, cross-entropy)."""
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if epochs == 0:
        return
    x, labels = _training_arrays(data, config)
    callbacks = [_TqdmBar(desc, epochs, int(np.ceil(len(x) / config.batch_size)))] if progress else []
    model.fit(x, labels, batch_size=config.batch_size, epochs=epochs, verbose=0,
              shuffle=True, callbacks=callbacks)


def trained_lenet(data: Mnist, config: TrainConfig = TrainConfig(), qat: QatConfig | None = None,
                  cache: str | os.PathLike | None = None, progress: bool = False) -> keras.Model:
    """A trained float (``qat=None``) or QAT LeNet, loaded from the cache when it exists.

    The cache key covers the training config, the QAT config and a fingerprint
    of the data, so a change in any of them trains afresh.
    """
    return trained_model(lambda: lenet(batchnorm=config.batchnorm, input_shape=data.image_shape,
                                       classes=data.classes), "lenet", data, config, qat, cache, progress)


def trained_mobilenet(data: Mnist, config: TrainConfig = TrainConfig(), qat: QatConfig | None = None,
                      cache: str | os.PathLike | None = None, progress: bool = False) -> keras.Model:
    """A trained float or QAT MobileNet-style net (``models.mobilenet_style``) for the data's shape and classes.

    The ``int8`` scheme folds each BatchNormalization into its convolution during QAT
    (tfmot's Conv -> BN -> ReLU6 pattern). For ``uint8-legacy`` the BatchNorms are
    folded into the convolutions *before* QAT (``models.fold_batchnorm``), because the
    legacy uint8 converter leaves an unfolded BatchNorm's outputs in float; a
    ``TrainingNote`` warning says so.
    """
    def prepare(base: keras.Model, q: QatConfig) -> keras.Model:
        if q.scheme != "uint8-legacy" or not has_batchnorm(base):
            return base
        warnings.warn("uint8-legacy QAT of the MobileNet-style net: BatchNormalization folded into the "
                      "convolutions before QAT (the legacy uint8 converter leaves an unfolded BN in float) and "
                      "weights quantized per tensor (its uint8 kernels refuse per-channel)", TrainingNote,
                      stacklevel=3)
        return fold_batchnorm(base)

    return trained_model(lambda: mobilenet_style(data.image_shape, data.classes), "mobilenet", data, config, qat,
                         cache, progress, prepare=prepare)


class TrainingNote(UserWarning):
    """Something the workbench did to a model so that a recipe works, said out loud."""


def trained_model(build: Callable[[], keras.Model], name: str, data: Mnist, config: TrainConfig = TrainConfig(),
                  qat: QatConfig | None = None, cache: str | os.PathLike | None = None,
                  progress: bool = False,
                  prepare: Callable[[keras.Model, QatConfig], keras.Model] | None = None) -> keras.Model:
    """Train ``build()`` (and, with ``qat``, fine-tune a QAT copy of it), cached by configuration.

    Args:
        build: returns a fresh, untrained Keras model.
        name: names the model in the cache key and file name (``"lenet"``, a variant name).
        data, config: what to train on and how.
        qat: fine-tune a QAT copy of the trained float model with this config.
        cache: cache folder (default ``$WORKBENCH_CACHE``).
        progress: show a progress bar while training.
        prepare: turns the trained float model into the one QAT wraps (e.g. BatchNorm folded).

    Returns:
        The compiled, trained Keras model. Weights are written atomically; an
        unreadable cache entry is retrained, never trusted.
    """
    key_parts = (config, qat, data_fingerprint(data)) if name == "lenet" else (name, config, qat, data_fingerprint(data))
    kind = "float" if qat is None else f"qat-{qat.scheme}-{qat.bits}b" + (f"-delay{qat.delay_steps}"
                                                                           if qat.delay_steps else "")
    weights = artifacts.cache_dir(cache) / "models" / f"{name}-{kind}-{artifacts.config_key(*key_parts)}.weights.h5"
    if qat is None:
        model = build()
    else:
        base = trained_model(build, name, data, config, None, cache, progress)
        if prepare is not None:
            base = prepare(base, qat)
        model = quantize_model(base, qat)
    def train() -> keras.Model:
        if qat is None:
            set_seed(config.seed)
            fresh = build()
            fit(fresh, data, config, epochs=config.epochs, progress=progress, desc=name)
            return fresh
        return train_qat(base, data, qat, config, progress)

    return _cached_weights(model, weights, key_parts, train, data, config)


def _cached_weights(model: keras.Model, weights: os.PathLike, key_parts: tuple, train: Callable[[], keras.Model],
                    data: Mnist, config: TrainConfig) -> keras.Model:
    """``model`` with the weights of the cache entry ``weights``; ``train()`` (a trained model) fills a missing or
    unreadable entry, once across processes (``artifacts.entry``)."""
    if artifacts.valid_entry(weights, key_parts):
        try:
            model.load_weights(str(weights))
            fit(model, data, config, epochs=0)  # compiled, ready for evaluate()
            return model
        except Exception as err:  # noqa: BLE001 - an unreadable entry is retrained, never trusted
            warnings.warn(f"cache entry {os.path.basename(weights)} matched its manifest but could not be loaded "
                          f"({type(err).__name__}: {checks.first_line(err, 200)}): retrained", artifacts.CacheRebuilt, stacklevel=2)
            artifacts.manifest_path(weights).unlink(missing_ok=True)
            Path(weights).unlink(missing_ok=True)
    trained = []

    def train_into(tmp) -> None:
        fresh = train()
        fresh.save_weights(str(tmp))
        trained.append(fresh)

    artifacts.entry(weights, train_into, key=key_parts, suffix=".weights.h5")
    if trained:
        return trained[0]
    model.load_weights(str(weights))  # another process trained it while this one waited
    fit(model, data, config, epochs=0)
    return model


def data_fingerprint(data: Mnist) -> str:
    """A content hash of everything training reads: every training image and label.

    The test half is left out, so evaluating on another test subset reuses the
    same trained model. Hashing all 60,000 MNIST images takes about 0.1 s.
    """
    return artifacts.digest("train-data", data.train_images, data.train_labels)


def fine_tuned_lenet(data: Mnist, config: TrainConfig = TrainConfig(), epochs: int = 1,
                     cache: str | os.PathLike | None = None, progress: bool = False) -> keras.Model:
    """The trained float LeNet fine-tuned ``epochs`` more epochs in float: QAT's equal-budget reference."""
    return fine_tuned_model(lambda: lenet(batchnorm=config.batchnorm, input_shape=data.image_shape,
                                          classes=data.classes), "lenet", data, config, epochs, cache, progress)


def fine_tuned_model(build: Callable[[], keras.Model], name: str, data: Mnist, config: TrainConfig = TrainConfig(),
                     epochs: int = 1, cache: str | os.PathLike | None = None, progress: bool = False) -> keras.Model:
    """The float model of ``trained_model(build, name, data, config)`` trained ``epochs`` more epochs, in float.

    A QAT model is that float model plus ``qat.epochs`` epochs with fake-quant. This one starts from the
    same float weights and trains the same number of extra epochs with the same optimizer, batch size and
    seed as ``train_qat``, without fake-quant: the two spend the same training budget (epochs, images
    seen) and differ only in the fake-quant, so it is the float model a QAT model is compared with.
    Cached by configuration like ``trained_model`` (a manifest-checked entry).
    """
    epochs = checks.number("epochs", epochs, low=1, integer=True)
    key_parts = ("float-fine-tuned", name, config, epochs, data_fingerprint(data))
    weights = (artifacts.cache_dir(cache) / "models"
               / f"{name}-float-plus{epochs}-{artifacts.config_key(*key_parts)}.weights.h5")
    base = trained_model(build, name, data, config, None, cache, progress)

    def train() -> keras.Model:
        fresh = build()
        fresh.set_weights(base.get_weights())
        set_seed(config.seed + 1)  # as train_qat
        fit(fresh, data, config, epochs=epochs, progress=progress, desc=f"{name} float +{epochs}")
        return fresh

    return _cached_weights(build(), weights, key_parts, train, data, config)


class _WithoutInputQuantizer:
    """A tfmot scheme minus the ``QuantizeLayer`` it would put after each model input.

    tfmot adds the input quantizer by matching input layers listed in the
    layer map; leaving them out of the map leaves the input unquantized.
    """

    def __init__(self, scheme) -> None:
        self._scheme = scheme

    def get_quantize_registry(self):
        return self._scheme.get_quantize_registry()

    def get_layout_transformer(self):
        inner = self._scheme.get_layout_transformer()

        class _Layout:
            def apply(self, model, layer_quantize_map):
                inputs = input_layer_names(model)
                kept = {k: v for k, v in layer_quantize_map.items() if k not in inputs}
                return inner.apply(model, kept)

        return _Layout()


class _TqdmBar(keras.callbacks.Callback):
    """A tqdm progress bar over all training batches (works in notebooks and terminals)."""

    def __init__(self, desc: str, epochs: int, steps: int) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self._bar = tqdm(total=epochs * steps, desc=desc, unit="batch", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs and batch % 20 == 0:
            self._bar.set_postfix(acc=f"{logs.get('accuracy', 0):.3f}")

    def on_train_end(self, logs=None):
        self._bar.close()
