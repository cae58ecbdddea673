"""Every notebook runs top to bottom with small parameters and shows what it teaches.

To add a notebook, add one ``Case`` to ``NOTEBOOKS``: its file name, the
small parameters that override its ``parameters`` cell, optionally the
expressions to read back from the kernel (``results``) and a ``check`` that
asserts the notebook's lesson on them. Notebooks run with nbclient on the
``python3`` kernel (this virtualenv), from ``notebooks/``, with this
process's environment (``WORKBENCH_CACHE`` included, so trained models are
shared with the test fixtures). Executed copies land in
``test-output/notebooks/``. A failing cell's source is printed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest

from conftest import EVAL_SIZE, ROOT, TRAIN_EPOCHS, TRAIN_SIZE

pytestmark = pytest.mark.slow

NOTEBOOK_DIR = ROOT / "notebooks"
MARKER = "<<notebook-results>>"
# The session fixtures' training config, so notebooks reuse the cached weights.
SMALL = {"epochs": TRAIN_EPOCHS, "train_size": TRAIN_SIZE, "eval_size": EVAL_SIZE}


PAIRED_SUMMARY = re.compile(r"([+-]\d+\.\d\d) points \(95 % CI [+-]\d+\.\d\d to [+-]\d+\.\d\d; p[^;]*; ([\d,]+) of "
                            r"([\d,]+) images disagree\): (no significant difference(?: \(borderline\))?|"
                            r"significantly better|significantly worse)")


def check_paired_summary(text: str, reference_accuracy: float, candidate_accuracy: float) -> None:
    """A paired comparison's sentence (``PairedComparison.summary``) in ``text`` says what its own numbers give:
    the difference is the two rows' accuracies apart, and the verdict is the exact McNemar test's, recomputed here
    from the images that disagree."""
    from scipy.stats import binomtest

    match = PAIRED_SUMMARY.search(text)
    assert match, text
    delta, discordant, n = float(match[1]), int(match[2].replace(",", "")), int(match[3].replace(",", ""))
    assert delta == pytest.approx(100 * (candidate_accuracy - reference_accuracy), abs=0.011), (text, reference_accuracy,
                                                                                              candidate_accuracy)
    net = round(delta * n / 100)  # images only the candidate gets right, minus images only the reference gets right
    assert abs(net) <= discordant and (discordant + net) % 2 == 0, text
    p = binomtest((discordant + net) // 2, discordant, 0.5).pvalue if discordant else 1.0
    expected = ("no significant difference" if p >= 0.05 else
                "significantly better" if net > 0 else "significantly worse")
    assert match[4].startswith(expected), (text, p)


def check_start_here(r: dict) -> None:
    from workbench.troubleshoot import questions

    # "the table above is this text": the kernel's index is the committed markdown cell the reader sees
    nb = nbformat.read(NOTEBOOK_DIR / "00_start_here.ipynb", as_version=4)
    (shown,) = [c.source for c in nb.cells if "question-index" in c.metadata.get("tags", [])]
    assert r["index"].startswith("| # | question |") and shown.endswith("\n" + r["index"]), r["index"][:300]
    linked = re.findall(r"\]\(([^)#]+\.ipynb#[^)]+)\)", shown)
    assert {row["link"] for row in r["links"]} == set(linked), r["links"]  # each followed link is one shown
    assert len(r["links"]) == len(questions.ANSWERS), r["links"]
    assert all(row["found"] and row["uses_it"] for row in r["links"]), r["links"]
    assert [row["explain"] for row in r["explain"]] == [m.explain for m in questions.MESSAGES], r["explain"]


def check_quickstart(r: dict) -> None:
    same_budget, uint8_row, starting_point = r["table"]
    assert uint8_row["input"] == "uint8"
    assert same_budget["epochs"] == uint8_row["epochs"] == starting_point["epochs"] + 1
    # "within 2 points of the float model trained for the same number of epochs", tested on the same images
    assert abs(uint8_row["delta_pts"]) <= 2.0, r["table"]
    assert uint8_row["accuracy_pct"] == pytest.approx(same_budget["accuracy_pct"] + uint8_row["delta_pts"], abs=0.011)
    assert 0 <= uint8_row["p_value"] <= 1 and uint8_row["significant"] == (uint8_row["p_value"] < 0.05)
    ratio = uint8_row["size_kb"] / same_budget["size_kb"]
    assert 0.2 <= ratio <= 0.3, r["table"]  # "roughly a quarter" (LeNet: 0.27; the graph's metadata is not shrunk)
    assert uint8_row["agreement_pct"] >= 90.0, r["table"]  # "at least nine images in ten"
    # the model QAT started from trained one epoch less: shown, not tested
    assert starting_point["verdict"].startswith("not compared") and starting_point["significant"] is None
    assert r["summary"].splitlines()[0].startswith("uint8 (QAT) vs float32 (same budget): "), r["summary"]


def check_qat(r: dict) -> None:
    acc = {row["bits"]: row["accuracy"] for row in r["bits"]}
    assert acc[8] >= r["float"] - 0.02, acc
    assert acc[4] >= acc[8] - 0.03, acc  # "at 4 bits LeNet stays within 3 points of 8 bits" ...
    assert acc[2] <= acc[4] - 0.05, acc
    two = next(row for row in r["bits"] if row["bits"] == 2)
    assert two["verdict"] == "significantly worse" and two["delta_pts"] < 0, two  # ... "at 2 bits significantly worse"
    assert {row["epochs"] for row in r["bits"]} == {r["epochs"] + 1}  # every point spends the same budget
    assert "input" in r["int8_quantizers"] and max(r["int8_channels"]) > 1
    for row in r["schemes"][1:]:  # "within 3 points of float at the same budget", each one tested
        assert row["delta_pts"] >= -3.0, r["schemes"]
        assert 0 <= row["p_value"] <= 1, row
    assert len(r["summary"].splitlines()) == 2


def check_compare(r: dict) -> None:
    table = {row["recipe"].split(" ")[0] + "/" + row["model"]: row for row in r["table"]}
    assert len(r["table"]) >= 8, list(table)
    float_kb = r["table"][0]["size_kb"]
    for key, row in table.items():
        if not key.startswith(("float32", "float16")):  # "every integer recipe is under 35 % of the float size"
            assert row["size_kb"] < 0.35 * float_kb, row
        if row["verdict"] != "reference":  # every comparison at the same training budget
            reference = table["float32/" + row["reference"]]
            assert row["epochs"] == reference["epochs"], row
        if key.startswith(("qat-int8", "legacy-uint8/qat")):
            assert row["reference"] == "float-same-budget", row
        # "within 3 points of their reference"
        if key.startswith(("int8-ptq", "int16x8", "qat-int8", "legacy-uint8/qat")):
            assert row["delta_pts"] >= -3.0, row
    assert "int16x8/float" in table, list(table)  # the 16x8 row is there and checked above
    assert 0.45 < table["float16/float"]["size_kb"] / float_kb < 0.55  # "float16 halves it"
    assert table["aeq-int4-weights/float"]["size_kb"] < 0.25 * float_kb  # "under a quarter of the float size"
    guessed = table["legacy-uint8/float"]  # "significantly worse than its float model"
    assert guessed["verdict"] == "significantly worse" and guessed["reference"] == "float", guessed
    assert r["output_mse"]["aeq-int4-weights"] > r["output_mse"]["aeq-int8"], r["output_mse"]  # "drifts further"
    assert len(r["findings"]) == len(r["table"]) - 2  # one sentence per compared row
    calib = {row["calibration_size"]: row for row in r["calibration"]}
    assert max(row["accuracy"] for row in calib.values()) >= r["baseline"] - 0.03, calib
    assert sum(row["verdict"] == "reference" for row in calib.values()) == 1, calib


def check_mean_std(r: dict) -> None:
    grid = r["grid"]
    best = max(row["accuracy"] for row in grid)
    correct = [row["accuracy"] for row in grid if row["mean"] == 0 and row["std"] == 255]
    wrong = [row["accuracy"] for row in grid if row["mean"] == 0 and row["std"] == 1]
    assert correct and correct[0] >= best - 0.005, (correct, best)
    assert wrong and wrong[0] <= best - 0.30, (wrong, best)
    assert len({row["accuracy"] for row in r["ignored"]}) == 1, r["ignored"]
    # every request but the one that happens to equal the learned (0, 255) is flagged as ignored
    assert all(row["stats_ignored"] for row in r["ignored"] if (row["mean"], row["std"]) != (0, 255)), r["ignored"]
    assert r["explorer_accuracy"] == pytest.approx(correct[0], abs=0.05)
    # screening: the same best point, every interval holding the exact sweep's accuracy
    screened = r["screened"]
    assert max(screened, key=lambda row: row["accuracy"])["accuracy"] == best
    assert [(row["mean"], row["std"]) for row in screened] == [(row["mean"], row["std"]) for row in grid]
    for row, exact in zip(screened, grid):
        assert row["ci_low"] <= exact["accuracy"] <= row["ci_high"], (row, exact)
        assert row["screened"] or row["accuracy"] == exact["accuracy"], (row, exact)


def check_default_ranges(r: dict) -> None:
    assert r["came_out_float"] is True
    acc = {row["default_max"]: row["accuracy"] for row in r["ranges"]}
    assert not any(row["came_out_float"] for row in r["ranges"])
    assert max(acc.values()) >= r["baseline"] - 0.05, acc
    assert min(acc.values()) <= max(acc.values()) - 0.05, acc  # the guess matters
    assert r["qat"] >= max(acc.values()) - 0.01, (r["qat"], acc)


def check_graphs(r: dict) -> None:
    ops = r["ops"]
    # QUANTIZE / DEQUANTIZE only at the edges of the float-I/O int8 model; the legacy uint8 model has neither
    assert ops["int8"][0] == "QUANTIZE" and ops["int8"][-1] == "DEQUANTIZE", ops["int8"]
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(ops["int8"][1:-1] + ops["uint8"] + ops["float32"]), ops
    int8 = {(t["role"], t["op"]): t for t in r["int8_tensors"]}
    assert int8[("input", "QUANTIZE")]["dtype"] == "float32" and int8[("output", "DEQUANTIZE")]["dtype"] == "float32"
    quantized_input = int8[("activation", "QUANTIZE")]
    assert quantized_input["dtype"] == "int8" and quantized_input["zero_point"] == -128
    assert quantized_input["scale"] == pytest.approx(1 / 255, rel=1e-4)
    # int8 weights: symmetric (zero point 0), one scale per output channel on the convolutions
    int8_weights = [t for t in r["int8_tensors"] if t["role"] == "weight"]
    assert {t["dtype"] for t in int8_weights} == {"int8"}
    assert sorted(t["channels"] for t in int8_weights if t["op"] == "CONV_2D") == [6, 16], int8_weights
    assert all(t["zero_point"] == 0 for t in int8_weights if t["channels"] == 1), int8_weights
    # uint8: weights asymmetric per tensor (zero point near 128); the input reads byte q as q / 255
    uint8_weights = [t for t in r["uint8_tensors"] if t["role"] == "weight"]
    assert uint8_weights and all(t["dtype"] == "uint8" and t["channels"] == 1 and 96 <= t["zero_point"] <= 160
                                 for t in uint8_weights), uint8_weights
    (uint8_input,) = [t for t in r["uint8_tensors"] if t["role"] == "input"]
    assert uint8_input["dtype"] == "uint8" and uint8_input["zero_point"] == 0
    assert uint8_input["scale"] == pytest.approx(1 / 255, rel=1e-4)
    # a short QAT leaves the ReLU outputs' zero points near the middle of the uint8 codes
    relus = [t for t in r["uint8_tensors"] if t["role"] == "activation" and t["op"] == "CONV_2D"]
    assert relus and all(64 <= t["zero_point"] <= 192 for t in relus), relus
    # every bias is int32 with scale = input scale x weight scale (exact in float32) on every conv / FC
    for name, rows in r["bias"].items():
        assert len(rows) == ops[name].count("CONV_2D") + ops[name].count("FULLY_CONNECTED") == 5, (name, rows)
        assert all(row["bias_dtype"] == "int32" and row["max_rel_error"] < 1e-6 for row in rows), (name, rows)
    # Conv2D on one input channel == DepthwiseConv2D with depth_multiplier = filters; today's converter keeps CONV_2D
    check = r["depthwise"]
    assert (check["layer"], check["in_channels"], check["depth_multiplier"]) == ("conv1", 1, 6), check
    assert check["max_abs_output"] > 0.1 and check["max_abs_difference"] <= 1e-5 * check["max_abs_output"], check
    assert check["equivalent"] is True
    assert all(model_ops[0 if name != "int8" else 1] == "CONV_2D" and "DEPTHWISE_CONV_2D" not in model_ops
               for name, model_ops in ops.items()), ops


def check_troubleshooting(r: dict) -> None:
    assert r["keys"] == ["came-out-float", "qat-layer-unsupported", "no-quantized-kernel", "per-channel-on-uint8",
                         "dynamic-shape", "lstm-dynamic-batch", "low-bit-qat"], r["keys"]
    for names in (r["int8_layers"], r["uint8_layers"]):
        assert {"conv1", "conv2", "fc1", "fc2", "probs"} <= {n.removeprefix("quant_") for n in names}, names
    # 8: "between a quarter and a third of the float file"; activations stay float
    r8 = {row["variant"]: row for row in r["r8"]}
    assert r["dynamic_ratio"] == pytest.approx(r["dynamic_bytes"] / r["float32_bytes"], rel=0.01)  # the files' sizes
    assert 0.25 <= r["dynamic_ratio"] <= 1 / 3, r["dynamic_ratio"]
    assert r8["dynamic-range"]["float_activations"] == r8["float32"]["float_activations"] > 1
    # 9: the quantized LSTMs stay within 3 points of the float LSTM on the same images
    r9 = {row["variant"]: row for row in r["r9"]}
    for recipe in ("dynamic-range", "int8-ptq"):
        assert r9[recipe]["accuracy"] >= r9["float32"]["accuracy"] - 0.03, (recipe, r9)
    assert r9["float32, state not reset (batched evaluate)"]["accuracy"] < r9["float32"]["accuracy"] - 0.1, r9
    check_legacy_questions(r)


def check_legacy_questions(r: dict) -> None:
    """07's sections 12-15: Estimator/TF1 models, optimize_for_inference, training vs eval graph, quant delay."""
    r12 = {row["variant"]: row for row in r["r12"]}
    assert r["r12_notes"][0].startswith("TensorFlow 2.21 has no tf.estimator"), r["r12_notes"]
    keras_acc = r12["Keras float"]["accuracy"]
    for source in ("TF1 SavedModel", "TF1 frozen .pb"):
        assert r12[f"{source} -> float32"]["agrees_with_keras"] >= 0.995, r12
        assert r12[f"{source} -> int8-ptq"]["accuracy"] >= keras_acc - 0.02, r12
        assert r12[f"{source} -> legacy-uint8"]["accuracy"] >= keras_acc - 0.03, r12
        assert r12[f"{source} -> legacy-uint8"]["activations"] == "uint8:9", r12
    r13 = {(row["graph"], row["recipe"]): row for row in r["r13"]}
    for recipe in ("float32", "int8-ptq"):
        plain, optimized = r13[("frozen", recipe)], r13[("optimize_for_inference", recipe)]
        assert plain["graph_batchnorm"] == 2 and optimized["graph_batchnorm"] == 0, (plain, optimized)
        assert optimized["graph_nodes"] < plain["graph_nodes"] and optimized["graph_identity"] < plain["graph_identity"]
        assert plain["op_list"] == optimized["op_list"] and plain["mul_add_ops"] == 0, (plain, optimized)
        assert plain["accuracy"] == optimized["accuracy"], (plain, optimized)
    assert "float32 identical; int8-ptq identical (0 MUL/ADD ops" in r["r13_notes"][1], r["r13_notes"]
    eval_row, train_row, eval_export, train_export = r["r14"]
    assert eval_row["range_variables_moved"] == eval_row["bn_statistics_moved"] == 0, eval_row
    assert train_row["range_variables_moved"] > 10 and train_row["bn_statistics_moved"] == 4, train_row
    assert train_row["accuracy"] <= eval_row["accuracy"] - 0.02, (train_row, eval_row)  # batch-of-one BatchNorm
    assert eval_export["exported"] is True and eval_export["mul_add_ops"] == 0 and eval_export["graph_fake_quant"] > 0
    assert eval_export["graph_fused_batchnorm"] == 2 and eval_export["accuracy"] > 0.9, eval_export
    assert train_export["exported"] is False and "Assign" in train_export["error"], train_export
    assert "Freezing the training graph failed: it assigns to its own ranges" in r["r14_notes"][2]
    undelayed, delayed = r["r15"]
    assert undelayed["delay_steps"] == 0 and delayed["delay_steps"] > 0 and delayed["epochs"] == undelayed["epochs"]
    assert delayed["float_steps"] + delayed["fake_quant_steps"] == undelayed["fake_quant_steps"], r["r15"]
    assert min(undelayed["accuracy"], delayed["accuracy"]) > 0.9, r["r15"]
    check_paired_summary(r["r15_notes"][0], undelayed["accuracy"], delayed["accuracy"])  # the verdict its numbers give
    converted, newer = r["r16"]  # "Didn't find op for builtin opcode": the same bytes, one op version raised
    assert converted["loads"] is True and converted["accuracy"] > 0.9 and newer["op_version"] > converted["op_version"]
    assert newer["loads"] is False and newer["explained_as"] == "op-version", r["r16"]


def check_your_model(r: dict) -> None:
    assert r["kind"] == "float" and r["same_split"] is True
    table = {row["recipe"].split(" ")[0]: row for row in r["table"]}
    assert list(table) == r["recipes"], list(table)
    assert table["qat-int8"]["outcome"].startswith("not run: needs a QAT model"), table["qat-int8"]
    float_row = table["float32"]
    assert float_row["accuracy_pct"] == pytest.approx(100 * r["baseline"], abs=0.005)
    for name in ("int8-ptq", "legacy-uint8"):
        row = table[name]
        assert row["outcome"] == "ok" and row["accuracy_pct"] >= float_row["accuracy_pct"] - 3.0, row
        assert row["size_kb"] < 2 / 3 * float_row["size_kb"], (row, float_row)
    grid = r["grid"]
    best = max(row["accuracy"] for row in grid)
    correct = [row["accuracy"] for row in grid if (row["mean"], row["std"]) == (0, 255)]
    wrong = [row["accuracy"] for row in grid if (row["mean"], row["std"]) == (0, 1)]
    assert correct and correct[0] >= best - 0.005, (correct, best)
    assert wrong and wrong[0] <= best - 0.30, (wrong, best)
    ranges = {row["default_max"]: row["accuracy"] for row in r["ranges"]}
    assert not any(row["came_out_float"] for row in r["ranges"])
    assert ranges[0.5] <= ranges[6] - 0.05 and ranges[6] >= r["baseline"] - 0.01, ranges
    layers, snr = r["int8_layers"], r["int8_snr"]
    assert layers[0] == "relu0" and snr[0] > snr[layers.index("pw3_relu")], dict(zip(layers, snr))


# Section 8 of 07's float LeNet (the case trains it with ``trained_lenet(data, cfg.train())``; cached).
LENET_8 = "__import__('workbench.core.train', fromlist=['trained_lenet']).trained_lenet(data, cfg.train())"


# The stand-ins at test_standins' small sizes (the same cache entries) and the recipes that show each lesson.
ANY_MODEL = {"detector": {"count": 3000, "epochs": 8, "eval_count": 50},
             "denoiser": {"count": 2000, "epochs": 2, "eval_count": 50},
             "sequence": {"count": 2000, "epochs": 1, "eval_count": 50, "units": 16},
             "recipes": ["float32", "int8-ptq", "int16x8", "legacy-uint8"],
             "calibration_size": 20}


def check_any_model(r: dict) -> None:
    """Every recipe has a row on every stand-in; the LSTM's failures are the catalogue's; labels change no fidelity
    figure; legacy uint8 with (0, 6) loses the most on the detector and the denoiser by both figures; each
    disagreement the notebook names meets the rule it states."""
    from workbench.core import diagnose
    from workbench.explore import any_model

    assert r["tasks"] == {"detector": "detector", "denoiser": "dense", "sequence": "classifier"}
    assert all(r["same"].values()), r["same"]
    for name, rows in r["unlabelled"].items():  # no labels: no accuracy, the float row measured against itself
        assert all(row["accuracy_pct"] != row["accuracy_pct"] for row in rows), name
        assert rows[0]["recipe"] == "float32" and rows[0]["snr_db"] == float("inf"), rows[0]
    assert r["unlabelled"]["sequence"][0]["agreement"] == 1.0 and "psnr" in r["unlabelled"]["denoiser"][0]
    for name, rows in r["tables"].items():
        assert [row["recipe"].split(" [")[0] for row in rows] == ANY_MODEL["recipes"], name
    outcomes = {row["recipe"].split(" [")[0]: row["outcome"] for row in r["tables"]["sequence"]}
    assert outcomes["int16x8"].startswith("failed: " + diagnose.entry("int16x8-lstm").title)
    assert outcomes["legacy-uint8"].startswith("failed: " + diagnose.entry("legacy-lstm").title)
    for frame in r["frames"][:2]:  # the detector and the denoiser: legacy uint8 with (0, 6) is the worst task figure
        worst = min(frame, key=lambda row: row["task_value"])
        assert worst["recipe"].startswith("legacy-uint8"), frame
    clip = [v for v in r["losses"]["denoiser"] if v["recipe"] == "legacy-uint8"]
    assert [v["cause"] for v in clip] == ["default-ranges-clip"], r["losses"]["denoiser"]
    fix = clip[0]["fix"]
    assert fix["metric"] == "snr_db" and fix["before"] < 0 < 20 < fix["after"], fix  # "from below 0 dB to over 20"
    assert clip[0]["record"]["span"][0] < -10, clip[0]["record"]  # "spans far below 0"
    denoiser = r["frames"][1]
    assert min(denoiser, key=lambda row: row["fidelity_value"])["recipe"].startswith("legacy-uint8"), denoiser
    stories = [row for frame in r["frames"] for row in frame if row["story"]]
    assert len(stories) == len(r["said"])
    for row in stories:
        if row["story"].startswith("changed"):
            assert abs(row["task_change"]) <= any_model.TASK_SAME
        else:
            assert row["task_change"] < -any_model.TASK_SAME


@dataclass(frozen=True)
class Case:
    """One notebook: file name, test parameters, values to read back, and the check on them."""

    name: str
    parameters: dict[str, Any]
    results: dict[str, str] = field(default_factory=dict)
    check: Callable[[dict], None] | None = None
    # A test module that runs this notebook itself, once, and reads more back from the same run (it calls
    # ``check`` too); empty: ``test_notebook_runs_and_teaches`` runs it here.
    run_by: str = ""
    # A browser test (node id) that runs this notebook in JupyterLab and calls ``check`` on that run. In a session
    # that selects it, ``test_notebook_runs_and_teaches`` leaves this notebook to it (conftest deselects the
    # nbclient run, so the notebook runs once); in any other session (``-m "not browser"``, no Chromium) the
    # nbclient run here checks the same lesson.
    browser_test: str = ""


NOTEBOOKS = [
    Case("00_start_here.ipynb", {}, {"index": "index_markdown", "links": "links.to_dict('records')",
                                     "explain": "explain_table.to_dict('records')"}, check_start_here),
    Case("01_quickstart.ipynb", SMALL, {"table": "comparison.table.to_dict('records')",
                                        "summary": "comparison.summary()"}, check_quickstart),
    Case("02_qat_lenet.ipynb", {**SMALL, "bits_list": [2, 4, 8]},
         {"bits": "bits_table.to_dict('records')", "float": "float_accuracy", "epochs": "epochs",
          "schemes": "schemes.table.to_dict('records')", "summary": "schemes.summary()",
          "int8_quantizers": "list(wb.input_codes.fake_quant_table(qat_int8)['quantizer'])",
          "int8_channels": "list(wb.input_codes.fake_quant_table(qat_int8)['channels'])"}, check_qat),
    Case("03_convert_and_compare.ipynb", {"epochs": TRAIN_EPOCHS, "train_size": TRAIN_SIZE, "calibration_sizes": [1, 10, 100]},
         {"table": "table.to_dict('records')", "baseline": "baseline", "findings": "wb.demo.findings(table)",
          "output_mse": "output_mse",
          "calibration": "calibration[['calibration_size', 'accuracy', 'verdict']].to_dict('records')"},
         check_compare),
    # The grid is judged on the full test set: on 2,000 images a lucky wrong point can beat
    # the correct one by more than the 0.5-point tolerance (measured: 0.55 points at (0, 1000)).
    Case("04_mean_std.ipynb", {**SMALL, "eval_size": 10000, "grid_size": 3, "live_size": 500, "show_widgets": False},
         {"grid": "grid_table[['mean', 'std', 'accuracy']].to_dict('records')",
          "ignored": "ignored[['mean', 'std', 'accuracy', 'stats_ignored']].to_dict('records')",
          "explorer_accuracy": "explorer.engine.view.accuracy",
          "screened": "screened[['mean', 'std', 'accuracy', 'ci_low', 'ci_high', 'screened']].to_dict('records')"},
         check_mean_std,
         browser_test="tests/test_browser.py::test_mean_std_sliders_render_and_move_accuracy"),
    Case("05_default_ranges.ipynb", {**SMALL, "range_maxes": [0.5, 2, 6, 20], "live_size": 500,
                                     "show_widgets": False},
         {"came_out_float": "came_out.came_out_float", "baseline": "baseline", "qat": "qat_accuracy",
          "ranges": "ranges[['default_max', 'accuracy', 'came_out_float']].to_dict('records')"},
         check_default_ranges),
    Case("06_graphs.ipynb", {"epochs": TRAIN_EPOCHS, "train_size": TRAIN_SIZE, "show_netron": False},
         {"ops": "{name: list(m.ops) for name, m in models.items()}",
          "int8_tensors": "int8_table.astype({'zero_point': float})[['role', 'op', 'dtype', 'scale', 'zero_point', "
                          "'channels']].to_dict('records')",
          "uint8_tensors": "uint8_table.astype({'zero_point': float})[['role', 'op', 'dtype', 'scale', 'zero_point', "
                           "'channels']].to_dict('records')",
          "bias": "{name: wb.viewer.bias_scales(m).to_dict('records') for name, m in [('int8', int8), "
                  "('uint8', uint8)]}",
          "depthwise": "{**vars(check), 'equivalent': check.equivalent}"}, check_graphs,
         browser_test="tests/test_browser.py::test_graphs_notebook_shows_netron_iframe"),
    Case("07_troubleshooting.ipynb", {**SMALL, "eval_size": 1000, "lstm_eval_size": 200, "layer_images": 100,
                                      "batch_one_images": 200},
         {"keys": "[r.diagnosis.entry.key for r in (r1, r3, r4, r5, r7, r9, r10)]",
          "dynamic_ratio": "dynamic_ratio", "r8": "list(r8.rows)", "r9": "list(r9.rows)",
          # section 8's (cached) model converted again outside the case: the files' own sizes
          "float32_bytes": f"len(wb.convert({LENET_8}, 'float32').tflite)",
          "dynamic_bytes": f"len(wb.convert({LENET_8}, 'dynamic-range').tflite)",
          "r12": "list(r12.rows)", "r12_notes": "list(r12.notes)", "r13": "list(r13.rows)",
          "r13_notes": "list(r13.notes)", "r14": "list(r14.rows)", "r14_notes": "list(r14.notes)",
          "r15": "list(r15.rows)", "r15_notes": "list(r15.notes)", "r16": "list(r16.rows)",
          "int8_layers": "[e.layer for e in int8_report.layers]",
          "uint8_layers": "[e.layer for e in uint8_report.layers]"}, check_troubleshooting,
         run_by="tests/test_gallery.py"),  # whose cases are this run's r1 ... r11
    # epochs=30: the digits stand-in the tests' fixtures train (cached); the default ranges swept are the claims'.
    Case("08_your_model.ipynb", {"epochs": 30, "calibration_size": 300, "live_size": 100, "grid_size": 3,
                                 "range_maxes": [0.5, 6], "layer_images": 100, "show_widgets": False,
                                 "show_netron": False},
         {"table": "table.to_dict('records')", "recipes": "list(wb.RECIPES)", "kind": "kind", "baseline": "baseline",
          "same_split": "bool(__import__('numpy').array_equal(data.test_images, wb.load_digits().test_images))",
          "grid": "grid[['mean', 'std', 'accuracy']].to_dict('records')",
          "ranges": "default_ranges[['default_max', 'accuracy', 'came_out_float']].to_dict('records')",
          "int8_layers": "[e.layer for e in reports['int8-ptq'].layers]",
          "int8_snr": "[e.snr_db for e in reports['int8-ptq'].layers]"}, check_your_model,
         browser_test="tests/test_browser.py::test_your_model_notebook_sliders_and_graphs_in_lab"),
    Case("09_any_model.ipynb", ANY_MODEL,
         {"tasks": "{name: runs.task for name, runs in standins.items()}", "same": "same_without_labels",
          "tables": "{name: t.to_dict('records') for name, t in labelled.items()}",
          "unlabelled": "{name: t.to_dict('records') for name, t in unlabelled.items()}",
          "losses": "{name: [v.summary() for v in runs.losses] for name, runs in standins.items()}",
          "frames": "[f.to_dict('records') for f in frames]", "said": "said"}, check_any_model),
]


def execute(path: Path, parameters: dict[str, Any], results: dict[str, str]) -> dict[str, Any]:
    """Run a notebook with ``parameters`` injected after its ``parameters`` cell; return ``results``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'; allowed: exactly one"
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, injected)
    if results:
        nb.cells.append(nbformat.v4.new_code_cell(results_source(results)))
    client = NotebookClient(nb, kernel_name="python3", timeout=900,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    out_dir = ROOT / "test-output" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend draws
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        failing = next((c for c in nb.cells if c.cell_type == "code"
                        and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        source = failing.source if failing is not None else "(cell not found)"
        pytest.fail(f"{path.name}: a cell failed.\n--- cell source ---\n{source}\n--- error ---\n{err}",
                    pytrace=False)
    finally:
        nbformat.write(nb, out_dir / path.name)
    if not results:
        return {}
    printed = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    return parse_results(printed, path.name)


def results_source(results: dict[str, str]) -> str:
    """Code that prints ``results`` (key -> expression, evaluated in the kernel) as JSON after ``MARKER``."""
    body = ", ".join(f"{k!r}: {v}" for k, v in results.items())
    return f"import json as _json\nprint({MARKER!r} + _json.dumps({{{body}}}, default=float))"


def parse_results(printed: str, name: str) -> dict[str, Any]:
    """The values ``results_source``'s code printed."""
    if MARKER not in printed:
        raise AssertionError(f"{name}: no results printed:\n{printed[-3000:]}")
    return json.loads(printed.split(MARKER, 1)[1])


RUN_HERE = [c for c in NOTEBOOKS if not c.run_by]


def left_to_the_browser(items: list) -> list:
    """The items of ``test_notebook_runs_and_teaches`` whose notebook a selected browser test runs and checks."""
    selected = {item.nodeid for item in items}
    return [item for item in items if item.originalname == "test_notebook_runs_and_teaches"
            and item.callspec.params["case"].browser_test in selected]


@pytest.mark.parametrize("case", RUN_HERE, ids=[c.name for c in RUN_HERE])
def test_notebook_runs_and_teaches(case: Case) -> None:
    results = execute(NOTEBOOK_DIR / case.name, case.parameters, case.results)
    if case.check is not None:
        case.check(results)


def test_every_listed_notebook_exists() -> None:
    missing = [c.name for c in NOTEBOOKS if not (NOTEBOOK_DIR / c.name).is_file()]
    assert not missing
    for case in NOTEBOOKS:  # a notebook run by another module: that module runs it and calls its check
        if case.run_by:
            source = (ROOT / case.run_by).read_text()
            assert case.name in source and ".check(" in source, (case.name, case.run_by)
    import ast

    source = (ROOT / "tests" / "test_browser.py").read_text()
    tree = ast.parse(source).body
    tests = {node.name: ast.get_source_segment(source, node) for node in tree if isinstance(node, ast.FunctionDef)}
    names = {node.targets[0].id: node.value.value for node in tree if isinstance(node, ast.Assign)
             and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)}
    for case in NOTEBOOKS:  # a browser test named for a notebook runs that notebook and checks its lesson on that run
        if case.browser_test:
            file, name = case.browser_test.split("::")
            assert file == "tests/test_browser.py" and name in tests, case.browser_test
            ran = re.findall(r"run_all_cells\(page, lab, (\w+)", tests[name])
            taught = re.findall(r"_teaches\(lab, (\w+)\)", tests[name])
            assert [names.get(n) for n in ran] == [names.get(n) for n in taught] == [case.name], case.browser_test


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebook_is_clean(path: Path) -> None:
    """No outputs, no execution counts, exactly one ``parameters`` cell; listed in ``NOTEBOOKS``."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: cells {tagged} are tagged 'parameters'; allowed: exactly one"
    assert nb.cells[tagged[0]].cell_type == "code"
    assert path.name in {c.name for c in NOTEBOOKS}, f"{path.name} is not run by the tests; add it to NOTEBOOKS"
