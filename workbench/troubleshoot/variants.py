"""Trained variant models for the troubleshooting gallery, cached like ``trained_lenet``.

Each variant is a builder in ``models.VARIANTS``. Weights are cached in
``artifacts.cache_dir()`` under a key made of the variant name, the training
and QAT configs and a fingerprint of the data, and written atomically, so the
notebook and the tests train each one once.
"""

from __future__ import annotations

import os

from ..core import checks
from ..core.data import Mnist
from ..core.keras_compat import keras
from ..core.models import VARIANTS
from ..core.train import QatConfig, TrainConfig, trained_model


def build(name: str) -> keras.Model:
    """A fresh, untrained variant model.

    Args:
        name: one of ``models.VARIANTS``.

    Raises:
        ValueError: unknown name.
    """
    checks.choice("variant", name, tuple(VARIANTS))
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
    checks.choice("variant", name, tuple(VARIANTS))
    return trained_model(VARIANTS[name], name, data, config, qat, cache)
