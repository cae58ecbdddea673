"""Fidelity metrics and COCO mAP, each checked against a direct computation written another way (numpy loops,
scipy, pycocotools called as its documentation shows). Fast: no TensorFlow, no model."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from workbench.core import detection, fidelity


@pytest.fixture
def pair():
    rng = np.random.default_rng(21)
    f = rng.normal(size=(40, 3, 5))
    q = f + rng.normal(scale=0.1, size=f.shape)
    return f, q


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- each metric against a direct computation -------------------------------------------------------------


def test_snr_db_against_numpy(pair):
    f, q = pair
    signal = sum(float(v) ** 2 for v in f.ravel())
    noise = sum(float(a - b) ** 2 for a, b in zip(q.ravel(), f.ravel()))
    assert fidelity.snr_db(f, q) == pytest.approx(10 * math.log10(signal / noise), rel=1e-9)


def test_cosine_against_numpy(pair):
    f, q = pair
    sims = []
    for a, b in zip(f, q):
        a, b = a.ravel(), b.ravel()
        sims.append(float(a @ b) / math.sqrt(float(a @ a) * float(b @ b)))
    assert fidelity.cosine(f, q) == pytest.approx(sum(sims) / len(sims), rel=1e-12)


def test_max_abs_against_numpy(pair):
    f, q = pair
    assert fidelity.max_abs(f, q) == max(abs(a - b) for a, b in zip(q.ravel(), f.ravel()))


def test_psnr_against_numpy(pair):
    f, q = pair
    peak = f.max() - f.min()
    mse = np.square(q - f).sum() / q.size
    assert fidelity.psnr(f, q) == pytest.approx(20 * math.log10(peak) - 10 * math.log10(mse), rel=1e-9)


def test_agreement_against_counting_and_scipy():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(30, 2, 4))  # trailing dimensions flattened: 8 classes
    q = f.copy()
    q[:7, 0, 0] = 99.0  # seven inputs whose top class moves to class 0 ...
    q[:2] = f[:2]  # ... but two of them are put back: 5 disagreements
    same = sum(int(np.argmax(a.ravel()) == np.argmax(b.ravel())) for a, b in zip(f, q))
    got = fidelity.agreement(f, q)
    interval = binomtest(same, 30).proportion_ci(confidence_level=0.95, method="exact")
    assert got.count == 30 and got.value == same / 30
    assert (got.low, got.high) == (interval.low, interval.high)
    narrower = fidelity.agreement(f, q, level=0.8)
    assert got.low < narrower.low and narrower.high < got.high


def test_agreement_interval_for_a_hand_counted_case():
    f = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]  # 10 inputs
    q = f.copy()
    q[[2, 5]] = np.eye(4)[[3, 3]]  # inputs 2 and 5 now say class 3: 8 of 10 agree
    got = fidelity.agreement(f, q)
    exact = binomtest(8, 10).proportion_ci(confidence_level=0.95, method="exact")
    assert got.value == 0.8 and got.count == 10
    assert got.low == exact.low and got.high == exact.high
    assert got.low == pytest.approx(0.44390, abs=1e-5) and got.high == pytest.approx(0.97479, abs=1e-5)
    assert str(got) == "0.800 [0.444, 0.975]"


def test_kl_against_numpy():
    rng = np.random.default_rng(5)
    f = _softmax(rng.normal(size=(25, 6)))
    q = _softmax(rng.normal(size=(25, 6)))
    direct = np.mean([sum(a * math.log(a / b) for a, b in zip(fr, qr)) for fr, qr in zip(f, q)])
    assert fidelity.kl(f, q) == pytest.approx(direct, rel=1e-9)


def test_kl_clips_zeros_of_a_quantized_softmax():
    f = np.array([[0.5, 0.5 - 1e-3, 1e-3]])
    q = np.array([[0.5, 0.5, 0.0]])
    r = np.array([0.5, 0.5, fidelity.KL_EPSILON]) / (1 + fidelity.KL_EPSILON)
    direct = sum(a * math.log(a / b) for a, b in zip(f[0], r))
    assert fidelity.kl(f, q) == pytest.approx(direct, rel=1e-9)


def test_kl_is_none_for_logits(pair):
    f, q = pair
    assert fidelity.kl(f, q) is None
    assert fidelity.output_metrics(f[:, 0], q[:, 0], "classifier")["kl"] is None


# --- a model against itself, a known perturbation -------------------------------------------------------


def test_an_output_against_itself():
    f = _softmax(np.random.default_rng(1).normal(size=(50, 10)))
    got = fidelity.output_metrics(f, f.copy(), "classifier")
    assert got["snr_db"] == math.inf and got["cosine"] == pytest.approx(1.0) and got["max_abs"] == 0.0
    assert got["kl"] == 0.0
    exact = binomtest(50, 50).proportion_ci(confidence_level=0.95, method="exact")
    assert got["agreement"] == fidelity.Estimate(1.0, exact.low, exact.high, 50)
    assert got["agreement"].high == 1.0 and got["agreement"].low == pytest.approx(0.025 ** (1 / 50), rel=1e-9)
    assert fidelity.psnr(f, f) == math.inf


def test_known_noise_power_gives_the_expected_snr():
    rng = np.random.default_rng(7)
    f = rng.normal(scale=2.0, size=(200, 500))  # signal power 4
    q = f + rng.normal(scale=0.2, size=f.shape)  # noise power 0.04: 20 dB
    assert fidelity.snr_db(f, q) == pytest.approx(20.0, abs=0.05)
    assert fidelity.psnr(f, q) == pytest.approx(10 * math.log10((f.max() - f.min()) ** 2 / 0.04), abs=0.05)


def test_degenerate_cases():
    zeros = np.zeros((3, 4))
    ones = np.ones((3, 4))
    assert fidelity.snr_db(zeros, ones) == -math.inf
    assert fidelity.snr_db(zeros, zeros) == math.inf
    assert fidelity.cosine(zeros, zeros) == 1.0
    assert fidelity.cosine(zeros, ones) == 0.0
    assert fidelity.cosine(ones, -ones) == -1.0


def test_output_metrics_keys_and_shape_check(pair):
    f, q = pair
    assert set(fidelity.output_metrics(f, q, "generic")) == {"snr_db", "cosine", "max_abs"}
    assert set(fidelity.output_metrics(f, q, "dense")) == {"snr_db", "cosine", "max_abs", "psnr"}
    assert set(fidelity.output_metrics(f, q, "classifier")) == {"snr_db", "cosine", "max_abs", "agreement", "kl"}
    with pytest.raises(ValueError, match=r"\(40, 15\)"):
        fidelity.output_metrics(f, q.reshape(40, 15), "generic")
    with pytest.raises(ValueError, match="kind"):
        fidelity.output_metrics(f, q, "detector")
    with pytest.raises(ValueError, match="level"):
        fidelity.agreement(f, q, level=1.0)


# --- what counts as probabilities ------------------------------------------------------------------------


def test_a_uint8_softmax_counts_as_probabilities():
    rng = np.random.default_rng(11)
    for classes in (2, 7, 10, 100):
        p = _softmax(rng.normal(scale=3.0, size=(2000, classes)))
        as_uint8 = np.clip(np.round(p * 256), 0, 255) / 256  # a uint8 softmax (scale 1/256), dequantized
        assert fidelity.is_probability(p) and fidelity.is_probability(as_uint8), classes
    assert fidelity.sum_tolerance(10) == 10 / 512 and fidelity.sum_tolerance(1000) == 0.05


def test_what_is_not_probabilities():
    assert not fidelity.is_probability(np.array([[0.7, 0.5]]))  # two sigmoids
    assert not fidelity.is_probability(np.array([[1.2, -0.2]]))  # sums to 1, one value negative
    assert not fidelity.is_probability(np.array([[0.3, 0.3, 0.3]]))  # 0.1 short
    assert fidelity.is_probability(np.array([[0.3, 0.3, 0.4 - 1e-3]]))


# --- properties -----------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), scale=st.floats(1e-3, 1e3), shape=st.tuples(st.integers(1, 6),
                                                                                       st.integers(1, 6)))
def test_snr_is_scale_invariant_and_cosine_bounded(seed, scale, shape):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=shape)
    q = f + rng.normal(scale=rng.uniform(0.01, 2), size=shape)
    assert fidelity.snr_db(scale * f, scale * q) == pytest.approx(fidelity.snr_db(f, q), abs=1e-9)
    assert -1.0 <= fidelity.cosine(f, q) <= 1.0
    assert fidelity.cosine(scale * f, scale * q) == pytest.approx(fidelity.cosine(f, q), abs=1e-12)


# --- detections and COCO mAP -----------------------------------------------------------------------------


def _direct_coco(truth_boxes, truth_classes, found):
    """pycocotools the documented way: a ground-truth COCO from a dataset dict, loadRes, COCOeval (xywh boxes)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        y0, x0, y1, x1 = b
        return [x0, y0, x1 - x0, y1 - y0]

    annotations = []
    for image, (boxes, classes) in enumerate(zip(truth_boxes, truth_classes)):
        for b, c in zip(boxes, classes):
            if c >= 0:
                w, h = xywh(b)[2:]
                annotations.append({"id": len(annotations) + 1, "image_id": image + 1, "category_id": c + 1,
                                    "bbox": xywh(b), "area": w * h, "iscrowd": 0})
    results = [{"image_id": image + 1, "category_id": c + 1, "bbox": xywh(b), "score": s}
               for image, (b, c, s) in found]
    categories = {c for cs in truth_classes for c in cs if c >= 0} | {c for _, (_, c, _) in found}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i + 1} for i in range(len(truth_boxes))], "annotations": annotations,
                      "categories": [{"id": c + 1} for c in sorted(categories)]}
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def test_coco_map_equals_pycocotools_called_directly():
    truth_boxes = [[[10, 10, 50, 60], [100, 100, 140, 130], [0, 0, 0, 0]],
                   [[20, 30, 80, 90], [5, 5, 25, 25], [60, 60, 90, 120]]]
    truth_classes = [[0, 1, -1], [0, 2, 2]]
    found = [(0, ([12, 11, 52, 58], 0, 0.9)), (0, ([100, 104, 139, 131], 1, 0.8)), (0, ([0, 0, 30, 30], 0, 0.92)),
             (1, ([22, 30, 84, 88], 0, 0.95)), (1, ([60, 70, 90, 125], 2, 0.6)), (1, ([5, 5, 25, 25], 1, 0.55)),
             (1, ([6, 4, 27, 24], 2, 0.4))]
    direct = _direct_coco(truth_boxes, truth_classes, found)
    m = 3
    boxes, classes, scores = np.zeros((2, m, 4)), np.full((2, m), -1), np.zeros((2, m))
    fill = [0, 0]
    for image, (b, c, s) in found:
        j = fill[image]
        if j == m:  # the direct call's detections, padded three per image: grow the padding
            boxes = np.concatenate([boxes, np.zeros((2, 1, 4))], 1)
            classes = np.concatenate([classes, np.full((2, 1), -1)], 1)
            scores = np.concatenate([scores, np.zeros((2, 1))], 1)
            m += 1
        boxes[image, j], classes[image, j], scores[image, j] = b, c, s
        fill[image] += 1
    truth = detection.from_labels(np.array(truth_boxes, float), np.array(truth_classes))
    got = detection.coco_map(truth, detection.Detections(boxes, scores, classes), score_threshold=0.0)
    assert got["map"] == direct[0] and got["map50"] == direct[1]
    assert 0 < got["map"] < got["map50"] < 1
    assert got["truth_boxes"] == 5 and got["found_boxes"] == 7 and got["score_threshold"] == 0.0


def test_identical_detections_score_one_and_the_threshold_cuts_both():
    rng = np.random.default_rng(2)
    corner = rng.uniform(0, 200, size=(4, 6, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(10, 60, size=(4, 6, 2))], axis=2)
    scores = rng.uniform(0, 1, size=(4, 6))
    dets = detection.Detections(boxes, scores, rng.integers(0, 3, size=(4, 6)))
    truth = detection.truth_from(dets, 0.5)
    assert truth.count == int(np.sum(scores >= 0.5))
    got = detection.coco_map(truth, dets, 0.5)
    assert got["map50"] == 1.0 and got["map"] == 1.0
    assert got["truth_boxes"] == got["found_boxes"] == truth.count


def test_shifted_boxes_give_the_hand_computed_map():
    # a 10 x 10 box shifted 2 to the right: IoU = 8*10 / (200 - 80) = 2/3, so it matches at IoU 0.50, 0.55,
    # 0.60 and 0.65 (AP 1 each) and at none of 0.70 .. 0.95 (AP 0): mAP = 4/10, AP50 = 1, AP75 = 0
    truth = detection.from_labels(np.array([[[0, 0, 10, 10]], [[50, 50, 60, 60]]], float), np.array([[1], [4]]))
    shifted = detection.Detections(truth.boxes + np.array([0, 2, 0, 2]), np.full((2, 1), 0.9), truth.classes)
    got = detection.coco_map(truth, shifted, 0.5)
    assert got["map50"] == pytest.approx(1.0) and got["map"] == pytest.approx(0.4)
    stats = _direct_coco(truth.boxes.tolist(), truth.classes.tolist(),
                         [(i, (shifted.boxes[i, 0].tolist(), int(shifted.classes[i, 0]), 0.9)) for i in range(2)])
    assert stats[2] == 0.0  # AP75


def test_coco_map_without_truth_or_without_detections():
    empty = detection.from_labels(np.zeros((2, 1, 4)), np.full((2, 1), -1))
    some = detection.from_labels(np.array([[[0, 0, 10, 10]], [[0, 0, 0, 0]]], float), np.array([[0], [-1]]))
    assert detection.coco_map(empty, some, 0.5)["map"] is None
    assert detection.coco_map(empty, some, 0.5)["map50"] is None
    nothing = detection.coco_map(some, empty, 0.5)
    assert nothing["map"] == 0.0 and nothing["map50"] == 0.0 and nothing["found_boxes"] == 0


def test_from_postprocess_pads_beyond_num():
    boxes = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    got = detection.from_postprocess(boxes, np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 6.0]]),
                                     np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]]), np.array([2.0, 0.0]))
    assert got.classes.tolist() == [[1, 2, -1], [-1, -1, -1]]
    assert got.count == 2 and got.scores[0, 2] == 0.0
    np.testing.assert_array_equal(got.boxes[0, :2], boxes[0, :2])


def test_from_heads_suppresses_within_a_class_only():
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]], float)  # IoU of the first two: 0.68
    same = np.zeros((1, 3, 3))  # background column, then classes 0 and 1
    same[0, :, 0] = 0.1
    same[0, 0, 1], same[0, 1, 1], same[0, 2, 2] = 0.6, 0.9, 0.7
    got = detection.from_heads(boxes, same, max_detections=5)
    assert got.classes.shape == (1, 5)
    assert got.scores[0, :2].tolist() == [0.9, 0.7] and got.classes[0, :3].tolist() == [0, 1, -1]
    np.testing.assert_array_equal(got.boxes[0, 0], boxes[0, 1])  # the higher score of the overlapping pair

    other = same.copy()
    other[0, 0, 1], other[0, 0, 2] = 0.0, 0.6  # the first box now belongs to class 1: both boxes stay
    got = detection.from_heads(boxes, other, max_detections=5)
    assert sorted(zip(got.scores[0, :3].tolist(), got.classes[0, :3].tolist())) == [(0.6, 1), (0.7, 1), (0.9, 0)]

    no_background = detection.from_heads(boxes, same[:, :, 1:], background=False, max_detections=1)
    assert no_background.classes.tolist() == [[0]] and no_background.scores.tolist() == [[0.9]]


def test_nms_against_a_loop():
    rng = np.random.default_rng(9)
    corner = rng.uniform(0, 1, size=(1, 60, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.3, size=(1, 60, 2))], axis=2)
    scores = rng.uniform(0, 1, size=(1, 60, 3))
    got = detection.from_heads(boxes, scores, background=False, max_detections=200, iou_threshold=0.4)

    def iou(a, b):
        h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
        return h * w / union

    expected = []
    for c in range(3):
        candidates = sorted((s, a) for a, s in enumerate(scores[0, :, c]) if s >= 0.05)[::-1]
        kept = []
        for s, a in candidates:
            if all(iou(boxes[0, a], boxes[0, k]) <= 0.4 for _, k in kept):
                kept.append((s, a))
        expected += [(s, c) for s, _ in kept]
    assert sorted(zip(got.scores[0][got.present[0]].tolist(), got.classes[0][got.present[0]].tolist())) \
        == sorted(expected)
    best = detection.from_heads(boxes, scores, background=False, max_detections=5, iou_threshold=0.4)
    assert list(zip(best.scores[0].tolist(), best.classes[0].tolist())) == sorted(expected)[::-1][:5]
