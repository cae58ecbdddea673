"""The point cache of a sweep: one small JSON file per finished point, with its predictions.

Every finished point is cached as a JSON file keyed by the model, the recipe and
the evaluation set, written atomically, so an interrupted sweep picks up where
it stopped. The file keeps the point's predictions (zlib + base64 of one byte
per image), so every row can be compared with a reference point on the same
images. An older cache file without predictions is recomputed.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core import artifacts


def encode_predictions(predictions: np.ndarray) -> str:
    """Predicted classes as compact text for a JSON file: one byte per image (two past 255 classes), zlib, base64."""
    pred = np.asarray(predictions).reshape(-1)
    dtype = np.uint8 if pred.size == 0 or pred.max() < 256 else np.uint16
    return f"{np.dtype(dtype).name}:" + base64.b64encode(zlib.compress(pred.astype(dtype).tobytes(), 9)).decode()


def decode_predictions(text: str, count: int) -> np.ndarray:
    """The predictions ``encode_predictions`` wrote; ``ValueError`` when they are not ``count`` valid entries."""
    try:
        name, payload = text.split(":", 1)
        pred = np.frombuffer(zlib.decompress(base64.b64decode(payload)), dtype=np.dtype(name)).astype(np.int64)
    except (AttributeError, ValueError, TypeError, zlib.error) as err:
        raise ValueError(f"predictions={str(text)[:40]!r} are not encoded predictions; allowed: "
                         "encode_predictions() text") from err
    if len(pred) != count:
        raise ValueError(f"predictions hold {len(pred)} entries for {count} images; allowed: one per image")
    return pred


def store(folder: Path, key: str, row: dict) -> None:
    """Keep a finished point's row (its predictions encoded) as ``<folder>/<key>.json``, atomically."""
    text = json.dumps(row, default=_plain_json)  # checked before the entry is made: nothing half-written
    artifacts.entry(folder / f"{key}.json", lambda tmp: tmp.write_text(text), key=key)


def _plain_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a sweep row holds {type(value).__name__} {value!r}, which a cache file cannot keep")


def decoded(predictions: Any, count: int) -> np.ndarray | None:
    """A row's predictions as an array: decoded when they are cache text, else as they are (``None`` too)."""
    return decode_predictions(predictions, count) if isinstance(predictions, str) else predictions


def load(folder: Path | None, key: str, count: int) -> dict | None:
    """The cached row of a point (``cached`` True), or ``None``: no cache, no entry, or one not to be trusted."""
    if folder is None:
        return None
    path = folder / f"{key}.json"
    if not artifacts.valid_entry(path, key):
        return None  # missing, or not what its manifest recorded: recomputed
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: recomputed, never trusted
    if not isinstance(row, dict) or "accuracy" not in row:
        return None
    if not isinstance(row.get("predictions"), str):  # written before points kept their predictions:
        path.unlink(missing_ok=True)  # retired, so the point is recomputed and stored again, paired this time
        artifacts.manifest_path(path).unlink(missing_ok=True)
        return None
    try:
        decode_predictions(row["predictions"], count)
    except ValueError:
        return None  # damaged or for another image count: recomputed, never trusted
    return {**row, "cached": True}
