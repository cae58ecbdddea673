"""Each troubleshooting case: the failure happens as described, and the fix works (measured).

The cases are the ones notebook 07 shows: the module runs ``07_troubleshooting.ipynb`` top to bottom once (its
``Case`` in ``test_notebooks.py``: parameters, lesson check) and reads back each ``CaseResult`` the notebook
computed (pickled in the kernel), so every assertion here is about what a reader of the notebook sees, and the
cases' conversions run once rather than once for the notebook and once for these tests. The models are the
session fixtures' training config, cached, so the notebook reuses them.
"""

from __future__ import annotations

import base64
import inspect
import pickle
import re

import pytest

from test_notebooks import NOTEBOOK_DIR, NOTEBOOKS, check_paired_summary, execute
from workbench import gallery, legacy_graphs, model_choices
from workbench.troubleshoot.gallery import GalleryConfig

pytestmark = pytest.mark.slow

NOTEBOOK = next(c for c in NOTEBOOKS if c.name == "07_troubleshooting.ipynb")
CASE_NAMES = [f"r{n}" for n in range(1, len(model_choices.CASES) + 1)]  # the notebook's r1 ... r11


@pytest.fixture(scope="module")
def shown():
    """What notebook 07 computed: its ``Case`` results plus each case's ``CaseResult``."""
    pickled = "{" + ", ".join(f"{n!r}: __import__('base64').b64encode(__import__('pickle').dumps({n})).decode()"
                              for n in CASE_NAMES) + "}"
    return execute(NOTEBOOK_DIR / NOTEBOOK.name, NOTEBOOK.parameters, {**NOTEBOOK.results, "cases": pickled})


@pytest.fixture(scope="module")
def cases(shown):
    return {name: pickle.loads(base64.b64decode(data)) for name, data in shown["cases"].items()}


@pytest.fixture(scope="module")
def cfg():
    """The notebook's own ``GalleryConfig`` (its parameters as the test runs it)."""
    p = NOTEBOOK.parameters
    return GalleryConfig(train_size=p["train_size"], epochs=p["epochs"], eval_size=p["eval_size"],
                         lstm_eval_size=p["lstm_eval_size"])


def test_the_notebook_teaches(shown):
    NOTEBOOK.check(shown)


def test_every_case_is_the_notebooks(cases):
    """r1 ... r11 are the gallery's cases in number order, each with its measured rows."""
    for number, (name, function) in enumerate(zip(CASE_NAMES, model_choices.CASES), start=1):
        assert cases[name].number == number and cases[name].rows, (name, function, cases[name].number)


def _key(result):
    return result.diagnosis.entry.key if result.diagnosis and result.diagnosis.entry else None


def test_1_lacking_min_max(cases):
    r = cases["r1"]
    assert r.number == 1
    assert _key(r) == "came-out-float"
    silent = r.row("float -> uint8, no ranges")
    assert silent["float_activations"] > 0 and silent["size_kb"] > 200  # asked for uint8, got float
    good = r.row("float -> uint8, default_ranges=(0,6)")
    assert good["float_activations"] == 0 and good["size_kb"] < 100
    assert good["accuracy"] > r.row("float Keras")["accuracy"] - 0.03
    assert r.row("float -> uint8, default_ranges=(-1,1)")["accuracy"] < good["accuracy"] - 0.1  # clipped ReLUs
    assert r.row("QAT (per-tensor) -> uint8")["accuracy"] > r.row("float Keras")["accuracy"] - 0.02
    assert f"with {silent['float_activations']} float32 activations" in r.notes[0]
    # QAT is measured against the float model with its own budget, and every difference is tested
    qat, same = r.row("QAT (per-tensor) -> uint8"), r.row("float Keras, same budget as QAT")
    assert qat["epochs"] == same["epochs"] == r.row("float Keras")["epochs"] + 1
    assert f"float model trained the same {qat['epochs']} epochs" in r.notes[2]
    check_paired_summary(r.notes[2], same["accuracy"], qat["accuracy"])  # the verdict its own numbers give
    assert f"default_ranges=(0,6) against its float model ({same['epochs'] - 1} epochs each" in r.notes[1]
    check_paired_summary(r.notes[1], r.row("float Keras")["accuracy"], good["accuracy"])


def test_2_wrong_mean_std(cases):
    r = cases["r2"]
    assert r.number == 2
    for trained in ("[0,1]", "[-1,1]", "[0,255]"):
        rows = [row for row in r.rows if row["trained_on"] == trained]
        best = max(rows, key=lambda row: row["accuracy"])
        assert best["correct"], (trained, rows)
        assert best["accuracy"] > 0.85
    assert min(row["accuracy"] for row in r.rows) < 0.5
    correct = {row["trained_on"]: (row["mean"], row["std"]) for row in r.rows if row["correct"]}
    assert correct == {"[0,1]": (0.0, 255.0), "[-1,1]": (127.5, 127.5), "[0,255]": (0.0, 1.0)}
    assert "[0,1] -> (0, 255), [-1,1] -> (127.5, 127.5), [0,255] -> (0, 1)." in r.notes[0]  # the note = the rows


def test_3_batchnorm(cases):
    r = cases["r3"]
    assert r.number == 3
    assert _key(r) == "qat-layer-unsupported"  # tfmot refuses BN after the ReLU
    folded = r.row("Conv->BN->ReLU QAT -> int8")
    assert folded["mul_add_ops"] == 0 and folded["float_activations"] == 1 and folded["accuracy"] > 0.85
    unfolded = r.row("Conv->ReLU->BN PTQ -> int8")
    assert unfolded["mul_add_ops"] == 4 and unfolded["accuracy"] > 0.85  # one MUL + one ADD per BN
    legacy = r.row("Conv->BN->ReLU QAT -> legacy uint8")
    assert legacy["float_activations"] > 1
    # the notes say what the rows show
    folded_note, unfolded_note, legacy_note = r.notes
    ptq = r.row("Conv->BN->ReLU PTQ -> int8")["mul_add_ops"]
    assert f"{folded['mul_add_ops']} MUL/ADD ops after QAT -> int8, {ptq} after PTQ -> int8" in folded_note
    assert ("lives inside CONV_2D's weights" in folded_note) == (folded["mul_add_ops"] == ptq == 0)
    assert "refused QAT (qat-layer-unsupported)" in unfolded_note
    assert "keeps 2 MUL and 2 ADD ops for 2 BatchNormalization layers (a MUL and an ADD per BN), writing int8" \
        in unfolded_note and unfolded["mul_add_ops"] == 2 + 2
    assert f"{legacy['float_activations']} activations stayed float" in legacy_note
    assert legacy_note.endswith("between DEQUANTIZE and QUANTIZE: CONV_2D; CONV_2D.")  # the two convs run float


def test_4_no_quantized_kernel(cases):
    r = cases["r4"]
    assert r.number == 4
    assert _key(r) == "no-quantized-kernel" and "RSQRT" in r.failure
    keras_acc = r.row("instance norm float")["accuracy"]
    int8 = r.row("instance norm -> int8")
    assert "RSQRT" in int8["ops"] and int8["float_activations"] == 1 and int8["accuracy"] > keras_acc - 0.02
    kept = r.row("instance norm -> int8, inorm1 kept float")
    assert kept["float_activations"] > int8["float_activations"] and kept["accuracy"] > keras_acc - 0.02
    cast = r.row("tf.cast -> int8")
    assert cast["cast_ops"] == 2 and cast["float_activations"] > 1  # CAST kept float, not refused
    assert r.row("cast removed -> int8")["float_activations"] == 1
    assert r.row("tf.cast -> int8")["accuracy"] > r.row("tf.cast float")["accuracy"] - 0.02
    _, block_note, cast_note = r.notes
    int8_ops = block_note.removeprefix("int8, the dtype each op reads: int8: ").split(";")[0].split(", ")
    assert {"MEAN", "SQUARED_DIFFERENCE", "RSQRT", "MUL"} <= set(int8_ops) and "float32" not in block_note
    assert block_note.endswith("; every op between QUANTIZE and DEQUANTIZE runs an int8 kernel.")
    assert int8["float_activations"] == 1  # ... and only the DEQUANTIZEd output is float, as the note says
    assert f"{cast['cast_ops']} CAST ops and {cast['float_activations']} float activations" in cast_note
    assert cast_note.endswith("between DEQUANTIZE and QUANTIZE: ROUND CAST CAST.")


def test_5_per_channel_on_uint8(cases):
    r = cases["r5"]
    assert r.number == 5
    assert _key(r) == "per-channel-on-uint8" and "CONV_2D" in r.failure
    keras_acc = r.row("per-channel QAT Keras")["accuracy"]
    assert r.row("per-tensor QAT -> legacy uint8")["accuracy"] > keras_acc - 0.02
    assert r.row("per-channel QAT -> int8")["accuracy"] > keras_acc - 0.01


def test_6_raw_outputs(cases):
    r = cases["r6"]
    assert r.number == 6
    for row in r.rows:
        assert row["max_abs_error_raw"] > 1.0  # raw codes are not probabilities
        assert row["max_abs_error_dequantized"] < 0.02
        assert row["dequantized_row_sum"] == pytest.approx(1.0, abs=0.02)
    uint8 = r.row("legacy uint8")
    assert uint8["dtype"] == "uint8" and uint8["raw_row_sum"] == pytest.approx(256, abs=4)
    assert r.row("int8 with int8 I/O")["zero_point"] == -128
    assert uint8["scale"] == pytest.approx(1 / 256)
    assert f"has scale {uint8['scale']:.6g} (1/256) and zero point 0, so its raw bytes sum to " \
        f"{uint8['raw_row_sum']:.0f}" in r.notes[0]


def test_7_dynamic_shape(cases):
    r = cases["r7"]
    assert r.number == 7
    assert _key(r) == "dynamic-shape"
    assert r.row("fixed 28x28 -> float32")["accuracy"] == pytest.approx(r.row("dynamic Keras")["accuracy"], abs=0.005)
    assert r.row("fixed 28x28 -> int8")["float_activations"] == 1
    # measured: the converter accepts the None dimensions; the interpreter's default 1x1 input fails to prepare
    assert "converter accepted the None dimensions; the interpreter's default input shape is [1, 1, 1, 1], and " \
        "LiteRT failed to prepare the model at that size" in r.notes[0]
    assert r.notes[1] == "legacy uint8 path: dynamic-shape"


def test_8_dynamic_range_vs_integer(cases):
    r = cases["r8"]
    assert r.number == 8
    dyn, full, flt = r.row("dynamic-range"), r.row("int8-ptq"), r.row("float32")
    assert dyn["float_activations"] == flt["float_activations"]  # activations stay float
    assert dyn["ops hybrid (float math, int8 weights)"] >= 1 and dyn["ops float"] >= 1
    assert full["ops integer"] >= 8 and full["float_activations"] == 1
    assert dyn["size_kb"] < 0.35 * flt["size_kb"] and full["size_kb"] < 0.35 * flt["size_kb"]
    for row in (dyn, full):
        assert row["accuracy"] > flt["accuracy"] - 0.01
    assert r.failure == f"dynamic-range: {dyn['float_activations']} float activations " \
        f"(int8-ptq: {full['float_activations']}, float32: {flt['float_activations']})"


def test_9_lstm(cases):
    r = cases["r9"]
    assert r.number == 9
    assert _key(r) == "lstm-dynamic-batch"
    keras_acc = r.row("LSTM Keras")["accuracy"]
    assert r.row("float32")["accuracy"] == pytest.approx(keras_acc, abs=0.01)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in r.row("float32")["ops"]
    assert r.row("float32, state not reset (batched evaluate)")["accuracy"] < keras_acc - 0.1
    assert r.row("dynamic-range")["accuracy"] > keras_acc - 0.05
    int8 = r.row("int8-ptq")  # a quantized LSTM (QUANTIZE in front, a third of the size) that keeps its accuracy
    assert int8["accuracy"] > keras_acc - 0.05, (int8["accuracy"], keras_acc)
    assert int8["ops"].startswith("QUANTIZE ") and "UNIDIRECTIONAL_SEQUENCE_LSTM" in int8["ops"]
    assert int8["size_kb"] < 0.5 * r.row("float32")["size_kb"]
    # "The 16x8 recipe and the legacy uint8 path refuse the LSTM (notes)": neither note says "converted"
    int16x8, legacy = r.notes
    assert int16x8.startswith("int16x8: ") and int16x8 != "int16x8: converted", r.notes
    assert legacy.startswith("legacy-uint8: legacy-lstm"), r.notes


def test_10_four_bit(cases):
    r = cases["r10"]
    assert r.number == 10
    assert _key(r) == "low-bit-qat"
    by_bits = {bits: [row for row in r.rows if row["variant"].startswith(f"{bits}-bit")] for bits in (4, 8)}
    assert all(row["converts"] for row in by_bits[8]) and not any(row["converts"] for row in by_bits[4])
    assert all(row["keras_accuracy"] > 0.5 for row in by_bits[4])  # simulated 4-bit trains fine
    for row in by_bits[8]:  # the converted 8-bit models keep the simulated accuracy and use 8-bit weights
        assert row["accuracy"] == pytest.approx(row["keras_accuracy"], abs=0.01), row
        assert 16 < row["weight_levels"] <= 256, row
    levels = max(row["weight_levels"] for row in by_bits[8])
    assert r.notes == (f"8-bit QAT: 2 of 2 models converted, their weight tensors use at most {levels} distinct "
                       "values.",
                       "4-bit QAT: 0 of 2 models converted; refused: int8 (low-bit-qat), uint8-legacy (low-bit-qat); "
                       "its numbers are the Keras model's simulated accuracy only.")


def test_11_selective(cases, mnist, cfg):
    r = cases["r11"]
    assert r.number == 11
    (kept,) = [row for row in r.rows if row.get("kept_float")]  # the layer the QuantizationDebugger chose
    layer = kept["kept_float"]
    full = r.row("int8 (all layers)")
    assert kept["variant"] == f"int8, {layer} kept float" and r.failure == f"kept {layer} float"
    assert kept["float_activations"] > full["float_activations"]
    assert kept["accuracy"] > r.row("float32")["accuracy"] - 0.02
    with pytest.raises(ValueError, match="keep_float"):
        model_choices.selective(mnist, cfg, layer="no_such_layer")


def test_gallery_config_validates():
    with pytest.raises(ValueError, match="eval_size"):
        GalleryConfig(eval_size=0)


def test_cases_lists_every_case_function_in_number_order():
    """``CASES`` (+ ``LEGACY_CASES``) name exactly the functions that return a ``CaseResult``, ordered by their
    "# --- N." sections."""
    found = {}  # section number -> the case function defined under its header
    for module in (gallery, model_choices, legacy_graphs):
        lines = inspect.getsource(module).splitlines()
        headers = [(i + 1, int(m.group(1))) for i, line in enumerate(lines) if (m := re.match(r"# --- (\d+)\. ", line))]
        for name, f in vars(module).items():
            if (inspect.isfunction(f) and f.__module__ == module.__name__
                    and inspect.signature(f).return_annotation == "CaseResult"):
                line = inspect.getsourcelines(f)[1]
                section = max((h for h in headers if h[0] < line), default=(0, None))[1]
                assert section not in found, (section, name, found.get(section))
                found[section] = name
    assert sorted(found) == list(range(1, len(found) + 1)), found
    assert model_choices.CASES + legacy_graphs.LEGACY_CASES == tuple(found[n] for n in sorted(found))
