"""The offline stand-ins (a detector, a denoiser, an LSTM sequence classifier) at their smallest sizes:
they train, write the documented files, come from the cache the second time, and do their job; the
LSTM's recipe failures are the catalogue's."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core import diagnose, standins

SMALL = {"detector": {"count": 3000, "epochs": 8, "eval_count": 50},
         "denoiser": {"count": 2000, "epochs": 2, "eval_count": 50},
         "sequence": {"count": 2000, "epochs": 1, "eval_count": 50, "units": 16}}
MAKERS = {"detector": standins.detector_example, "denoiser": standins.denoiser_example,
          "sequence": standins.sequence_example}
TRAINERS = {"detector": "_train_detector", "denoiser": "_train_denoiser", "sequence": "_train_sequence"}


@pytest.fixture(scope="module")
def folder():
    """The cache's own examples folder (``None``): notebook 09's test run takes the same small stand-ins from it."""
    return None


@pytest.fixture(scope="module")
def made(folder):
    """Each stand-in at its smallest size, trained once (cached by configuration, like every trained model)."""
    return {kind: MAKERS[kind](folder, **SMALL[kind]) for kind in MAKERS}


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _model(path):
    from workbench.core.keras_compat import keras

    return keras.models.load_model(path)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_second_call_is_the_cache_with_no_training(kind, made, folder, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    before = {p: p.stat().st_mtime_ns for p in (made[kind].model, made[kind].inputs, made[kind].labelled)}
    monkeypatch.setattr(standins, TRAINERS[kind], refuse)
    again = MAKERS[kind](folder, **SMALL[kind])
    assert again == made[kind]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_detector_files_and_boxes(made):
    inputs, labelled = _load(made["detector"].inputs), _load(made["detector"].labelled)
    assert set(inputs) == {"images"} and set(labelled) == {"images", "boxes", "classes", "class_names"}
    images, boxes, classes = labelled["images"], labelled["boxes"], labelled["classes"]
    assert images.dtype == np.uint8 and images.shape == (50, 64, 64, 1) and np.array_equal(images, inputs["images"])
    assert boxes.shape == (50, 3, 4) and boxes.dtype == np.float32 and classes.shape == (50, 3)
    assert np.issubdtype(classes.dtype, np.integer) and list(labelled["class_names"]) == [str(d) for d in range(10)]
    present = classes >= 0
    assert present[:, 0].all() and (present.sum(1) >= 1).all() and (present.sum(1) <= 3).all()
    assert (boxes[~present] == -1).all() and (boxes[present] >= 0).all() and (boxes[present] <= 1).all()
    assert np.allclose(boxes[present][:, 2:] - boxes[present][:, :2], 16 / 64)  # a digit scaled up twice


def test_detector_outputs_decoded_boxes_and_scores_that_find_the_digits(made):
    model = _model(made["detector"].model)
    assert model.output_names == ["boxes", "scores"]
    labelled = _load(made["detector"].labelled)
    boxes, scores = model.predict(labelled["images"].astype(np.float32) / 255.0, verbose=0)
    assert boxes.shape == (50, 64, 4) and scores.shape == (50, 64, 11)
    assert (boxes >= 0).all() and (boxes <= 1).all() and np.allclose(scores.sum(-1), 1, atol=1e-4)
    target_boxes, target_classes = standins.detector_targets(labelled["boxes"], labelled["classes"])
    digit = target_classes > 0
    anchors = np.broadcast_to(standins.anchors(), boxes.shape)
    found, anchored = _iou(boxes[digit], target_boxes[digit]), _iou(anchors[digit], target_boxes[digit])
    # Even this small model moves its anchors onto the digits and tells digits from the empty canvas;
    # an untrained (or broken) one leaves the anchors where they are and scores every anchor alike.
    assert found.mean() > 0.8 and found.mean() > anchored.mean() + 0.15, (found.mean(), anchored.mean())
    assert scores[..., 0][digit].mean() < scores[..., 0][~digit].mean() - 0.3


def _iou(a, b):
    low, high = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(high - low, 0, None), -1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], -1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_denoiser_files_and_it_denoises(made):
    inputs, labelled = _load(made["denoiser"].inputs), _load(made["denoiser"].labelled)
    assert set(inputs) == {"images"} and set(labelled) == {"images", "targets"}
    noisy, clean = labelled["images"], labelled["targets"]
    assert noisy.dtype == clean.dtype == np.uint8 and noisy.shape == clean.shape == (50, 28, 28, 1)
    denoised = _model(made["denoiser"].model).predict(noisy.astype(np.float32) / 255.0, verbose=0)
    assert denoised.shape == noisy.shape

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - clean / 255.0) ** 2))

    assert psnr(denoised) > psnr(noisy / 255.0) + 3, (psnr(denoised), psnr(noisy / 255.0))


def test_sequence_files_classifier_and_fused_lstm(made):
    from workbench import convert

    inputs, labelled = _load(made["sequence"].inputs), _load(made["sequence"].labelled)
    assert set(inputs) == {"inputs"} and set(labelled) == {"inputs", "labels", "class_names"}
    x = labelled["inputs"]
    assert x.dtype == np.float32 and x.shape == (50, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert labelled["labels"].shape == (50,) and np.issubdtype(labelled["labels"].dtype, np.integer)
    model = _model(made["sequence"].model)
    assert model.input_shape == (1, 28, 28)
    accuracy = np.mean(model.predict(x, verbose=0).argmax(1) == labelled["labels"])
    assert accuracy > 0.25, accuracy  # chance is 0.1
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in convert(model, "float32").ops


def test_lstm_recipes_on_float_sequences_and_their_failures_are_the_catalogues(made):
    """The float sequences go through the one recipe path (run_recipes: calibrated on the floats as they are, run
    with the LSTM's state reset for each input); the recipes that fail say the catalogue's cause."""
    from workbench.core.recipe_table import run_recipes
    from workbench.core.samples import read_samples
    from workbench.core.train import quantize_model

    data = read_samples("data", made["sequence"].labelled).take(slice(0, 20))
    runs = {r.name: r for r in run_recipes(str(made["sequence"].model), data, representative=data.feed(),
                                            recipes=["float32", "int8-ptq", "int16x8", "legacy-uint8"],
                                            calibration_size=20)}
    ptq = runs["int8-ptq"]
    assert ptq.ok and "UNIDIRECTIONAL_SEQUENCE_LSTM" in ptq.converted.ops and ptq.outcome == "ok"  # nothing left float
    assert ptq.fidelity.headline["snr_db"] > 20 and ptq.result.accuracy is not None
    assert runs["float32"].result.accuracy == pytest.approx(
        np.mean(_model(made["sequence"].model).predict(data.inputs[0], verbose=0).argmax(1) == data.labels))
    assert runs["int16x8"].outcome.startswith("failed: " + diagnose.entry("int16x8-lstm").title)
    assert runs["legacy-uint8"].outcome.startswith("failed: " + diagnose.entry("legacy-lstm").title)
    with pytest.raises(RuntimeError) as err:  # tfmot's 8-bit scheme has no entry for recurrent layers
        quantize_model(_model(made["sequence"].model))
    assert diagnose.explain(str(err.value)).entry.key == "qat-recurrent", str(err.value)


def test_16x8_with_float_fallback_loses_the_lstm_state(made):
    from workbench.core import litert
    from workbench.core.keras_compat import tf

    model = _model(made["sequence"].model)
    x = _load(made["sequence"].inputs)["inputs"][:10]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    tflite = converter.convert()
    with pytest.raises(diagnose.QuantizationError) as err:
        litert.run(tflite, x, batch_size=1, prepared=True)
    assert err.value.key == "lstm-lost-state", str(err.value)


def test_detector_qat_refusal_is_explained(made):
    from workbench.core.train import quantize_model

    with pytest.raises(RuntimeError) as err:  # the anchors' Rescaling has no QAT recipe in tfmot
        quantize_model(_model(made["detector"].model))
    assert diagnose.explain(str(err.value)).entry.key == "qat-layer-unsupported", str(err.value)
