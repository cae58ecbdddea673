"""Per-layer quantization error on LeNet, uint8 (legacy) and int8."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import convert
from workbench.troubleshoot.layer_error import (debugger_statistics, error_metrics, layer_errors, plot_layer_errors,
                              suggest_float_layers)

WEIGHTED = ("conv1", "conv2", "fc1", "fc2", "probs")


@pytest.fixture(scope="module")
def images(mnist):
    return mnist.test_images[:200]


@pytest.fixture(scope="module")
def int8_model(float_model, mnist):
    return convert(float_model, "int8-ptq", representative=mnist.train_images[:200])


@pytest.fixture(scope="module")
def uint8_model(qat_uint8):
    return convert(qat_uint8, "legacy-uint8")


def test_int8_every_conv_and_dense_layer_listed_with_finite_errors(int8_model, float_model, images):
    report = layer_errors(int8_model, float_model, images)
    names = [e.layer for e in report.layers]
    assert set(WEIGHTED) <= set(names)
    for e in report.layers:
        assert e.dtype == "int8" and np.isfinite([e.rmse, e.snr_db, e.relative, e.max_abs]).all() and e.scale > 0
    assert report.get("conv1").op == "CONV_2D" and report.get("probs").op == "SOFTMAX"


def test_uint8_every_conv_and_dense_layer_listed(uint8_model, qat_uint8, images):
    report = layer_errors(uint8_model, qat_uint8, images)
    names = {e.layer.removeprefix("quant_") for e in report.layers}
    assert set(WEIGHTED) <= names
    assert all(e.dtype == "uint8" and np.isfinite(e.rmse) for e in report.layers)
    # a QAT model's conversion reproduces its own fake-quant arithmetic: errors stay around a step or two
    assert report.get("quant_conv1").rmse_in_steps < 3


def test_one_layer_equals_a_direct_computation(int8_model, float_model, images, mnist):
    from workbench.core.keras_compat import keras

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    report = layer_errors(int8_model, float_model, images, keep_values=True)
    fc1 = report.get("fc1")
    real_kept, ref_kept = report.values["fc1"]
    assert fc1.rmse == pytest.approx(float(np.sqrt(np.mean((real_kept - ref_kept) ** 2))), rel=1e-6)
    # and independently: the same tensor read from a reference-kernel interpreter
    interp = Interpreter(model_content=int8_model.tflite, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [len(images), 28, 28, 1])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images.astype(np.float32) / 255.0)
    interp.invoke()
    detail = next(t for t in interp.get_tensor_details() if t["name"] == fc1.tensor)
    q = interp.get_tensor(detail["index"]).astype(np.float64)
    real = fc1.scale * (q - fc1.zero_point)
    ref = keras.Model(float_model.inputs, float_model.get_layer("fc1").output).predict(
        images.astype(np.float32) / 255.0, verbose=0)
    rmse = np.sqrt(np.mean((real - ref) ** 2))
    assert fc1.rmse == pytest.approx(rmse, rel=1e-5)
    assert fc1.snr_db == pytest.approx(10 * np.log10(np.mean(ref ** 2) / np.mean((real - ref) ** 2)), rel=1e-5)


def test_error_metrics_reference_values():
    rmse, snr, rel, mx = error_metrics(np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert rmse == pytest.approx(0.5) and mx == pytest.approx(1.0)
    assert snr == pytest.approx(10 * np.log10(7.5 / 0.25)) and rel == pytest.approx(0.5 / np.sqrt(7.5))
    with pytest.raises(ValueError, match="same shape"):
        error_metrics(np.zeros(3), np.zeros(4))


def test_plot_both_models(int8_model, uint8_model, float_model, qat_uint8, images):
    reports = {"int8": layer_errors(int8_model, float_model, images),
               "uint8": layer_errors(uint8_model, qat_uint8, images)}
    ax = plot_layer_errors(reports)
    assert len(ax.patches) == sum(len(r.layers) for r in reports.values())
    with pytest.raises(ValueError, match="metric"):
        plot_layer_errors(reports, metric="loudness")


def test_float_model_has_nothing_to_compare(float_tflite, float_model, images):
    with pytest.raises(ValueError, match="no quantized activation"):
        layer_errors(float_tflite, float_model, images)


def test_debugger_statistics_and_denylist(float_model, mnist):
    stats = debugger_statistics(float_model, mnist.train_images[:100])
    assert len(stats) >= 5 and np.isfinite(stats["rmse/scale"]).all()
    chosen = suggest_float_layers(stats, float_model, count=2)
    assert len(chosen) == 2 and set(chosen) <= set(WEIGHTED)
    kept = convert(float_model, "int8-ptq", representative=mnist.train_images[:100], keep_float=(chosen[0],))
    full = convert(float_model, "int8-ptq", representative=mnist.train_images[:100])
    assert kept.activation_dtypes.get("float32", 0) > full.activation_dtypes.get("float32", 0)


def test_keep_float_validation(float_model):
    with pytest.raises(ValueError, match="keep_float"):
        convert(float_model, "dynamic-range", keep_float=("conv1",))
    with pytest.raises(ValueError, match="keep_float"):
        convert(float_model, "int8-ptq", representative=np.zeros((4, 28, 28, 1), np.uint8), keep_float=("nope",))


def test_aeq_tensor_errors_rank_int4_worse_than_int8(float_model, float_tflite, mnist, test_set):
    from workbench import convert, layer_error

    images = test_set[0][:60]
    int4 = convert(float_model, "aeq-int4-weights")
    int8 = convert(float_model, "aeq-int8", representative=mnist.train_images, calibration_size=200)
    frames = {name: layer_error.tensor_errors(model, float_tflite, images) for name, model in
              (("int4", int4), ("int8", int8))}
    for frame in frames.values():
        assert frame.attrs["images"] == 60
        assert set(frame.kind) >= {"output", "intermediate"}
        assert frame[["mse", "cosine_similarity"]].notna().all().all()
    out = {name: frame[frame.kind == "output"].iloc[0] for name, frame in frames.items()}
    assert out["int4"]["mse"] > out["int8"]["mse"]
    ax = layer_error.plot_tensor_errors(frames, "mse")
    assert len(ax.patches) == 2 * len(frames["int8"][frames["int8"].kind == "intermediate"])
