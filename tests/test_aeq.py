"""The ai-edge-quantizer adapter, with real AEQ and real LiteRT on the session's small-trained LeNet."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench import InputSpec, evaluate, read_model
from workbench.core.aeq import (BLOCK_SIZES, KINDS, METRICS, AeqResult, quantize_int4_weights, quantize_int8_static,
                           validate_per_tensor)

LENET_WEIGHTS = ("lenet/conv1/Conv2D", "lenet/conv2/Conv2D", "lenet/fc1/MatMul", "lenet/fc2/MatMul",
                 "lenet/probs/MatMul")


def _flatbuffer_types(model: bytes) -> dict[str, str]:
    """Tensor name -> type as stored in the flatbuffer (the interpreter reports int4 as int8)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
    sg = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    return {sg.Tensors(i).Name().decode(): names[sg.Tensors(i).Type()] for i in range(sg.TensorsLength())}


@pytest.fixture(scope="module")
def calibration(mnist):
    return InputSpec().normalize(mnist.train_images[:300])


@pytest.fixture(scope="module")
def int4(float_tflite):
    return quantize_int4_weights(float_tflite.tflite)


@pytest.fixture(scope="module")
def int8(float_tflite, calibration):
    return quantize_int8_static(float_tflite.tflite, calibration)


@pytest.fixture(scope="module")
def float_accuracy(float_tflite, test_set):
    return evaluate(float_tflite.tflite, *test_set).accuracy


def test_int4_per_channel_weights_are_int4_and_the_model_small(int4, float_tflite):
    assert isinstance(int4, AeqResult)
    assert int4.recipe_name == "weight_only_wi4_afp32"
    assert int4.quantized_tensors == LENET_WEIGHTS and int4.skipped == ()
    assert len(int4.tflite) < 0.25 * len(float_tflite.tflite)  # measured 38.7 KB of 250.5 KB
    types = _flatbuffer_types(int4.tflite)
    assert {types[w] for w in LENET_WEIGHTS} == {"int4"}
    assert int4.weight_dtypes == dict.fromkeys(LENET_WEIGHTS, "int4")
    info = read_model(int4.tflite)
    by_name = {t.name: t for t in info.tensors}
    # LiteRT's interpreter shows the same tensors as int8 with one scale per output channel.
    assert all(by_name[w].dtype == "int8" and by_name[w].per_channel for w in LENET_WEIGHTS)
    assert set(info.dtype_counts(activations_only=True)) == {"float32"}
    assert info.ops.count("DEQUANTIZE") == len(LENET_WEIGHTS)
    assert info.inputs[0].dtype == info.outputs[0].dtype == "float32"


def test_int4_per_channel_runs_close_to_float(int4, test_set, float_accuracy):
    result = evaluate(int4.tflite, *test_set)
    assert abs(result.accuracy - float_accuracy) <= 0.02


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_blockwise_on_lenet_quantizes_nothing_and_says_why(float_tflite, block_size):
    # LeNet's FULLY_CONNECTED input dimensions are 400, 120 and 84: no block size divides any.
    with pytest.raises(ValueError) as err:
        quantize_int4_weights(float_tflite.tflite, "blockwise", block_size)
    message = str(err.value)
    assert f"granularity='blockwise' with block_size={block_size} quantized no weight tensor" in message
    assert "lenet/fc1/MatMul 400" in message and "allowed: granularity='channel'" in message
    assert f"not divisible by block size {block_size}" in message  # AEQ's own refusal, quoted


def test_blockwise_quantizes_the_fully_connected_weights_the_block_divides(tmp_path):
    from workbench.core.keras_compat import keras, tf

    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.Flatten()(x)  # 144 values: 32 does not divide it
    x = keras.layers.Dense(64, activation="relu", name="fc_a")(x)  # weight (64, 144)
    x = keras.layers.Dense(32, activation="relu", name="fc_b")(x)  # weight (32, 64)
    out = keras.layers.Dense(10, name="fc_c")(x)  # weight (10, 32)
    model = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out, name="model")).convert()

    r32 = quantize_int4_weights(model, "blockwise", 32)
    assert r32.recipe_name == "dynamic_wi4b32_afp32"
    assert r32.quantized_tensors == ("model/fc_b/MatMul", "model/fc_c/MatMul")
    assert r32.skipped == ("model/conv/Conv2D", "model/fc_a/MatMul")  # conv: FULLY_CONNECTED only
    types = _flatbuffer_types(r32.tflite)
    assert types["model/fc_b/MatMul"] == "int4" and types["model/fc_a/MatMul"] == "float32"
    assert quantize_int4_weights(model, "blockwise", 64).quantized_tensors == ("model/fc_b/MatMul",)

    images = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    table = validate_per_tensor(model, r32, images, metrics=("mse", "cosine_similarity"))
    row = table.set_index("tensor").loc["model/fc_b/MatMul"]
    assert row["dtype"] == "int4" and 0.99 < row["cosine_similarity"] <= 1.0


def test_int8_static_has_int8_activations_and_float_io(int8, float_tflite):
    assert int8.recipe_name == "static_wi8_ai8"
    assert int8.quantized_tensors == LENET_WEIGHTS and int8.skipped == ()
    assert len(int8.tflite) < 0.5 * len(float_tflite.tflite)  # measured 72.5 KB
    info = read_model(int8.tflite)
    assert info.inputs[0].dtype == info.outputs[0].dtype == "float32"
    assert not info.inputs[0].quantized and not info.outputs[0].quantized
    # Every activation is int8 except the float output written by the final DEQUANTIZE.
    assert info.dtype_counts(activations_only=True).get("float32") == 1
    assert info.dtype_counts(activations_only=True)["int8"] >= 8
    assert info.ops[0] == "QUANTIZE" and info.ops[-1] == "DEQUANTIZE"
    assert {t.dtype for t in info.tensors if t.name in LENET_WEIGHTS} == {"int8"}


def test_int8_static_runs_close_to_float(int8, test_set, float_accuracy):
    assert abs(evaluate(int8.tflite, *test_set).accuracy - float_accuracy) <= 0.02


def test_quantizing_prints_nothing(float_tflite, calibration, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_int4_weights(float_tflite.tflite)
        quantize_int8_static(float_tflite.tflite, calibration[:20])  # 20 images x 11 ops: AEQ would show a bar
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert not [w for w in caught if "preserve_all_tensors" in str(w.message)]


def test_validate_per_tensor_reports_each_tensor_and_int4_is_worse_than_int8(float_tflite, int4, int8, test_set):
    images = InputSpec().normalize(test_set[0][:100])
    t4 = validate_per_tensor(float_tflite.tflite, int4, images)
    t8 = validate_per_tensor(float_tflite.tflite, int8.tflite, images)
    for table in (t4, t8):
        assert list(table.columns) == ["tensor", "kind", "dtype", "op", "position", *METRICS, "snr_db"]
        assert table.attrs["images"] == 100
        assert set(table["kind"]) == set(KINDS)
        assert list(table["kind"]) == sorted(table["kind"], key=KINDS.index)
        out = table.iloc[0]
        assert out["kind"] == "output" and out["tensor"] == read_model(float_tflite.tflite).outputs[0].name
        assert np.isfinite(out[list(METRICS) + ["snr_db"]].astype(float)).all()
        assert out["snr_db"] == pytest.approx(10 * np.log10(out["snr"]))
        mids = table[table["kind"] == "intermediate"]
        assert list(mids["position"]) == sorted(mids["position"])
        assert set(table.loc[table["tensor"].isin(LENET_WEIGHTS), "kind"]) == {"constant"}
    assert set(t4.loc[t4["tensor"].isin(LENET_WEIGHTS), "dtype"]) == {"int4"}
    # Measured on 10 disjoint sets of 50 test images: int4 output MSE 2.5-43x the int8 one.
    assert t4.iloc[0]["mse"] > t8.iloc[0]["mse"]
    assert t4.iloc[0]["cosine_similarity"] < t8.iloc[0]["cosine_similarity"]


def test_the_module_does_not_import_tensorflow(float_tflite, tmp_path):
    path = tmp_path / "float.tflite"
    path.write_bytes(float_tflite.tflite)
    code = ("import sys; from pathlib import Path; from workbench import aeq; "
            f"r = aeq.quantize_int4_weights(Path({str(path)!r}).read_bytes()); "
            "assert r.quantized_tensors; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr


def _bad_calls(float_bytes, int8_bytes, images):
    u8 = (images * 255).astype(np.uint8)
    nan = images.copy()
    nan[0, 0, 0, 0] = np.nan
    return [
        (lambda: quantize_int4_weights(b"not a model"), "float_tflite"),
        (lambda: quantize_int4_weights("model.tflite"), "float_tflite=str"),
        (lambda: quantize_int4_weights(float_bytes, granularity="tensor"), "granularity='tensor'"),
        (lambda: quantize_int4_weights(float_bytes, "blockwise", block_size=48), "block_size=48"),
        (lambda: quantize_int4_weights(int8_bytes), "float_tflite is already quantized"),
        (lambda: quantize_int8_static(float_bytes, images[:0]), "calibration is empty"),
        (lambda: quantize_int8_static(float_bytes, u8), "calibration has dtype uint8"),
        (lambda: quantize_int8_static(float_bytes, images[..., 0]), "calibration has shape"),
        (lambda: quantize_int8_static(float_bytes, np.zeros((4, 32, 32, 1), np.float32)), r"\(N, 28, 28, 1\)"),
        (lambda: quantize_int8_static(float_bytes, nan), "calibration contains NaN"),
        (lambda: quantize_int8_static(float_bytes, images, num_threads=0), "num_threads=0"),
        (lambda: validate_per_tensor(float_bytes, b"\0" * 64, images), "quantized"),
        (lambda: validate_per_tensor(float_bytes, int8_bytes, images, metrics=("psnr",)), "metrics="),
        (lambda: validate_per_tensor(float_bytes, int8_bytes, images, metrics=()), "metrics="),
        (lambda: validate_per_tensor(float_bytes, int8_bytes, u8), "images has dtype uint8"),
    ]


def test_bad_arguments_raise_value_errors_naming_the_parameter(float_tflite, int8, calibration):
    for call, match in _bad_calls(float_tflite.tflite, int8.tflite, calibration[:4]):
        with pytest.raises(ValueError, match=match):
            call()


def test_aeq_refusals_are_explained_and_its_internal_errors_are_not_disguised():
    from workbench.core import aeq
    from workbench.core.diagnose import QuantizationError

    with pytest.raises(QuantizationError) as refused:
        with aeq._aeq_errors():
            raise RuntimeError("Didn't find op for builtin opcode 'CONV_2D' version '9'")
    assert refused.value.key == "op-version" and isinstance(refused.value.__cause__, RuntimeError)
    with pytest.raises(KeyError) as internal:  # no known refusal: itself, saying where it came from
        with aeq._aeq_errors():
            raise KeyError("tensor_name")
    assert any("inside ai-edge-quantizer" in note for note in internal.value.__notes__)
