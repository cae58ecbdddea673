"""Where artifacts live, how they are named, and how they are written safely.

Every artifact is keyed by the configuration that produced it and written to a
temporary file that is renamed into place, so a run that is killed half way
never leaves a partial file that a later run would trust. A cache entry
(``entry``) also carries a manifest with its key and content hash: an entry
whose bytes no longer match is rebuilt, with one warning saying so, never
trusted; a file lock makes two processes building the same entry build it
once. Temporaries left by killed runs are removed at the next start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

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
    if folder not in _cleaned:
        _cleaned.add(folder)
        remove_stale_temporaries(folder)
    return folder


_cleaned: set[Path] = set()
_TMP_MARK = ".wbtmp-"


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporaries under ``folder`` whose writing process is gone (a killed run); returns how many."""
    removed = 0
    for tmp in folder.rglob(f"*{_TMP_MARK}*"):
        try:
            pid = int(tmp.name.split(_TMP_MARK, 1)[1].split("-", 1)[0])
        except (ValueError, IndexError):
            continue
        if _alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        # A field added later with metadata {"key": "omit-default"} leaves the keys of its default unchanged.
        omitted = {f.name for f in dataclasses.fields(value)
                   if f.metadata.get("key") == "omit-default" and getattr(value, f.name) == f.default}
        plain = {k: v for k, v in dataclasses.asdict(value).items() if k not in omitted}
        return {"__type__": type(value).__name__, **_plain(plain)}
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}{_TMP_MARK}{os.getpid()}-", suffix=suffix or ".tmp",
                                    dir=target.parent)
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


class CacheRebuilt(UserWarning):
    """A cache entry whose content no longer matched its manifest was rebuilt."""


def manifest_path(path: Path) -> Path:
    return path.parent / f"{path.name}.manifest.json"


def valid_entry(path: str | os.PathLike, key: Any = None) -> bool:
    """Whether ``path`` exists with a manifest naming ``key`` and the hash of its current content."""
    path = Path(path)
    try:
        manifest = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError):
        return False
    if not path.exists() or not isinstance(manifest, dict) or manifest.get("key") != digest("key", key):
        return False
    try:
        return manifest.get("content") == digest(path, length=64)
    except OSError:
        return False


def entry(path: str | os.PathLike, build: Callable[[Path], Any], key: Any = None, suffix: str = "") -> Path:
    """A cache entry at ``path``: reused when its manifest matches, else built by ``build(tmp)`` once.

    ``build`` writes the file or folder at the temporary path it is given; the
    result is renamed into place and its content hash recorded. Two processes
    asking for the same entry at once take a file lock: one builds, the other
    then finds it valid. An entry that exists but does not match its manifest
    (corrupt, truncated, edited, half-written by an older version) is rebuilt
    with a ``CacheRebuilt`` warning.
    """
    from filelock import FileLock

    path = Path(path)
    if valid_entry(path, key):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / f".{path.name}.lock")):
        if valid_entry(path, key):
            return path  # built by another process while this one waited
        if path.exists() or manifest_path(path).exists():
            warnings.warn(f"cache entry {path.name} did not match its manifest (corrupt or from another run): "
                          "rebuilt", CacheRebuilt, stacklevel=2)
            manifest_path(path).unlink(missing_ok=True)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        with atomic_path(path, suffix) as tmp:
            build(tmp)
        write_text_atomic(manifest_path(path), json.dumps({"key": digest("key", key),
                                                           "content": digest(path, length=64)}))
    return path
