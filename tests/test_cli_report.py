"""``python -m workbench report``: every registered recipe on a user's model, as a table, a CSV and a PNG."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from cli_support import DIGITS_CONFIG, MOBILENET_CONFIG, all_images, digits, run_cli, save_npz

pytestmark = pytest.mark.slow  # trains and converts whole models: make test runs it, test-quick skips it


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    from workbench.core.train import QatConfig, TrainConfig, trained_lenet, trained_mobilenet

    folder = tmp_path_factory.mktemp("report")
    trained_mobilenet(data, TrainConfig(**MOBILENET_CONFIG)).save(folder / "mobilenet.keras")
    qat = trained_lenet(data, TrainConfig(**DIGITS_CONFIG), QatConfig("int8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras: "HDF5 is a legacy format" (tfmot loads QAT models from it)
        qat.save(folder / "qat.h5")
    np.savez(folder / "calibration.npz", x_train=data.train_images)
    return {"mobilenet": folder / "mobilenet.keras", "qat": folder / "qat.h5", "dir": folder,
            "npz": save_npz(folder / "digits.npz", data), "calibration": folder / "calibration.npz"}


def test_report_runs_every_recipe_and_writes_csv_png_and_models(files, data):
    """The benchmark's command, in a real process: a MobileNet-style .keras and an .npz."""
    import workbench as wb

    out = files["dir"] / "out"
    proc = run_cli("report", files["mobilenet"], "--data", files["npz"], "--calibration", files["calibration"],
                   "--calibration-size", "200", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["recipe"].split(" ")[0] for r in rows] == list(wb.RECIPES)  # one row per registered recipe
    by_name = {r["recipe"].split(" ")[0]: r for r in rows}
    assert by_name["qat-int8"]["status"] == "skipped" and "quantization-aware" in by_name["qat-int8"]["outcome"]
    done = [r for r in rows if r["status"] == "ok"]
    assert len(done) == len(rows) - 1
    for row in done:
        assert 0.9 < float(row["accuracy"]) <= 1, row
        assert float(row["size_kb"]) > 0 and float(row["images_per_s"]) > 0 and row["outcome"], row
    assert float(by_name["float32"]["delta_pts"]) == 0.0 and by_name["float32"]["p_value"] == ""
    for row in done[1:]:  # each recipe tested against float32 on the same images
        assert 0 <= float(row["p_value"]) <= 1 and row["significant"] == str(float(row["p_value"]) < 0.05), row
        # the verdict follows from the row's own test: its sign when p < 0.05, else "borderline" iff the CI excludes 0
        if float(row["p_value"]) < 0.05:
            expected = "significantly better" if float(row["delta_pts"]) > 0 else "significantly worse"
        else:
            outside = float(row["ci_low_pts"]) > 0 or float(row["ci_high_pts"]) < 0
            expected = "no significant difference" + (" (borderline)" if outside else "")
        assert row["verdict"] == expected, row
    legacy = by_name["legacy-uint8"]
    assert legacy["recipe"] == "legacy-uint8 [mean=0,std=255; ranges=(0,6)]" and legacy["input"] == "uint8"
    assert "default_ranges (0, 6)" in legacy["note"] and "as asked" in legacy["outcome"]
    assert "calibrated on 200 images of calibration.npz" in by_name["int8-ptq"]["note"]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = sorted(p.stem for p in (out / "models").glob("*.tflite"))
    assert models == sorted(r["recipe"].split(" ")[0] for r in done)
    # the table on screen, and a model file that is what the row says
    assert "Δ vs float (pts)" in proc.stdout and "report finished in" in proc.stdout
    images, labels = all_images(data)
    int8 = (out / "models" / "int8-ptq.tflite").read_bytes()
    int8_run = wb.evaluate(int8, images, labels)
    assert int8_run.accuracy == pytest.approx(float(by_name["int8-ptq"]["accuracy"]), abs=1e-6)
    # and its test against float32 is the one the two saved models give on these images
    float_run = wb.evaluate((out / "models" / "float32.tflite").read_bytes(), images, labels)
    test = wb.compare.paired(float_run, int8_run, labels)
    assert float(by_name["int8-ptq"]["p_value"]) == pytest.approx(test.p_value, rel=1e-6), by_name["int8-ptq"]
    assert float(by_name["int8-ptq"]["delta_pts"]) == round(100 * test.difference, 2)
    assert by_name["int8-ptq"]["verdict"] == test.verdict


def test_a_qat_model_gets_qat_int8_and_a_refused_recipe_is_a_row_that_says_why(capsys, files):
    """tfmot's default QAT scheme has per-channel weights: legacy uint8 converts, but LiteRT refuses it."""
    from workbench.cli.main import main

    out = files["dir"] / "qat-out"
    code = main(["report", str(files["qat"]), "--data", str(files["npz"]), "--recipes", "float32", "qat-int8",
                 "legacy-uint8", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = {r["recipe"].split(" ")[0]: r for r in csv.DictReader((out / "report.csv").open())}
    assert list(rows) == ["float32", "qat-int8", "legacy-uint8"]
    assert rows["qat-int8"]["status"] == "ok" and rows["qat-int8"]["input"] == "uint8"
    assert float(rows["qat-int8"]["accuracy"]) > 0.8
    assert rows["legacy-uint8"]["status"] == "failed"
    assert "Per-channel" in rows["legacy-uint8"]["outcome"]
    assert "(QAT model)" in captured.out


@pytest.mark.parametrize("args, message", [
    (["{tflite}", "--data", "{npz}"], "SOURCE='{tflite}' is a .tflite, already converted"),
    (["{mobilenet}", "--data", "{dir}/missing.npz"], "--data='{dir}/missing.npz' does not exist"),
    (["{dir}/none.keras", "--data", "{npz}"], "SOURCE='{dir}/none.keras' does not exist"),
    (["{mobilenet}", "--data", "{npz}", "--calibration", "{npz}", "--images", "nope"],
     "has no array 'nope' (--images)"),
    (["{mobilenet}", "--data", "{npz}", "--calibration-size", "0"], "--calibration-size=0 is out of range"),
    (["{mobilenet}", "--data", "{npz}", "--default-ranges", "6", "0"], "--default-ranges 6 0:"),
    (["{mobilenet}", "--data", "{npz}", "--recipes", "int9"], "argument --recipes: invalid choice: 'int9'"),
])
def test_bad_report_arguments_are_one_line(capsys, monkeypatch, files, args, message):
    from workbench.cli.main import main
    from workbench.core import convert as convert_module

    def no_conversion(*a, **k):
        raise AssertionError("a conversion started before the arguments were checked")

    monkeypatch.setattr(convert_module, "convert", no_conversion)
    (files["dir"] / "m.tflite").write_bytes(b"")
    fill = {"{tflite}": str(files["dir"] / "m.tflite"), "{npz}": str(files["npz"]),
            "{mobilenet}": str(files["mobilenet"]), "{dir}": str(files["dir"])}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
        message = message.replace(key, value)
    code = main(["report", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
