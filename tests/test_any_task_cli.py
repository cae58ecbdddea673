"""``report`` and ``evaluate --reference`` end to end on every task, with and without labels; their figures
recomputed here from the ``.tflite`` files they wrote (numpy, and pycocotools for mAP); a layer perturbed by a
known amount; a classifier's worst recipe, the same with labels and without."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli_support import DIGITS_CONFIG, digits

# test_standins' smallest stand-ins (the same cache entries, trained once for the whole suite)
SMALL = {"detector": {"count": 3000, "epochs": 8, "eval_count": 50},
         "denoiser": {"count": 2000, "epochs": 2, "eval_count": 50},
         "sequence": {"count": 2000, "epochs": 1, "eval_count": 50, "units": 16}}
RECIPES = ("float32", "int8-ptq", "legacy-uint8")
FIDELITY = ("agreement", "agreement_low", "agreement_high", "snr_db", "cosine", "max_abs", "kl")
# The small detector's top digit scores sit near 0.5, the score at which the float model's detections become the
# truth its mAP is scored against; its class logits times this keep every box and top class and lift them above.
SHARPEN = 3.0


def cli(*args) -> tuple[int, str, str]:
    """``python -m workbench ARGS`` in this process: the exit code, stdout and stderr."""
    from workbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def report(model, data, out: Path, *extra) -> tuple[str, dict[str, dict[str, str]]]:
    """``report MODEL --data DATA --out OUT``: the printed text and the CSV's rows by recipe name."""
    code, text, err = cli("report", model, "--data", data, "--out", out, *extra)
    assert code == 0, err[-3000:]
    rows = {r["recipe"].split(" [")[0]: r for r in csv.DictReader((out / "report.csv").open())}
    record = json.loads((out / "report.json").read_text())  # the same rows, with the task and why it was recognised
    assert [r["recipe"].split(" [")[0] for r in record["rows"]] == list(rows) and record["task"] in text
    assert record["task_reason"] in text
    return text, rows


def arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def outputs(tflite: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a ``.tflite`` on ``x`` (LiteRT; uint8 images mapped to 0..1 for a float input), as float64."""
    from workbench.core import litert

    ran = litert.run(tflite.read_bytes(), x)
    return {name: value.astype(np.float64) for name, value in zip(ran.output_names, ran.all_outputs)}


def number(text: str) -> float | None:
    return None if text == "" else float(text)


def header(text: str) -> str:
    """The console table's header line."""
    return next(line for line in text.splitlines() if line.lstrip().startswith("recipe "))


# --- the metrics, written out again from their definitions in the README ------------------------

def snr_db(f, q) -> float:
    noise = np.sum((q - f) ** 2)
    return math.inf if noise == 0 else 10 * math.log10(np.sum(f ** 2) / noise)


def cosine(f, q) -> float:
    f, q = f.reshape(len(f), -1), q.reshape(len(q), -1)
    return float(np.mean(np.sum(f * q, 1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(q, axis=1))))


def psnr(f, q) -> float:
    return 10 * math.log10((f.max() - f.min()) ** 2 / np.mean((q - f) ** 2))


# --- the detector: report without labels, evaluate --reference as JSON, mAP by pycocotools ------

@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """The small detector stand-in with its class logits sharpened (``SHARPEN``), its report without labels, and
    ``evaluate models/int8-ptq.tflite --reference models/float32.tflite --json`` on the same inputs."""
    from workbench.core import standins
    from workbench.core.keras_compat import keras

    made = standins.detector_example(None, **SMALL["detector"])
    folder = tmp_path_factory.mktemp("detector")
    model = keras.models.load_model(made.model, compile=False)
    head = model.get_layer("class_head")
    head.set_weights([w * SHARPEN for w in head.get_weights()])
    model.save(folder / "detector.keras")
    text, rows = report(folder / "detector.keras", made.inputs, folder / "report", "--recipes", *RECIPES)
    models = folder / "report" / "models"
    code, printed, err = cli("evaluate", models / "int8-ptq.tflite", "--data", made.inputs,
                             "--reference", models / "float32.tflite", "--json")
    assert code == 0, err[-3000:]
    return {"made": made, "text": text, "rows": rows, "models": models, "json": json.loads(printed)}


def test_detector_report_without_labels_has_map50_and_snr(detector):
    text, rows = detector["text"], detector["rows"]
    assert "50 images (images 64x64x1 uint8), no labels" in text
    assert "task: detector (raw detection heads: boxes (N, 64, 4) and per-class scores (N, 64, 11)" in text
    columns = header(text).split()
    assert "mAP50" in columns and "SNR" in columns and "accuracy" not in columns
    assert list(rows) == list(RECIPES) and all(r["status"] == "ok" and r["task"] == "detector" for r in rows.values())
    float32 = rows["float32"]  # the float model against itself: every detection found, every box exact
    assert float32["snr_db"] == "inf" and number(float32["map50"]) == 1.0 and number(float32["map"]) == 1.0
    for name in RECIPES[1:]:
        row = rows[name]
        assert 0 <= number(row["map"]) <= number(row["map50"]) <= 1 and math.isfinite(number(row["snr_db"]))
        assert row["accuracy"] == row["agreement"] == row["truth_map50"] == ""  # no labels, no per-class output
    assert number(rows["int8-ptq"]["snr_db"]) > number(rows["legacy-uint8"]["snr_db"])  # calibrated vs (0, 6)


def test_detector_json_keys_per_output(detector):
    record = detector["json"]
    assert record["task"] == "detector" and record["count"] == 50 and "accuracy" not in record
    assert {"snr_db", "cosine", "max_abs", "map50", "map"} <= set(record)
    assert not {"agreement", "kl", "psnr"} & set(record)  # the scores (N, 64, 11) are no (N, K) classifier output
    assert set(record["outputs"]) == {"boxes", "scores"}
    for metrics in record["outputs"].values():
        assert set(metrics) == {"snr_db", "cosine", "max_abs"}
    assert {k: record[k] for k in ("snr_db", "cosine", "max_abs")} == record["outputs"]["scores"]  # the headline
    assert record["converted_with"] is None and record["reference"].endswith("float32.tflite")


def test_detector_json_figures_are_numpy_and_pycocotools_on_the_written_models(detector):
    """snr_db, cosine and max_abs of each output recomputed with numpy, and mAP50/mAP with pycocotools directly,
    from the two .tflite files the report wrote, run by LiteRT."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from workbench.core import detection

    record, models = detector["json"], detector["models"]
    images = arrays(detector["made"].inputs)["images"]
    f = outputs(models / "float32.tflite", images)
    q = outputs(models / "int8-ptq.tflite", images)
    for name in ("boxes", "scores"):
        got = record["outputs"][name]
        assert got["snr_db"] == pytest.approx(snr_db(f[name], q[name]), rel=1e-9)
        assert got["cosine"] == pytest.approx(cosine(f[name], q[name]), rel=1e-9)
        assert got["max_abs"] == pytest.approx(np.max(np.abs(q[name] - f[name])), rel=1e-6)

    truth = detection.truth_from(detection.from_heads(f["boxes"], f["scores"]), 0.5)
    found = detection.from_heads(q["boxes"], q["scores"])
    assert truth.count > 20  # the float model's detections at 0.5 are the ground truth

    def xywh(box):  # [ymin, xmin, ymax, xmax] -> COCO [x, y, w, h]
        return [float(box[1]), float(box[0]), float(box[3] - box[1]), float(box[2] - box[0])]

    gt_boxes = [(i, j) for i, j in zip(*np.nonzero(truth.classes >= 0))]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in range(len(images))],
                      "categories": [{"id": c} for c in range(10)],
                      "annotations": [{"id": k + 1, "image_id": int(i), "category_id": int(truth.classes[i, j]),
                                       "bbox": xywh(truth.boxes[i, j]), "iscrowd": 0,
                                       "area": float(np.prod(truth.boxes[i, j, 2:] - truth.boxes[i, j, :2]))}
                                      for k, (i, j) in enumerate(gt_boxes)]}
        gt.createIndex()
        dt = gt.loadRes([{"image_id": int(i), "category_id": int(found.classes[i, j]), "bbox": xywh(found.boxes[i, j]),
                          "score": float(found.scores[i, j])} for i, j in zip(*np.nonzero(found.classes >= 0))])
        scored = COCOeval(gt, dt, "bbox")
        scored.evaluate()
        scored.accumulate()
        scored.summarize()
    assert record["map50"] == pytest.approx(scored.stats[1], abs=1e-12)
    assert record["map"] == pytest.approx(scored.stats[0], abs=1e-12)
    assert 0 < record["map"] < record["map50"] <= 1


# --- the denoiser: PSNR against the float model and against the targets ---------------------------

def test_denoiser_report_with_targets_has_psnr_and_truth_psnr(tmp_path):
    from workbench.core import standins

    made = standins.denoiser_example(None, **SMALL["denoiser"])
    text, rows = report(made.model, made.labelled, tmp_path, "--recipes", "float32", "legacy-uint8")
    assert "50 images (images 28x28x1 uint8), with targets" in text
    assert "task: dense (its output (N, 28, 28, 1) has the input's spatial size" in text
    assert "PSNR dB" in header(text) and "PSNR (targets)" in header(text)
    assert rows["float32"]["psnr"] == rows["float32"]["snr_db"] == "inf"
    given = arrays(made.labelled)
    (f,) = outputs(tmp_path / "models" / "float32.tflite", given["images"]).values()
    (q,) = outputs(tmp_path / "models" / "legacy-uint8.tflite", given["images"]).values()  # another output name
    legacy, targets = rows["legacy-uint8"], given["targets"] / 255.0
    assert number(legacy["psnr"]) == pytest.approx(psnr(f, q), rel=1e-9)
    assert number(legacy["snr_db"]) == pytest.approx(snr_db(f, q), rel=1e-9)
    # the targets over 255 in float32 there, in float64 here
    assert number(legacy["truth_psnr"]) == pytest.approx(psnr(targets, q), rel=1e-6)
    assert number(rows["float32"]["truth_psnr"]) == pytest.approx(psnr(targets, f), rel=1e-6)
    assert legacy["agreement"] == legacy["map50"] == legacy["accuracy"] == ""


# --- the LSTM on float sequences, labelled --------------------------------------------------------

def test_lstm_report_on_float_sequences_with_labels(tmp_path):
    from workbench.core import diagnose, standins

    made = standins.sequence_example(None, **SMALL["sequence"])
    given = arrays(made.labelled)
    assert given["inputs"].dtype == np.float32 and given["inputs"].shape == (50, 28, 28)
    text, rows = report(made.model, made.labelled, tmp_path, "--recipes", "float32", "legacy-uint8")
    assert "50 inputs (inputs 28x28 float32), with labels" in text
    assert "note: input stats for the uint8 paths from the data's own range [0, 1]" in text
    assert "task: classifier (its output is one score per class (N, 10))" in text
    assert "accuracy" in header(text).split()
    float32, legacy = rows["float32"], rows["legacy-uint8"]
    probs = outputs(tmp_path / "models" / "float32.tflite", given["inputs"])["probs"]
    assert number(float32["accuracy"]) == pytest.approx(np.mean(probs.argmax(1) == given["labels"]))
    assert number(float32["agreement"]) == 1.0 and float32["snr_db"] == "inf" and number(float32["kl"]) == 0.0
    assert legacy["status"] == "failed" and legacy["accuracy"] == ""
    assert legacy["outcome"].startswith("failed: " + diagnose.entry("legacy-lstm").title)
    assert f"legacy-uint8: failed: {diagnose.entry('legacy-lstm').title}" in text


# --- one layer perturbed by a known amount --------------------------------------------------------

def test_a_perturbed_last_layer_loses_the_snr_its_noise_predicts(tmp_path):
    """A linear last layer ``f = h W + b`` with ``W`` moved by ``ΔW``: ``q - f = h ΔW`` exactly, so
    ``snr_db = 10·log10(Σ f² / Σ (h ΔW)²)``; a bigger ``ΔW`` gives a lower SNR and a lower agreement."""
    import workbench as wb
    from workbench.core.keras_compat import keras

    rng = np.random.default_rng(0)
    inp = keras.Input((8,), name="x")
    model = keras.Model(inp, keras.layers.Dense(5, name="logits")(keras.layers.Dense(16, activation="relu",
                                                                                      name="hidden")(inp)))
    w1, b1 = rng.normal(0, 0.5, (8, 16)), rng.normal(0, 0.1, 16)
    w2, b2 = rng.normal(0, 0.5, (16, 5)), rng.normal(0, 0.1, 5)
    model.set_weights([a.astype(np.float32) for a in (w1, b1, w2, b2)])
    model.save(tmp_path / "original.keras")
    x = rng.normal(0, 1, (400, 8)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", inputs=x)

    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    h = np.maximum(x @ w1 + b1, 0)  # the penultimate activations
    f = h @ w2 + b2
    found = {}
    for size in (0.02, 0.2):
        perturbed = keras.models.clone_model(model)
        moved = (w2 + rng.normal(0, size, w2.shape)).astype(np.float32)
        perturbed.set_weights([w1, b1, moved, b2])
        delta = moved.astype(np.float64) - w2  # the perturbation as stored
        wb.convert(perturbed, "float32").save(tmp_path / f"perturbed-{size}.tflite")
        code, out, err = cli("evaluate", tmp_path / f"perturbed-{size}.tflite", "--data", tmp_path / "inputs.npz",
                             "--reference", tmp_path / "original.keras", "--json")
        assert code == 0, err[-3000:]
        record = json.loads(out)
        assert record["task"] == "classifier" and record["kl"] is None  # logits, not probabilities
        assert {"agreement", "agreement_interval", "snr_db", "cosine", "max_abs"} <= set(record)
        (per_output,) = record["outputs"].values()
        assert {k: record[k] for k in per_output} == per_output
        expected = 10 * math.log10(np.sum(f ** 2) / np.sum((h @ delta) ** 2))
        assert record["snr_db"] == pytest.approx(expected, abs=1e-3)
        agreement = np.mean((f + h @ delta).argmax(1) == f.argmax(1))
        assert record["agreement"] == pytest.approx(agreement, abs=1 / 400)
        found[size] = record
    small, big = found[0.02], found[0.2]
    assert big["snr_db"] < small["snr_db"] - 15  # ten times the noise: 20 dB less
    assert big["agreement"] < small["agreement"] and big["cosine"] < small["cosine"]


# --- a classifier's worst recipe, with labels and without -----------------------------------------

def test_labelled_and_unlabelled_reports_name_the_same_worst_recipe(tmp_path):
    from workbench.core.train import TrainConfig, trained_lenet

    data = digits()
    trained_lenet(data, TrainConfig(**DIGITS_CONFIG)).save(tmp_path / "lenet.keras")
    np.savez(tmp_path / "labelled.npz", images=data.test_images, labels=data.test_labels)
    np.savez(tmp_path / "unlabelled.npz", images=data.test_images)
    bad = ("--recipes", *RECIPES, "--default-ranges", "0", "0.5", "--calibration-size", "100")
    text, labelled = report(tmp_path / "lenet.keras", tmp_path / "labelled.npz", tmp_path / "labelled", *bad)
    plain, unlabelled = report(tmp_path / "lenet.keras", tmp_path / "unlabelled.npz", tmp_path / "unlabelled", *bad)
    assert "with labels" in text and "no labels" in plain and "accuracy" not in header(plain).split()
    worst_by_accuracy = min(labelled, key=lambda name: number(labelled[name]["accuracy"]))
    worst_by_agreement = min(unlabelled, key=lambda name: number(unlabelled[name]["agreement"]))
    assert worst_by_accuracy == worst_by_agreement == "legacy-uint8"
    assert number(unlabelled["legacy-uint8"]["agreement_high"]) < number(unlabelled["int8-ptq"]["agreement_low"])
    for name in RECIPES:
        assert {k: labelled[name][k] for k in FIDELITY} == {k: unlabelled[name][k] for k in FIDELITY}
        assert unlabelled[name]["accuracy"] == "" and 0 < number(labelled[name]["accuracy"]) <= 1
    assert number(unlabelled["float32"]["agreement"]) == 1.0 and unlabelled["float32"]["snr_db"] == "inf"
    # why the worst row loses, measured, with its fix converted and measured; --no-fix names the fix only
    for said, folder in ((text, "labelled"), (plain, "unlabelled")):
        assert "why rows lose" in said and "clip the activations" in said and "fix tried: default_ranges" in said
        losses = json.loads((tmp_path / folder / "report.json").read_text())["losses"]
        clip = next(v for v in losses if v["cause"] == "default-ranges-clip")
        assert clip["recipe"] == "legacy-uint8" and clip["fix"]["after"] > clip["fix"]["before"]
        path = clip["record"]["error_path"]  # every tensor of the row's model against the float model's
        assert path and clip["record"]["error_enters"] in path and clip["record"]["error_enters"]["snr_db"] < 20
    quick, _ = report(tmp_path / "lenet.keras", tmp_path / "unlabelled.npz", tmp_path / "no-fix", *bad, "--no-fix")
    losses = json.loads((tmp_path / "no-fix" / "report.json").read_text())["losses"]
    clip = next(v for v in losses if v["cause"] == "default-ranges-clip")
    assert clip["fix"]["after"] is None and "--no-fix" in quick
