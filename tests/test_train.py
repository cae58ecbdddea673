"""Training, QAT schemes and the caching of trained models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench import evaluate_keras
from workbench.core import artifacts
from workbench.core.train import QatConfig, TrainConfig, quantize_model, trained_lenet


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_lenet_shape(float_model):
    assert float_model.input_shape == (None, 28, 28, 1)
    assert float_model.output_shape == (None, 10)
    names = [layer.name for layer in float_model.layers]
    assert names == ["image", "conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "fc2", "probs"]


def test_float_training_learns(float_model, test_set):
    assert evaluate_keras(float_model, *test_set).accuracy > 0.9


def test_int8_scheme_has_input_quantizer_and_per_channel_conv(qat_int8):
    types = _layer_types(qat_int8)
    assert "QuantizeLayer" in types
    conv = next(layer for layer in qat_int8.layers if layer.name == "quant_conv1")
    kernel_min = [w for w in conv.weights if "kernel_min" in w.name][0]
    assert kernel_min.shape == (6,)  # one range per output channel


def test_uint8_legacy_scheme_is_per_tensor_without_input_quantizer(qat_uint8, qat_uint8_learned):
    assert "QuantizeLayer" not in _layer_types(qat_uint8)
    assert "QuantizeLayer" in _layer_types(qat_uint8_learned)
    conv = next(layer for layer in qat_uint8.layers if layer.name == "quant_conv1")
    kernel_min = [w for w in conv.weights if "kernel_min" in w.name][0]
    assert kernel_min.shape == ()


def test_qat_keeps_accuracy(qat_int8, qat_uint8, test_set):
    for model in (qat_int8, qat_uint8):
        assert evaluate_keras(model, *test_set).accuracy > 0.9


def test_trained_model_is_cached_and_repeatable(mnist, tmp_path, test_set):
    cfg = TrainConfig(epochs=1, train_size=3000, seed=3)
    a = trained_lenet(mnist, cfg, cache=tmp_path)
    files = list((tmp_path / "models").glob("*.weights.h5"))
    assert len(files) == 1
    written = files[0].stat().st_mtime_ns
    b = trained_lenet(mnist, cfg, cache=tmp_path)  # loaded, not retrained
    assert files[0].stat().st_mtime_ns == written  # retraining would have rewritten the entry
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    fresh = trained_lenet(mnist, cfg, cache=tmp_path / "other")  # retrained with the same seed
    acc_a = evaluate_keras(a, *test_set).accuracy
    acc_fresh = evaluate_keras(fresh, *test_set).accuracy
    assert abs(acc_a - acc_fresh) <= 0.005


def test_corrupt_cache_entry_is_retrained(mnist, tmp_path):
    from workbench.core.models import lenet

    cfg = TrainConfig(epochs=1, train_size=1000, seed=4)
    first = trained_lenet(mnist, cfg, cache=tmp_path)
    (path,) = (tmp_path / "models").glob("*.weights.h5")
    path.write_bytes(b"half a file")
    model = trained_lenet(mnist, cfg, cache=tmp_path)
    # retrained with the same seed (CPU training is repeatable): the first run's weights, not fresh ones
    for trained, again in zip(first.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(trained, again)
    # and the entry was replaced by a readable one holding those weights
    reread = lenet()
    reread.load_weights(str(path))
    for cached, again in zip(reread.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(cached, again)
    # an entry that matches its manifest but cannot be loaded: retrained, with a warning naming the load error
    path.write_bytes(b"not an HDF5 file")
    manifest = artifacts.manifest_path(path)
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "content": artifacts.digest(path, length=64)}))
    with pytest.warns(artifacts.CacheRebuilt, match=r"matched its manifest but could not be loaded \(\w+Error") as caught:
        model = trained_lenet(mnist, cfg, cache=tmp_path)
    assert len(caught) == 1  # one warning, with the real cause, not a second "did not match" one
    for trained, again in zip(first.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(trained, again)


def _quantizer_bits(model) -> set[int]:
    """The bit widths of every fake-quant in a QAT model: weights, activations and the input."""
    found = set()
    for layer in model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            found.add(layer.quantizer.num_bits)
        config = getattr(layer, "quantize_config", None)
        if config is not None:
            found |= {q.num_bits for _, q in config.get_weights_and_quantizers(layer.layer)}
            found |= {q.num_bits for _, q in config.get_activations_and_quantizers(layer.layer)}
    return found


@pytest.mark.parametrize("bits", [4, 8])
def test_low_bit_qat_builds(float_model, bits):
    model = quantize_model(float_model, QatConfig(scheme="int8", bits=bits))
    assert _quantizer_bits(model) == {bits}


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 1}, r"bits=1 is out of range; allowed: a whole number in \[2, 8\]"),
    ({"bits": 9}, r"bits=9"),
    ({"bits": 4.5}, r"bits=4.5 is not a whole number"),
    ({"scheme": "int4"}, r"scheme='int4' is not supported; allowed: 'int8', 'uint8-legacy'"),
    ({"delay_steps": -1}, r"delay_steps=-1 is out of range"),
    ({"delay_steps": 2.5}, r"delay_steps=2.5 is not a whole number"),
])
def test_bad_qat_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QatConfig(**kwargs)


def test_bad_train_config():
    with pytest.raises(ValueError, match=r"epochs=-1"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match=r"learning_rate=0"):
        TrainConfig(learning_rate=0)


def test_float_same_budget_fine_tunes_the_float_model(mnist, train_config, float_model, test_set):
    """QAT's equal-budget reference: the same float weights, trained the same extra epoch, without fake-quant."""
    from workbench.core.train import fine_tuned_lenet

    tuned = fine_tuned_lenet(mnist, train_config, epochs=1)
    assert not any(np.isnan(w).any() for w in tuned.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(tuned.get_weights(), float_model.get_weights()))
    again = fine_tuned_lenet(mnist, train_config, epochs=1)  # from the cache, identical
    assert all(np.array_equal(a, b) for a, b in zip(tuned.get_weights(), again.get_weights()))
    assert evaluate_keras(tuned, *test_set).accuracy > 0.9
    with pytest.raises(ValueError, match="epochs=0 is out of range"):
        fine_tuned_lenet(mnist, train_config, epochs=0)


def test_quant_delay_is_in_the_cache_key_only_when_set():
    from workbench.core import artifacts

    # an undelayed QatConfig hashes as it did before delay_steps existed: cached weights stay valid
    before = {"__type__": "QatConfig", "scheme": "int8", "bits": 8, "learned_input_range": None, "epochs": 1}
    assert artifacts.config_key(QatConfig()) == artifacts.config_key(before)
    assert artifacts.config_key(QatConfig(delay_steps=5)) != artifacts.config_key(QatConfig())


def test_quant_delay_must_leave_steps_with_fake_quant(mnist, float_model):
    """Refused before any training (a delayed run is trained and measured in 07_troubleshooting)."""
    from workbench.core.train import qat_steps, train_qat

    config = TrainConfig(train_size=256, batch_size=128)
    assert qat_steps(mnist, config, QatConfig()) == 2
    with pytest.raises(ValueError, match=r"delay_steps=2; allowed: 0 to 1 \(the QAT budget is 1 epoch\(s\) of 2 steps"):
        train_qat(float_model, mnist, QatConfig(delay_steps=2), config)
