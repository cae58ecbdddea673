"""Batched LiteRT evaluation with correct input/output (de)quantization."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import InputSpec, convert, evaluate, evaluate_keras, predict


def test_float_tflite_matches_keras(float_model, float_tflite, test_set):
    images, labels = test_set
    keras_result = evaluate_keras(float_model, images, labels)
    lite = evaluate(float_tflite, images, labels, reference=keras_result)
    assert lite.agreement > 0.999
    assert lite.accuracy == pytest.approx(keras_result.accuracy, abs=0.002)


def test_batched_equals_one_image_per_invoke(qat_uint8, test_set):
    images, _ = test_set
    model = convert(qat_uint8, "legacy-uint8")
    batched = predict(model, images[:300], batch_size=128)  # includes a short last batch
    single = predict(model, images[:300], batch_size=1)
    np.testing.assert_array_equal(batched.argmax(1), single.argmax(1))
    np.testing.assert_allclose(batched, single, atol=1e-6)


def test_uint8_outputs_are_dequantized(qat_uint8, test_set):
    images, _ = test_set
    model = convert(qat_uint8, "legacy-uint8")
    assert model.output.dtype == "uint8"
    scores = predict(model, images[:50])
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=0.05)  # softmax probabilities again


def test_int8_input_is_quantized_with_the_models_own_params(float_model, mnist, test_set):
    images, labels = test_set
    m = convert(float_model, "int8-ptq", io_type="int8", representative=mnist.train_images[:200])
    assert m.input.dtype == "int8"
    f = convert(float_model, "float32")
    assert evaluate(m, images, labels, reference=evaluate(f, images, labels)).agreement > 0.98


def test_result_record(float_tflite, test_set):
    images, labels = test_set
    r = evaluate(float_tflite, images, labels)
    assert r.confusion.sum() == len(labels)
    assert r.accuracy == pytest.approx(np.trace(r.confusion) / len(labels))
    assert r.per_class_accuracy.shape == (10,)
    assert r.images_per_second > 0 and r.count == len(labels)


def test_input_spec_changes_what_a_float_model_sees(float_tflite, test_set):
    images, labels = test_set
    right = evaluate(float_tflite, images, labels, InputSpec(0, 1)).accuracy
    wrong = evaluate(float_tflite, images, labels, InputSpec(-1, 1)).accuracy
    assert right > wrong + 0.05


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 32, 32, 1), np.uint8),
     r"images has shape \(2, 32, 32, 1\): images of \(32, 32, 1\), but the model reads \(28, 28, 1\); "
     r"allowed: \(N, 28, 28, 1\)"),
    (np.zeros((2, 28, 28), np.float32), r"images of shape \(2, 28, 28\) for a model input .* of \(28, 28, 1\) per row; "
                                         r"allowed: arrays \(N, 28, 28, 1\)"),
    (np.full((2, 28, 28, 1), np.nan, np.float32), r"images holds NaN or infinite values; allowed: finite numbers"),
    (np.zeros((0, 28, 28, 1), np.uint8), r"images is empty"),
])
def test_bad_images(float_tflite, images, message):
    with pytest.raises(ValueError, match=message):
        evaluate(float_tflite, images, np.zeros(len(images), int))


def test_float_data_are_fed_as_they_are_and_unlabelled_data_measured_against_the_float_model(float_model, test_set):
    """Pixels already in the model's range give the uint8 images' predictions; without labels the record has no
    accuracy and its fidelity to the float model (converted from Keras here), which a model against itself keeps."""
    import warnings

    import workbench as wb

    images, labels = test_set[0][:300], test_set[1][:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wb.QuantizationWarning)
        uint8 = wb.convert(float_model, "legacy-uint8", default_ranges=(0, 6))
    as_pixels = evaluate(uint8, images, labels)
    as_floats = evaluate(uint8, images.astype(np.float32) / 255, labels)
    assert np.array_equal(as_pixels.predictions, as_floats.predictions)
    unlabelled = evaluate(uint8, images, reference=float_model)
    assert unlabelled.accuracy is None and not unlabelled.labelled
    fid = unlabelled.fidelity
    assert fid.task.kind == "classifier" and 0.5 < unlabelled.agreement < 1 and 5 < fid.headline["snr_db"] < 40
    labelled = evaluate(uint8, images, labels, reference=float_model)
    assert labelled.accuracy == as_pixels.accuracy and labelled.fidelity.headline["snr_db"] == fid.headline["snr_db"]
    itself = evaluate(uint8, images, reference=uint8).fidelity.headline
    assert itself["agreement"].value == 1.0 and itself["snr_db"] == float("inf")
    with pytest.raises(ValueError, match="labels=None and no float model to measure against"):
        evaluate(uint8, images)


@pytest.mark.parametrize("labels, message", [
    ([10, 0], r"labels contains 10; allowed: class indices 0..9 \(the model has 10 classes\)"),
    ([-1, 0], r"labels contains -1; allowed: class indices 0..9"),
    ([0], r"labels has 1 entries for 2 images"),
    ([0.5, 1], r"labels has dtype float64 with non-integer values"),
])
def test_bad_labels_are_refused_before_running(float_tflite, test_set, labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate(float_tflite, test_set[0][:2], labels)


def test_missing_and_corrupt_model_files(tmp_path, test_set):
    images, labels = test_set
    with pytest.raises(ValueError, match=r"model=.*missing.tflite' does not exist"):
        evaluate(tmp_path / "missing.tflite", images, labels)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"not a TFLite flatbuffer"):
        evaluate(bad, images, labels)
    with pytest.raises(ValueError, match=r"not a TFLite flatbuffer"):
        evaluate(b"garbage", images, labels)


def test_truncated_model_bytes(float_tflite, test_set):
    images, labels = test_set
    with pytest.raises(ValueError, match=r"could not be read as a TFLite model"):
        evaluate(float_tflite.tflite[: len(float_tflite.tflite) // 3], images, labels)


def test_label_count_must_match(float_tflite, test_set):
    images, labels = test_set
    with pytest.raises(ValueError, match=r"labels has 5 entries for 2000 images"):
        evaluate(float_tflite, images, labels[:5])
