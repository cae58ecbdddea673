"""Detections, read off a detector's outputs, and COCO mAP of one model's detections against another's.

A ``Detections`` holds, for N inputs, M boxes each: ``boxes (N, M, 4)`` as ``[ymin, xmin, ymax, xmax]`` (the
TFLite order; normalised or in pixels, as the model writes them), ``scores (N, M)`` and integer ``classes
(N, M)``; an entry whose class is below 0 is padding. They come from the four outputs of
``TFLite_Detection_PostProcess`` (``from_postprocess``), from raw box and score heads after per-class
non-maximum suppression (``from_heads``) or from labelled boxes (``from_labels``, scores 1).

Fidelity of a quantized detector: the float model's detections scoring at least ``score_threshold`` are the
ground truth (``truth_from``); the quantized model's detections at or above the same threshold are scored
against them by pycocotools' ``COCOeval`` (``coco_map``): ``map50`` is the AP at IoU 0.5 and ``map`` COCO's
mAP averaged over IoU 0.50:0.05:0.95, both over the categories that have a truth box, with at most 100
detections per input (COCO's ``maxDets``). Labelled boxes are ground truth the same way.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import checks


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes ``(N, M, 4)`` ``[ymin, xmin, ymax, xmax]``, scores ``(N, M)``, classes ``(N, M)`` (< 0: padding)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64)
        scores = np.asarray(self.scores, dtype=np.float64)
        classes = np.asarray(self.classes)
        if boxes.ndim != 3 or boxes.shape[2] != 4:
            raise ValueError(f"boxes have shape {boxes.shape}; allowed: (N, M, 4) [ymin, xmin, ymax, xmax]")
        if scores.shape != boxes.shape[:2] or classes.shape != boxes.shape[:2]:
            raise ValueError(f"scores have shape {scores.shape} and classes {classes.shape} beside boxes "
                             f"{boxes.shape}; allowed: both (N, M) = {boxes.shape[:2]}")
        if classes.size and not np.all(np.isfinite(classes.astype(np.float64))):
            raise ValueError("classes hold a value that is not finite; allowed: integer class ids, < 0 for padding")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "classes", np.rint(classes).astype(np.int64))

    @property
    def present(self) -> np.ndarray:
        """``(N, M)``: the entries that are detections, not padding."""
        return self.classes >= 0

    @property
    def count(self) -> int:
        """How many detections (padding excluded) over every input."""
        return int(np.sum(self.present))

    def __len__(self) -> int:
        return len(self.boxes)


def from_postprocess(boxes: Any, classes: Any, scores: Any, num: Any) -> Detections:
    """The four outputs of ``TFLite_Detection_PostProcess``: entries at index ``>= num[i]`` are padding.

    ``boxes (N, M, 4)``, ``classes (N, M)`` (float class ids, as the op writes them), ``scores (N, M)``,
    ``num (N,)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    num = np.asarray(num, dtype=np.float64).reshape(-1)
    if boxes.ndim != 3 or len(num) != len(boxes):
        raise ValueError(f"num has shape {num.shape} beside boxes {boxes.shape}; allowed: num (N,), boxes (N, M, 4)")
    keep = np.arange(boxes.shape[1])[None, :] < num[:, None]
    return _masked(boxes, scores, np.where(keep, np.rint(classes), -1), keep)


def from_labels(boxes: Any, classes: Any) -> Detections:
    """Labelled boxes ``(N, M, 4)`` with ``classes (N, M)`` padded with -1, as detections of score 1."""
    classes = np.asarray(classes)
    return Detections(boxes, np.where(classes >= 0, 1.0, 0.0), classes)


def from_heads(boxes: Any, scores: Any, *, max_detections: int = 100, iou_threshold: float = 0.5,
               min_score: float = 0.05, background: bool = True) -> Detections:
    """Detections from raw heads, by per-class non-maximum suppression.

    Args:
        boxes: ``(N, A, 4)`` corner boxes ``[ymin, xmin, ymax, xmax]``, already decoded from the anchors.
        scores: ``(N, A, C)`` per-class scores (probabilities or sigmoid outputs, not logits).
        max_detections: the most detections kept per input (best scores first); the result has M = this.
        iou_threshold: a box is suppressed when its IoU with a better box of its class exceeds this.
        min_score: scores below this are not detections.
        background: column 0 of ``scores`` is the background class and is dropped; classes are then
            ``0 .. C-2``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    limit = checks.number("max_detections", max_detections, low=1, integer=True)
    threshold = checks.number("iou_threshold", iou_threshold, low=0, high=1)
    floor = checks.number("min_score", min_score)
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"boxes have shape {boxes.shape} and scores {scores.shape}; "
                         "allowed: boxes (N, A, 4), scores (N, A, C) with the same N and A")
    if background:
        if scores.shape[2] < 2:
            raise ValueError(f"scores have shape {scores.shape}: with background=True column 0 is the background, "
                             "so at least 2 columns are needed")
        scores = scores[:, :, 1:]
    n = len(boxes)
    out_boxes = np.zeros((n, limit, 4))
    out_scores = np.zeros((n, limit))
    out_classes = np.full((n, limit), -1, dtype=np.int64)
    for i in range(n):
        anchor, cls = np.nonzero(scores[i] >= floor)
        kept = _batched_nms(boxes[i][anchor], scores[i][anchor, cls], cls, threshold, limit)
        k = len(kept)
        out_boxes[i, :k] = boxes[i][anchor[kept]]
        out_scores[i, :k] = scores[i][anchor[kept], cls[kept]]
        out_classes[i, :k] = cls[kept]
    return Detections(out_boxes, out_scores, out_classes)


def truth_from(detections: Detections, score_threshold: float = 0.5) -> Detections:
    """The detections scoring at least ``score_threshold``, as ground truth (the others become padding)."""
    threshold = checks.number("score_threshold", score_threshold)
    keep = detections.present & (detections.scores >= threshold)
    return _masked(detections.boxes, detections.scores, detections.classes, keep)


def coco_map(truth: Detections, found: Detections, score_threshold: float) -> dict:
    """COCO mAP of ``found``'s detections at or above ``score_threshold`` against ``truth``, by pycocotools.

    Returns:
        ``map50`` (AP at IoU 0.5) and ``map`` (mAP@[.5:.95]), ``None`` when ``truth`` has no box at all (0.0
        when it has boxes and nothing was found at the threshold); ``score_threshold``; ``truth_boxes`` and
        ``found_boxes``, the counts scored.
    """
    threshold = checks.number("score_threshold", score_threshold)
    if len(truth) != len(found):
        raise ValueError(f"truth covers {len(truth)} inputs and found {len(found)}; allowed: the same inputs")
    found = _masked(found.boxes, found.scores, found.classes, found.present & (found.scores >= threshold))
    result: dict[str, Any] = {"map50": None, "map": None, "score_threshold": threshold,
                              "truth_boxes": truth.count, "found_boxes": found.count}
    if truth.count == 0:
        return result
    if found.count == 0:  # COCOeval's answer too (precision 0 at every recall); its loadRes refuses an empty list
        return {**result, "map50": 0.0, "map": 0.0}
    stats = _coco_stats(truth, found)
    return {**result, "map50": float(stats[1]), "map": float(stats[0])}


def coco_boxes(boxes: np.ndarray) -> np.ndarray:
    """``[ymin, xmin, ymax, xmax]`` rows as COCO's ``[x, y, width, height]``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.stack([boxes[..., 1], boxes[..., 0], boxes[..., 3] - boxes[..., 1], boxes[..., 2] - boxes[..., 0]],
                    axis=-1)


def _coco_stats(truth: Detections, found: Detections) -> np.ndarray:
    """``COCOeval.stats`` (bbox) for ``found`` against ``truth``, COCO objects built in memory, prints silenced.

    Category ids are class + 1 (COCO's ids start at 1); image ids are input index + 1.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(truth))]
    classes = sorted(set(truth.classes[truth.present].tolist()) | set(found.classes[found.present].tolist()))
    annotations = [{**entry, "id": k + 1, "area": entry["bbox"][2] * entry["bbox"][3], "iscrowd": 0}
                   for k, entry in enumerate(_entries(truth, with_scores=False))]
    # pycocotools prints its progress on stdout; the redirect swaps sys.stdout for the whole process meanwhile
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c + 1, "name": str(c)} for c in classes]}
        gt.createIndex()
        dt = gt.loadRes(_entries(found, with_scores=True))
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def _entries(detections: Detections, *, with_scores: bool) -> list[dict[str, Any]]:
    """One COCO annotation (image id, category id, xywh box[, score]) per detection that is not padding."""
    xywh = coco_boxes(detections.boxes)
    entries = []
    for i, j in zip(*np.nonzero(detections.present)):
        entry = {"image_id": int(i) + 1, "category_id": int(detections.classes[i, j]) + 1,
                 "bbox": [float(v) for v in xywh[i, j]]}
        if with_scores:
            entry["score"] = float(detections.scores[i, j])
        entries.append(entry)
    return entries


def _masked(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, keep: np.ndarray) -> Detections:
    """The entries in ``keep``; the others padding (class -1, score 0, box 0)."""
    return Detections(np.where(keep[..., None], boxes, 0.0), np.where(keep, scores, 0.0), np.where(keep, classes, -1))


def _batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float,
                 limit: int) -> np.ndarray:
    """Indices of the best ``limit`` boxes kept by per-class greedy NMS, best score first.

    numpy, because nothing installed does it without TensorFlow (no torchvision or OpenCV; Keras 3 and
    scikit-learn have no NMS). One pass in score order serves every class: a kept box suppresses only the
    boxes of its own class, so the first ``limit`` kept are the first ``limit`` of the whole result.
    """
    areas = _areas(boxes)
    order = np.argsort(-scores, kind="stable")
    kept = []
    while len(order) and len(kept) < limit:
        best, rest = order[0], order[1:]
        kept.append(best)
        same = np.flatnonzero(classes[rest] == classes[best])
        drop = same[_iou(boxes[best], areas[best], boxes[rest[same]], areas[rest[same]]) > threshold]
        order = np.delete(rest, drop)
    return np.asarray(kept, dtype=np.int64)


def _areas(boxes: np.ndarray) -> np.ndarray:
    """``[ymin, xmin, ymax, xmax]`` boxes' areas (0 for an inverted box)."""
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def _iou(box: np.ndarray, area: float, others: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """IoU of one box with each of ``others`` (0 where the union is empty)."""
    low = np.maximum(box[:2], others[:, :2])
    high = np.minimum(box[2:], others[:, 2:])
    inter = np.clip(high[:, 0] - low[:, 0], 0, None) * np.clip(high[:, 1] - low[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
