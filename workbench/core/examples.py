"""The offline stand-in for "your model and your data": files a user would bring, made here.

``digits_example`` trains the MobileNet-style net on scikit-learn's ``digits`` (8x8x1,
10 classes; cached like every trained model), saves it as a ``.keras`` file and all of
``digits`` as an ``.npz`` with the default array names (``images``, ``labels``,
``class_names``), and returns the two paths. Loading them back with
``sources.load_source`` and ``data.load_npz`` (default split: 20 % test, seed 0) gives
the model and the very train/test split it was trained on, so the test images are
ones it never saw. Notebook 08 uses it so it runs offline with no file of yours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import artifacts

DIGITS_EPOCHS = 30  # BatchNorm's moving averages need a few hundred steps: 30 epochs of 45 batches of 32
DIGITS_BATCH = 32


@dataclass(frozen=True)
class ExampleFiles:
    """A model file and a data file, as a user brings them."""

    model: Path
    data: Path


def digits_example(folder: str | os.PathLike | None = None, epochs: int = DIGITS_EPOCHS,
                   cache: str | os.PathLike | None = None, progress: bool = False) -> ExampleFiles:
    """The MobileNet-style net trained on ``digits`` as ``.keras``, and ``digits`` as ``.npz``.

    Args:
        folder: where to write the two files (default: ``examples/`` in the cache folder).
        epochs: float training epochs (batch 32); the trained weights are cached by configuration.
        cache: the artifact folder (default ``$WORKBENCH_CACHE``).
        progress: show a progress bar while training.

    Returns:
        ``ExampleFiles``; the file names carry a content hash, and files already written (cache entries
        with a manifest, see ``artifacts.entry``) are reused.
    """
    from .data import digits_arrays, load_digits
    from .train import TrainConfig, trained_mobilenet

    target = Path(folder) if folder is not None else artifacts.cache_dir(cache) / "examples"
    model = trained_mobilenet(load_digits(), TrainConfig(epochs=epochs, batch_size=DIGITS_BATCH), cache=cache,
                              progress=progress)
    weights = artifacts.digest(model, length=12)
    model_path = artifacts.entry(target / f"mobilenet-digits-{weights}.keras", lambda tmp: model.save(str(tmp)),
                                 key=("example-model", weights), suffix=".keras")
    images, labels, names = digits_arrays()
    content = artifacts.digest(images, labels, length=12)

    def write_data(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.savez would add ".npz" to a temporary name
            np.savez(handle, images=images, labels=labels, class_names=np.array(names))

    data_path = artifacts.entry(target / f"digits-{content}.npz", write_data, key=("example-data", content),
                                suffix=".npz")
    return ExampleFiles(model_path, data_path)
