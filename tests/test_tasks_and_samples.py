"""What a model does, read from its outputs (``tasks``), and the data it is measured on (``samples``, ``feeding``):
no TensorFlow, no model run."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core import feeding
from workbench.core.data import InputSpec
from workbench.core.samples import Samples, input_spec_of, read_samples
from workbench.core.tasks import main_output, recognise


@pytest.mark.parametrize("outputs, input_shape, kind, roles", [
    ([("probs", (None, 10))], (None, 28, 28, 1), "classifier", ("classifier",)),
    ([("mask", (None, 28, 28, 1))], (None, 28, 28, 1), "dense", ("dense",)),
    ([("embedding", (None, 4, 64))], (None, 28, 28, 1), "generic", ("generic",)),
    ([("boxes", (None, 64, 4)), ("scores", (None, 64, 11))], (None, 64, 64, 1), "detector", ("boxes", "scores")),
    # TFLite_Detection_PostProcess: boxes, classes, scores, count, whatever their names
    ([("a", (1, 10, 4)), ("b", (1, 10)), ("c", (1, 10)), ("d", (1,))], (1, 300, 300, 3), "detector",
     ("boxes", "classes", "scores", "count")),
    ([("detection_boxes", (1, 10, 4)), ("detection_scores", (1, 10)), ("detection_classes", (1, 10)),
      ("num_detections", (1,))], (1, 300, 300, 3), "detector", ("boxes", "scores", "classes", "count")),
])
def test_the_task_is_read_from_the_outputs(outputs, input_shape, kind, roles):
    task = recognise(outputs, input_shape)
    assert (task.kind, task.roles) == (kind, roles) and task.reason


def test_a_task_given_wins_and_a_wrong_one_is_named():
    assert recognise([("y", (None, 10))], (None, 8, 8, 1), task="generic").reason == "given as --task generic"
    with pytest.raises(ValueError, match=r"task='detector' for outputs of shapes \[\(None, 10\)\]; allowed: a model "
                                         r"with a box output"):
        recognise([("y", (None, 10))], (None, 8, 8, 1), task="detector")
    with pytest.raises(ValueError, match="task='segment'"):
        recognise([("y", (None, 10))], None, task="segment")


def test_the_main_output_is_the_one_the_labels_fit_else_the_probabilities():
    rng = np.random.default_rng(0)
    regression, logits = rng.normal(size=(20, 2)), rng.normal(size=(20, 5))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    task = recognise([("reg", (None, 2)), ("cls", (None, 5))], None)
    assert main_output(task, [regression, probabilities]).main == 1  # the softmax, not the first (N, 2) output
    assert main_output(task, [regression, logits], top_label=3).main == 1  # labels up to 3 do not fit 2 scores
    assert main_output(task, [regression, logits]).main == 0


def test_float_data_are_fed_as_they_are_and_quantized_with_the_inputs_own_scale():
    x = np.array([[-1.0, 0.0, 0.6]], np.float32)
    assert np.array_equal(feeding.prepare_input(x, "float32", 0.0, 0), x)
    assert np.array_equal(feeding.prepare_input(x, "int8", 0.5, 2), np.array([[0, 2, 3]], np.int8))
    assert np.array_equal(feeding.prepare_input(x, "uint8", 1 / 255, 0), np.array([[0, 0, 153]], np.uint8))  # clipped
    pixels = np.array([[0, 255]], np.uint8)
    assert np.allclose(feeding.prepare_input(pixels, "float32", 0.0, 0, InputSpec(-1, 1)), [[-1, 1]])
    assert feeding.match_inputs(["meta", "image"], ["serving_default_image:0", "serving_default_meta:0"]) == \
        ["image", "meta"]
    assert feeding.match_inputs(["a"], ["x", "y"]) is None


def test_an_npz_with_or_without_labels_of_every_kind(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "plain.npz", inputs=x)
    plain = read_samples("--data", tmp_path / "plain.npz")
    assert not plain.labelled and plain.names == ("inputs",) and not plain.is_images
    boxes = np.full((6, 2, 4), -1, np.float32)
    boxes[:, 0] = [0.1, 0.1, 0.5, 0.5]
    classes = np.full((6, 2), -1)
    classes[:, 0] = 3
    np.savez(tmp_path / "boxes.npz", images=np.zeros((6, 8, 8), np.uint8), boxes=boxes, classes=classes)
    boxed = read_samples("--data", tmp_path / "boxes.npz")
    assert boxed.labelled and boxed.images.shape == (6, 8, 8, 1) and boxed.box_classes.dtype == np.int64
    np.savez(tmp_path / "two.npz", meta=x[:, 0], image=np.zeros((6, 4, 4, 1), np.uint8), labels=np.arange(6))
    two = read_samples("--data", tmp_path / "two.npz")
    assert two.names == ("meta", "image") and list(two.labels) == list(range(6))
    assert two.ordered(["serving_default_image:0", "serving_default_meta:0"]).names == ("image", "meta")
    with pytest.raises(ValueError, match=r"holds input arrays meta, image for a model with 1 input\(s\) \(x\)"):
        two.ordered(["x"])


@pytest.mark.parametrize("arrays, message", [
    ({"inputs": np.full((3, 2), np.nan, np.float32)}, "holds NaN or infinite values; allowed: finite numbers"),
    ({"images": np.zeros((3, 4, 4), np.uint8), "boxes": np.zeros((3, 4)), "classes": np.zeros((3, 1), int)},
     r"array 'boxes' has shape \(3, 4\); allowed: \(3, M, 4\)"),
    ({"images": np.zeros((3, 4, 4), np.uint8), "boxes": np.zeros((3, 1, 4))}, "has 'boxes' without 'classes'"),
    ({"images": np.zeros((3, 4, 4), np.uint8), "labels": np.arange(2)}, "has 2 entries for 3 images"),
    ({"images": np.zeros((3, 4, 4), np.uint8), "targets": np.zeros((2, 4, 4))}, "'targets' has 2 rows for 3 inputs"),
    ({"labels": np.arange(3), "class_names": np.array(["a"])}, "has no input array"),
    ({"text": np.array(["a", "b"])}, r"is <U1 of shape \(2,\); allowed: uint8 images"),
])
def test_bad_data_are_one_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        read_samples("--data", tmp_path / "bad.npz")


def test_the_uint8_stats_of_float_data_come_from_the_range_given_else_the_datas_own():
    data = Samples((np.array([[0.2, 3.0]], np.float32),), ("inputs",))
    spec, note = input_spec_of(data, None, InputSpec())
    assert (spec.lo, spec.hi) == (0.0, 3.0) and "the data's own range [0, 3]" in note  # widened to hold 0
    spec, note = input_spec_of(data, InputSpec(-1, 4), InputSpec())
    assert (spec.lo, spec.hi) == (-1, 4) and "given" in note
    images = Samples((np.zeros((1, 2, 2, 1), np.uint8),))
    assert input_spec_of(images, None, InputSpec(0, 255)) == (InputSpec(0, 255), None)
