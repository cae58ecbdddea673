"""Where artifacts live, how they are named, and how they are written safely.

Every artifact is keyed by the configuration that produced it and written to a
temporary file that is renamed into place, so a run that is killed half way
never leaves a partial file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

CACHE_ENV = "WORKBENCH_CACHE"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Return (and create) the artifact cache folder.

    Args:
        path: explicit folder; defaults to ``$WORKBENCH_CACHE`` or
            ``~/.cache/quantization-workbench``.
    """
    if path is None:
        path = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quantization-workbench"
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def digest(*parts: Any, length: int = 16) -> str:
    """The one content hash of the workbench: cache keys, fingerprints and file names all come from here.

    Each part may be an array (shape, dtype and every byte), ``bytes``, a path
    (a file's bytes; a folder's relative names and file bytes), a Keras model
    (layer types, weight names, shapes and values), ``None``, or a dataclass,
    dict, list, string or number (hashed through a canonical JSON form).
    """
    h = hashlib.sha256()
    for part in parts:
        _update(h, part)
    return h.hexdigest()[:length]


def config_key(*parts: Any) -> str:
    """A short stable hash of dataclasses, dicts and plain values (alias of ``digest``)."""
    return digest(*parts)


def weights_digest(model: Any) -> str:
    """A hash of a Keras model's layers and weight values: changes whenever training changes a weight."""
    return digest(model)


def _update(h: Any, part: Any) -> None:
    import numpy as np

    if isinstance(part, np.ndarray):
        arr = np.ascontiguousarray(part)
        h.update(f"array{arr.shape}{arr.dtype}".encode())
        h.update(arr.data if arr.flags.c_contiguous else arr.tobytes())
    elif isinstance(part, (bytes, bytearray, memoryview)):
        h.update(b"bytes%d:" % len(part))
        h.update(part)
    elif isinstance(part, Path):
        if part.is_dir():
            for path in sorted(p for p in part.rglob("*") if p.is_file()):
                h.update(f"file:{path.relative_to(part).as_posix()}".encode())
                h.update(path.read_bytes())
        else:
            h.update(b"file:")
            h.update(part.read_bytes())
    elif hasattr(part, "layers") and hasattr(part, "weights"):
        h.update(f"model:{[type(layer).__name__ for layer in part.layers]}".encode())
        for weight in part.weights:
            _update(h, f"{weight.name}")
            _update(h, np.asarray(weight.numpy()))
    else:
        h.update(json.dumps(_plain(part), sort_keys=True, default=str).encode())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_plain(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Works for files and folders. On any exception the temporary is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    return write_bytes_atomic(target, text.encode())
