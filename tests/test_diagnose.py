"""The diagnosis catalog: every entry recognises the real messages it was written for."""

from __future__ import annotations

import pytest

from workbench import QuantizationError, diagnose


@pytest.mark.parametrize("entry", diagnose.CATALOG, ids=lambda e: e.key)
def test_each_entry_recognises_its_own_examples(entry):
    assert entry.examples, f"{entry.key} has no example message"
    for message in entry.examples:
        found = diagnose.explain(message)
        assert found.entry is entry, (entry.key, message, found.entry and found.entry.key)
        text = str(found)
        assert entry.cause in text and entry.fix in text and message in text


def test_keys_are_unique_and_the_ones_convert_uses_exist():
    keys = [e.key for e in diagnose.CATALOG]
    assert len(keys) == len(set(keys))
    for key in ("per-channel-on-uint8", "lacking-min-max", "came-out-float", "stats-ignored"):
        assert diagnose.entry(key).key == key


def test_unknown_message_keeps_the_original():
    found = diagnose.explain("something nobody has seen")
    assert found.entry is None and "something nobody has seen" in str(found)


def test_unknown_key_is_a_value_error():
    with pytest.raises(ValueError, match="no-such-key"):
        diagnose.entry("no-such-key")


def test_explain_error_wraps_once():
    err = diagnose.explain_error(RuntimeError("Type UINT8 is unsupported by op Rsqrt."))
    assert isinstance(err, diagnose.QuantizationError) and err.key == "no-quantized-kernel"
    assert diagnose.explain_error(err) is err
    assert "RuntimeError: Type UINT8" in str(err)


def test_catalog_rows():
    rows = diagnose.catalog_rows()
    assert len(rows) == len(diagnose.CATALOG) and set(rows[0]) == {"key", "title", "cause", "fix"}


def test_convert_raises_explained_error_for_a_real_failure(qat_int8):
    from workbench import convert

    with pytest.raises(diagnose.QuantizationError) as info:
        convert(qat_int8, "legacy-uint8")
    assert info.value.key == "per-channel-on-uint8"
    assert "failed to prepare" in str(info.value)  # the original message sits beneath the explanation


def test_an_op_version_the_runtime_lacks_is_explained(float_tflite):
    from workbench.core import litert

    assert dict(litert.op_versions(float_tflite))["CONV_2D"] == 1
    newer = litert.with_op_version(float_tflite, "CONV_2D", 99)
    assert dict(litert.op_versions(newer))["CONV_2D"] == 99
    with pytest.raises(QuantizationError, match=r"model is newer than the runtime") as err:
        litert.read_model(newer)
    assert err.value.key == "op-version" and "Didn't find op for builtin opcode 'CONV_2D' version '99'" in str(err.value)
    with pytest.raises(ValueError, match=r"op='LSTM' is not in the model; allowed: CONV_2D, FULLY_CONNECTED"):
        litert.with_op_version(float_tflite, "LSTM", 2)
