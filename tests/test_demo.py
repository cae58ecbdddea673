"""The main job, end to end on a small slice, through the command line."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import EVAL_SIZE, TRAIN_EPOCHS, TRAIN_SIZE


@pytest.mark.slow
def test_demo_cli_writes_table_csv_png_and_models(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "demo", "--out", str(out), "--train-size", "20000", "--epochs", "2",
         "--test-size", "1000", "--calibration-size", "100", "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = next(line for line in proc.stdout.splitlines() if "recipe" in line and "model" in line)
    for column in ("epochs", "vs", "Δ pts", "95 % CI", " p ", "size KB"):
        assert column in header, header
    assert "no significant difference" in proc.stdout  # the legend names what is within noise
    rows = list(csv.DictReader((out / "results.csv").open()))
    recipes = [r["recipe"].split(" ")[0] for r in rows]
    assert {"float32", "dynamic-range", "float16", "int8-ptq", "int16x8", "qat-int8", "legacy-uint8"} <= set(recipes)
    by_model = {(r["recipe"], r["model"]): r for r in rows}
    # two float references, each compared with nothing: the float model and its equal-budget twin
    references = [r for r in rows if r["verdict"] == "reference"]
    assert [(r["recipe"], r["model"], r["epochs"]) for r in references] == [
        ("float32", "float", "2"), ("float32", "float-same-budget", "3")]
    assert float(rows[0]["delta_pts"]) == 0.0 and rows[0]["p_value"] == ""
    for row in rows:
        assert 0.8 < float(row["accuracy_pct"]) / 100 <= 1.0, row
        if row["verdict"] == "reference":
            continue
        reference = by_model[("float32", row["reference"])]
        assert row["epochs"] == reference["epochs"], row  # every comparison at the same training budget
        assert row["reference"] == ("float" if row["model"] == "float" else "float-same-budget"), row
        assert float(row["delta_pts"]) == pytest.approx(float(row["accuracy_pct"]) - float(reference["accuracy_pct"]),
                                                        abs=0.011)
        assert 0 <= float(row["p_value"]) <= 1 and row["significant"] == str(float(row["p_value"]) < 0.05), row
        assert float(row["ci_low_pts"]) <= float(row["delta_pts"]) <= float(row["ci_high_pts"]), row
    assert by_model[("legacy-uint8 [ranges=(0,6)]", "float")]["verdict"] == "significantly worse"
    assert (out / "accuracy_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "models").glob("*.tflite"))) == len(rows)
    seed_rows = list(csv.DictReader((out / "results_by_seed.csv").open()))
    assert len(seed_rows) == len(rows) and {r["seed"] for r in seed_rows} == {"0"}


@pytest.mark.slow
def test_seeds_give_mean_std_and_keep_every_seed(mnist):
    """Two seeds of the float and legacy uint8 rows: every seed kept, mean ± std shown, pairs per seed."""
    from workbench.cli.demo import format_table
    from workbench.core.demo import DemoConfig, results_frame, run_demo, seeds_frame

    config = DemoConfig(epochs=TRAIN_EPOCHS, train_size=TRAIN_SIZE, test_size=EVAL_SIZE, recipes=("legacy-uint8",),
                        seeds=2)
    runs = run_demo(config, data=mnist, progress=False, log=lambda _: None)
    frame = results_frame(runs)
    assert list(zip(frame["recipe"], frame["model"])) == [
        ("float32", "float"), ("legacy-uint8 [ranges=(0,6)]", "float"), ("float32", "float-same-budget"),
        ("legacy-uint8", "qat-uint8-legacy")]
    assert (frame["seeds"] == 2).all()
    for _, row in frame.iterrows():
        per_seed = [row["accuracy_pct_seed0"], row["accuracy_pct_seed1"]]
        assert row["accuracy_pct"] == pytest.approx(np.mean(per_seed), abs=0.006)
        assert row["accuracy_std_pts"] == pytest.approx(np.std(per_seed, ddof=1), abs=0.006)
        assert (row["accuracy_min_pct"], row["accuracy_max_pct"]) == (min(per_seed), max(per_seed))
    long = seeds_frame(runs)
    assert len(long) == 2 * len(frame) and sorted(set(long["seed"])) == [0, 1]
    ptq = frame.iloc[1]
    per_seed = long[(long["recipe"] == ptq["recipe"]) & (long["model"] == "float")]
    assert len(per_seed) == 2
    # "k/2": how many of the seeds' own tests reject, counted here from the per-seed p-values
    assert ptq["significant_seeds"] == f"{int((per_seed['p_value'] < 0.05).sum())}/2", (ptq, per_seed)
    assert ptq["p_value"] == per_seed["p_value"].max()
    table = format_table(frame)
    assert "mean ± std (min–max)" in table and " ± " in table and "(max over seeds)" in table


def test_demo_config_refuses_bad_seeds():
    from workbench.core.demo import DemoConfig

    with pytest.raises(ValueError, match="seeds=0 is out of range; allowed: a whole number in \\[1, 20\\]"):
        DemoConfig(seeds=0)


def test_cli_reports_bad_arguments_plainly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench", "demo", "--epochs", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "epochs=0 is out of range" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "workbench", "demo", "--seeds", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "seeds=0 is out of range" in proc.stderr


def test_info_and_explain_commands(tmp_path, float_tflite):
    path = float_tflite.save(tmp_path / "f.tflite")
    proc = subprocess.run([sys.executable, "-m", "workbench", "info", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "CONV_2D" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "workbench", "explain",
                           "Node number 0 (CONV_2D) failed to prepare. input->type == kTfLiteInt8 || "
                           "input->type == kTfLiteInt16 was not true."], capture_output=True, text=True, timeout=120)
    assert "Per-channel" in proc.stdout
