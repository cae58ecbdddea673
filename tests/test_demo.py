"""The main job, end to end on a small slice, through the command line."""

from __future__ import annotations

import csv
import subprocess
import sys


def test_demo_cli_writes_table_csv_png_and_models(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "demo", "--out", str(out), "--train-size", "20000", "--epochs", "2",
         "--test-size", "1000", "--calibration-size", "100", "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Δ vs float" in proc.stdout and "size KB" in proc.stdout
    rows = list(csv.DictReader((out / "results.csv").open()))
    recipes = [r["recipe"].split(" ")[0] for r in rows]
    assert {"float32", "dynamic-range", "float16", "int8-ptq", "int16x8", "qat-int8", "legacy-uint8"} <= set(recipes)
    assert float(rows[0]["delta_vs_float_pts"]) == 0.0
    for row in rows:
        assert 0.8 < float(row["accuracy_pct"]) / 100 <= 1.0, row
    assert (out / "accuracy_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "models").glob("*.tflite"))) == len(rows)


def test_cli_reports_bad_arguments_plainly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench", "demo", "--epochs", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "epochs=0 is out of range" in proc.stderr


def test_info_and_explain_commands(tmp_path, float_tflite):
    path = float_tflite.save(tmp_path / "f.tflite")
    proc = subprocess.run([sys.executable, "-m", "workbench", "info", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "CONV_2D" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "workbench", "explain",
                           "Node number 0 (CONV_2D) failed to prepare. input->type == kTfLiteInt8 || "
                           "input->type == kTfLiteInt16 was not true."], capture_output=True, text=True)
    assert "Per-channel" in proc.stdout
