"""The diagnosis catalog: every entry recognises the real messages it was written for."""

from __future__ import annotations

import pytest

from workbench import QuantizationError, diagnose


def test_the_catalog_is_not_empty():  # an empty catalog would leave the parametrized tests below with no case
    assert len(diagnose.CATALOG) >= 15, [e.key for e in diagnose.CATALOG]


@pytest.mark.parametrize("entry", diagnose.CATALOG, ids=lambda e: e.key)
def test_each_entry_recognises_its_own_examples_and_no_others(entry):
    assert entry.examples, f"{entry.key} has no example message"
    for message in entry.examples:
        found = diagnose.explain(message)
        # the entry itself, its title naming the op where it has an {op} (at_op)
        assert found.entry == diagnose.at_op(entry, message), (entry.key, message, found.entry and found.entry.key)
        text = str(found)
        assert found.entry.title in text and entry.cause in text and entry.fix in text and message in text
    # A pattern that matches too much (say ``.*``) would pass the loop above for an entry placed late in the
    # catalog; it must not match any other entry's messages either.
    others = [(o.key, m) for o in diagnose.CATALOG if o is not entry for m in o.examples]
    assert not [(key, m) for key, m in others if entry.matches(m)], entry.key


def test_keys_are_unique_and_every_key_the_package_names_exists():
    import re
    from pathlib import Path

    keys = [e.key for e in diagnose.CATALOG]
    assert len(keys) == len(set(keys))
    package = Path(diagnose.__file__).resolve().parents[1]
    named = {key for path in package.rglob("*.py") if path.name != "diagnose.py"
             for key in re.findall(r"""diagnose\.entry\(["']([a-z0-9-]+)["']\)""", path.read_text())}
    assert {"came-out-float", "per-channel-on-uint8"} <= named, named  # convert's own messages: the scan works
    assert named <= set(keys), named - set(keys)
    for key in named:
        assert diagnose.entry(key) is next(e for e in diagnose.CATALOG if e.key == key)


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
    assert not [row["key"] for row in rows if "{" in row["title"]]  # an {op} reads "an op" in the table


# LiteRT's message on MobileNetV2 (weights=None, 224x224) with int16x8; on MobileNet v1 the same at node 9 (CONV_2D).
INT16_OVERFLOW = ("tflite/kernels/kernel_util.cc:349 no_integer_overflow_from_quantization was not true.Node number "
                  "{node} ({op}) failed to prepare.")


def test_the_title_names_the_op_the_runtime_could_not_prepare():
    overflow = diagnose.entry("int16-activation-clamp-overflow")
    assert "{op}" in overflow.title and "{op}" not in diagnose.entry("per-channel-on-uint8").title
    for node, op in ((15, "DEPTHWISE_CONV_2D"), (9, "CONV_2D")):
        found = diagnose.explain(INT16_OVERFLOW.format(node=node, op=op))
        assert found.entry.key == overflow.key and f"{op} (node {node}) are too fine" in found.entry.title
        assert str(found).startswith(found.entry.title)
    bare = diagnose.explain("no_integer_overflow_from_quantization was not true.")  # no node named
    assert bare.entry.title.startswith("The int16 output steps of an op are")
    plain = diagnose.entry("per-channel-on-uint8")
    assert diagnose.at_op(plain, INT16_OVERFLOW) is plain


def _tiny_depthwise(weight: float):
    """One 3x3 DepthwiseConv2D with a fused ReLU6 and every weight ``weight``, then a Dense: on pixels in [0, 1]
    its outputs are at most 9 * weight. Named and weighted the same at every call, so its SavedModel export is
    the cache's from the second run on."""
    import numpy as np

    from workbench.core.keras_compat import keras

    inputs = keras.Input((8, 8, 1), name="image")
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")
    head = keras.layers.Dense(3, name="head")
    model = keras.Model(inputs, head(keras.layers.Flatten(name="flat")(depthwise(inputs))), name="tiny_depthwise")
    depthwise.set_weights([np.full(w.shape, weight, np.float32) for w in depthwise.get_weights()])
    head.set_weights([np.linspace(-1, 1, w.size, dtype=np.float32).reshape(w.shape) for w in head.get_weights()])
    return model


def test_int16x8_on_nearly_zero_activations_is_explained():
    """The MobileNetV2 failure in small: outputs within 9e-6 give an int16 step of 3e-10, and the ReLU6's 6.0 is
    2e10 such steps, past int32; the row's outcome names the entry and the op."""
    import numpy as np

    from workbench.core.recipe_table import run_recipes

    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    (run,) = run_recipes(_tiny_depthwise(1e-6), images, representative=images, recipes=["int16x8"])
    title = diagnose.at_op(diagnose.entry("int16-activation-clamp-overflow"), INT16_OVERFLOW.format(
        node=1, op="DEPTHWISE_CONV_2D")).title
    assert run.outcome.startswith(f"failed: {title} Fix: "), run.outcome


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


def test_a_fused_relu6_that_tfmot_refuses_is_explained_and_its_own_layer_is_not_refused():
    from workbench.core.keras_compat import keras
    from workbench.core.train import quantize_model

    def conv(*after):
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(2, 3, activation=None if after else "relu6")(inputs)
        for layer in after:
            x = layer(x)
        return keras.Model(inputs, x)

    with pytest.raises(ValueError) as refused:
        quantize_model(conv())
    assert diagnose.explain_error(refused.value).key == "qat-activation"
    assert quantize_model(conv(keras.layers.ReLU(6.0))) is not None  # the entry's fix
