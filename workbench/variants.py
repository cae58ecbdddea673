"""Trained variant models for the troubleshooting gallery, cached like ``trained_lenet``.

Each variant is a builder in ``models.VARIANTS``. Weights are cached in
``artifacts.cache_dir()`` under a key made of the variant name, the training
and QAT configs and a fingerprint of the data, and written atomically, so the
notebook and the tests train each one once.
"""

from __future__ import annotations

import os

from . import artifacts, validate
from .data import Mnist
from .keras_compat import keras
from .models import VARIANTS
from .train import QatConfig, TrainConfig, data_fingerprint, fit, quantize_model, set_seed


def build(name: str) -> keras.Model:
    """A fresh, untrained variant model.

    Args:
        name: one of ``models.VARIANTS``.

    Raises:
        ValueError: unknown name.
    """
    validate.choice("variant", name, tuple(VARIANTS))
    return VARIANTS[name]()


def trained_variant(name: str, data: Mnist, config: TrainConfig = TrainConfig(),
                    qat: QatConfig | None = None, cache: str | os.PathLike | None = None) -> keras.Model:
    """A trained float (``qat=None``) or QAT variant, loaded from the cache when it exists.

    Args:
        name: one of ``models.VARIANTS``.
        data: MNIST (its training images are used, ``config.train_size`` of them).
        config: training config (``config.batchnorm`` is ignored: the variant decides).
        qat: fine-tune a QAT copy of the trained float model with this config.
        cache: cache folder (default ``$WORKBENCH_CACHE``).

    Returns:
        The compiled, trained Keras model.

    Raises:
        ValueError: unknown variant name.
    """
    validate.choice("variant", name, tuple(VARIANTS))
    key = artifacts.config_key(name, config, qat, data_fingerprint(data))
    kind = "float" if qat is None else f"qat-{qat.scheme}-{qat.bits}b"
    weights = artifacts.cache_dir(cache) / "models" / f"{name}-{kind}-{key}.weights.h5"
    if qat is None:
        model = build(name)
    else:
        base = trained_variant(name, data, config, None, cache)
        model = quantize_model(base, qat)
    if weights.exists():
        try:
            model.load_weights(str(weights))
            fit(model, data, config, epochs=0)
            return model
        except Exception:  # an unreadable cache entry is retrained, never trusted
            weights.unlink(missing_ok=True)
    if qat is None:
        set_seed(config.seed)
        model = build(name)
        fit(model, data, config, epochs=config.epochs, desc=name)
    else:
        set_seed(config.seed + 1)
        model = quantize_model(base, qat)
        fit(model, data, config, epochs=qat.epochs, desc=f"{name} QAT")
    with artifacts.atomic_path(weights, suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp))
    return model
