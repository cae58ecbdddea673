"""Sweeps: grids, real process pools, per-point cache and resume, training sweeps."""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from workbench import InputSpec, convert, evaluate
from workbench import sweep as sw
from workbench.core import artifacts
from workbench.core.compare import paired


@pytest.fixture(scope="module")
def small_set(test_set):
    images, labels = test_set
    return images[:1000], labels[:1000]


def test_grid_is_the_cartesian_product():
    points = sw.grid(mean=[0, 127.5], std=[1, 255, 1000])
    assert len(points) == 6
    assert points[0] == {"mean": 0, "std": 1} and points[-1] == {"mean": 127.5, "std": 1000}


def test_stats_grid_contains_the_correct_and_the_classic_wrong_point():
    points = sw.stats_grid(InputSpec(), 4)
    assert {"mean": 0.0, "std": 255.0} in points and {"mean": 0.0, "std": 1.0} in points
    assert {"mean": 127.5, "std": 127.5} in sw.stats_grid(InputSpec(-1.0, 1.0), 3)


@pytest.mark.parametrize("bad, message", [
    ({"mean": []}, "empty"),
    ({"colour": [1]}, "unknown sweep key"),
    ({"bits": [4]}, "sweep_training"),
    ({"mean": [300]}, "mean"),
    ({"std": [0]}, "std"),
    ({"default_ranges": [(6, 0)]}, "min >= max"),
])
def test_bad_points_are_refused_before_any_work(uint8_folder, small_set, bad, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        sw.sweep(uint8_folder, bad, *small_set, executor=None, cache=tmp_path, progress=False)


def test_bad_model_and_executor_are_refused(uint8_folder, small_set, tmp_path):
    with pytest.raises(ValueError, match="saved_model.pb"):
        sw.sweep(tmp_path, {"mean": [0]}, *small_set, cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match="executor"):
        sw.sweep(uint8_folder, {"mean": [0]}, *small_set, executor="threads", cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match="labels"):
        sw.sweep(uint8_folder, {"mean": [0]}, small_set[0], small_set[1][:5], cache=tmp_path, progress=False)


def test_a_point_equals_convert_plus_evaluate(uint8_folder, small_set, tmp_path):
    frame = sw.sweep(uint8_folder, [{"mean": 127.5, "std": 127.5}], *small_set, executor=None,
                     cache=tmp_path, progress=False)
    direct = evaluate(convert(uint8_folder, "legacy-uint8", mean=127.5, std=127.5), *small_set)
    assert frame.loc[0, "accuracy"] == direct.accuracy
    assert frame.loc[0, "effective_mean"] == pytest.approx(127.5, abs=0.5)  # the zero point is a whole byte
    assert frame.loc[0, "effective_std"] == pytest.approx(127.5, rel=1e-4)
    assert list(frame.columns[:3]) == ["recipe", "mean", "std"]


def test_process_pool_sweep_matches_in_process_and_teaches(uint8_folder, small_set, tmp_path):
    points = sw.grid(mean=[0.0, 127.5], std=[1.0, 255.0])
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        pooled = sw.sweep(uint8_folder, points, *small_set, executor=pool, cache=tmp_path / "a", progress=False)
    here = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path / "b", progress=False)
    assert list(pooled["accuracy"]) == list(here["accuracy"])
    assert not pooled["cached"].any()
    best = sw.best_point(pooled)
    assert (best["mean"], best["std"]) == (0.0, 255.0)
    wrong = pooled[(pooled["mean"] == 0.0) & (pooled["std"] == 1.0)]["accuracy"].item()
    assert wrong < best["accuracy"] - 0.3


def test_interrupted_sweep_resumes_from_the_cache(uint8_folder, small_set, tmp_path):
    first = sw.grid(mean=[0.0], std=[1.0, 255.0])
    done = sw.sweep(uint8_folder, first, *small_set, executor=None, cache=tmp_path, progress=False)
    files = sorted(f for f in (tmp_path / "sweeps").glob("*.json") if not f.name.endswith(".manifest.json"))
    assert len(files) == 2 and all(json.loads(f.read_text())["accuracy"] >= 0 for f in files)
    files[0].write_text("{not json")  # a half-written file must not be trusted
    full = sw.sweep(uint8_folder, first + [{"mean": 64.0, "std": 255.0}], *small_set, executor=None,
                    cache=tmp_path, progress=False)
    assert full["cached"].sum() == 1
    assert list(full["accuracy"][:2]) == list(done["accuracy"])
    again = sw.sweep(uint8_folder, first, *small_set, executor=None, cache=tmp_path, progress=False)
    assert again["cached"].all()


def test_points_given_as_numpy_numbers_are_cached_like_plain_numbers(uint8_folder, small_set, tmp_path):
    numpy = [{"mean": np.float64(0.0), "std": np.float32(255.0)}, {"mean": np.float64(127.5), "std": np.float64(127.5)}]
    first = sw.sweep(uint8_folder, numpy, *small_set, executor=None, cache=tmp_path, progress=False)
    assert len(list((tmp_path / "sweeps").glob("*.manifest.json"))) == 2  # both rows written to the cache
    plain = sw.sweep(uint8_folder, [{"mean": 0.0, "std": 255.0}, {"mean": 127.5, "std": 127.5}], *small_set,
                     executor=None, cache=tmp_path, progress=False)
    assert plain["cached"].all() and list(plain["accuracy"]) == list(first["accuracy"])
    assert type(first.loc[0, "came_out_float"]) is type(plain.loc[0, "came_out_float"])


def test_cache_key_follows_the_evaluation_set(uint8_folder, small_set, tmp_path):
    images, labels = small_set
    sw.sweep(uint8_folder, {"mean": [0.0]}, images, labels, executor=None, cache=tmp_path, progress=False)
    other = sw.sweep(uint8_folder, {"mean": [0.0]}, images[:500], labels[:500], executor=None, cache=tmp_path,
                     progress=False)
    assert not other["cached"].any()


def test_default_range_sweep_of_a_float_model(float_model, small_set, tmp_path):
    frame = sw.sweep(float_model, {"default_ranges": [(0.0, 0.5), (0.0, 6.0)]}, *small_set, executor=None,
                     cache=tmp_path, progress=False)
    assert list(frame["default_max"]) == [0.5, 6.0]
    assert not frame["came_out_float"].any()
    assert frame["accuracy"][1] > frame["accuracy"][0] + 0.05


def test_calibration_sweep_passes_representative_images(float_model, mnist, small_set, tmp_path):
    frame = sw.sweep(float_model, {"calibration_size": [1, 50]}, *small_set, recipe="int8-ptq",
                     representative=mnist.train_images[:100], executor=None, cache=tmp_path, progress=False)
    assert frame["accuracy"].between(0.5, 1.0).all()
    assert frame["error"].eq("").all()
    assert list(frame["calibration_size"]) == [1, 50]
    # each point is calibrated on its own first N images: the same accuracy as converting with exactly those
    alone = [evaluate(convert(float_model, "int8-ptq", representative=mnist.train_images[:n], calibration_size=n),
                      *small_set) for n in (1, 50)]
    assert list(frame["accuracy"]) == [run.accuracy for run in alone], (frame, alone)
    assert not np.array_equal(alone[0].predictions, alone[1].predictions)  # so the size does change the model


def test_a_refused_conversion_is_a_row_with_an_error(qat_int8, small_set, tmp_path):
    """Per-channel int8 QAT through the uint8 path: the runtime refuses it; the sweep goes on."""
    frame = sw.sweep(qat_int8, {"mean": [0.0]}, *small_set, executor=None, cache=tmp_path, progress=False)
    assert math.isnan(frame.loc[0, "accuracy"]) and "uint8" in frame.loc[0, "error"].lower()


def test_training_sweep_caches_points(mnist, train_config, small_set, tmp_path):
    from workbench.core.train import QatConfig

    frame = sw.sweep_training(mnist, {"bits": [8]}, config=train_config, qat=QatConfig(scheme="uint8-legacy"),
                              images=small_set[0], labels=small_set[1], progress=False, cache=tmp_path)
    assert frame.loc[0, "accuracy"] > 0.85 and frame.loc[0, "bits"] == 8
    again = sw.sweep_training(mnist, {"bits": [8]}, config=train_config, qat=QatConfig(scheme="uint8-legacy"),
                              images=small_set[0], labels=small_set[1], progress=False, cache=tmp_path)
    assert again["cached"].all() and again.loc[0, "accuracy"] == frame.loc[0, "accuracy"]
    with pytest.raises(ValueError, match="bits"):
        sw.sweep_training(mnist, {"bits": [9]}, config=train_config, progress=False, cache=tmp_path)


def test_compare_reports_against_the_first_model(float_tflite, qat_uint8, small_set):
    uint8 = convert(qat_uint8, "legacy-uint8")
    result = sw.compare({"float": float_tflite, "uint8": uint8}, *small_set)
    assert list(result.table["model"]) == ["float", "uint8"]
    assert result.table.loc[0, "delta_pts"] == 0 and math.isnan(result.table.loc[0, "agreement_pct"])
    assert result.table.loc[0, "verdict"] == "reference" and result.table.loc[0, "significant"] is None
    assert result.table.loc[1, "agreement_pct"] > 90
    row = result.table.loc[1]
    test = paired(result.results["float"], result.results["uint8"], small_set[1])
    assert (row["p_value"], row["significant"], row["verdict"]) == (test.p_value, test.significant, test.verdict)
    assert row["ci_low_pts"] <= row["delta_pts"] <= row["ci_high_pts"]
    assert result.baseline == result.results["float"].accuracy
    with pytest.raises(ValueError, match="empty"):
        sw.compare({}, *small_set)


def test_compare_tests_only_equal_training_budgets(float_tflite, qat_uint8, small_set):
    uint8 = convert(qat_uint8, "legacy-uint8")
    result = sw.compare({"float": float_tflite, "uint8": uint8}, *small_set, epochs={"float": 2, "uint8": 3})
    row = result.table.loc[1]
    assert row["verdict"] == "not compared: 3 vs 2 training epochs" and math.isnan(row["p_value"])
    assert list(result.table["epochs"]) == [2, 3]
    with pytest.raises(ValueError, match=r"epochs has no entry for \['uint8'\]"):
        sw.compare({"float": float_tflite, "uint8": uint8}, *small_set, epochs={"float": 2})


def test_sweep_rows_are_paired_with_the_best_point(uint8_folder, small_set, tmp_path):
    points = sw.grid(mean=[0.0], std=[1.0, 255.0, 300.0])
    frame = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path, progress=False)
    best = int(frame["accuracy"].idxmax())
    assert (frame["reference_point"] == best).all()
    assert frame.loc[best, "verdict"] == "reference" and frame.loc[best, "significant"] is None
    wrong = frame[frame["std"] == 1.0].iloc[0]
    assert wrong["significant"] and wrong["verdict"] == "significantly worse" and wrong["p_value"] < 1e-6
    # (0, 300) reads pixels 15 % darker than (0, 255): a small change, tested rather than eyeballed
    best_std = frame.loc[best, "std"]
    other = 300.0 if best_std != 300.0 else 255.0
    near = frame[frame["std"] == other].iloc[0]
    direct = paired(evaluate(convert(uint8_folder, "legacy-uint8", mean=0, std=best_std), *small_set),
                    evaluate(convert(uint8_folder, "legacy-uint8", mean=0, std=other), *small_set), small_set[1])
    assert (near["p_value"], near["significant"], near["delta_pts"]) == (
        direct.p_value, direct.significant, round(100 * direct.difference, 2))
    # predictions live in the point cache, compactly; a file written before they were kept is recomputed
    files = sorted(f for f in (tmp_path / "sweeps").glob("*.json") if not f.name.endswith(".manifest.json"))
    assert len(files) == 3 and all(len(f.read_text()) < 4000 for f in files)
    old = json.loads(files[0].read_text())
    del old["predictions"]
    files[0].write_text(json.dumps(old))
    manifest = files[0].parent / f"{files[0].name}.manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "content": artifacts.digest(files[0], length=64)}))
    assert artifacts.valid_entry(files[0], files[0].stem)  # an old but valid entry, without predictions
    again = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path, progress=False)
    assert again["cached"].sum() == 2 and list(again["p_value"].fillna(-1)) == list(frame["p_value"].fillna(-1))
    assert "predictions" in json.loads(files[0].read_text())  # stored again, with them
    assert sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path, progress=False)["cached"].all()
    fixed = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path, progress=False, against=0)
    assert fixed.loc[0, "verdict"] == "reference" and (fixed["reference_point"] == 0).all()
    assert "p_value" not in sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path,
                                     progress=False, against=None)
    with pytest.raises(ValueError, match=r"against=3; allowed: 'best', None or a point position 0..2"):
        sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path, progress=False, against=3)


def test_predictions_round_trip_compactly():
    pred = np.random.default_rng(0).integers(0, 10, 10000)
    text = sw.encode_predictions(pred)
    assert len(text) < 10000 and np.array_equal(sw.decode_predictions(text, 10000), pred)
    assert np.array_equal(sw.decode_predictions(sw.encode_predictions(np.array([300, 2])), 2), [300, 2])
    with pytest.raises(ValueError, match="hold 10000 entries for 5 images"):
        sw.decode_predictions(text, 5)
    with pytest.raises(ValueError, match="are not encoded predictions"):
        sw.decode_predictions("uint8:!!!", 5)


@pytest.mark.slow
def test_training_sweep_over_seeds_pairs_seed_by_seed(mnist, train_config, small_set, tmp_path):
    from workbench.core.train import QatConfig

    # no point cache; the weights are the shared cache's (8 bits at seed 0 is the qat_uint8 fixture, seed 1 the
    # demo's second seed)
    frame = sw.sweep_training(mnist, {"bits": [2, 8]}, config=train_config, qat=QatConfig(scheme="uint8-legacy"),
                              images=small_set[0], labels=small_set[1], progress=False, cache=False, seeds=2)
    assert list(zip(frame["bits"], frame["seed"])) == [(2, 0), (8, 0), (2, 1), (8, 1)]
    assert (frame["epochs"] == train_config.epochs + 1).all()
    assert list(frame["verdict"][[1, 3]]) == ["reference"] * 2  # 8 bits: the best mean accuracy
    assert frame["significant"][[0, 2]].all() and (frame["delta_pts"][[0, 2]] < 0).all()
    with pytest.raises(ValueError, match="seeds=0 is out of range"):
        sw.sweep_training(mnist, {"bits": [8]}, config=train_config, progress=False, cache=tmp_path, seeds=0)


def test_fingerprints_follow_content(tmp_path):
    a = np.zeros((2, 28, 28, 1), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 1
    assert sw.array_fingerprint(a) == sw.array_fingerprint(a.copy()) != sw.array_fingerprint(b)
    (tmp_path / "f").write_bytes(b"x")
    before = sw.folder_fingerprint(tmp_path)
    (tmp_path / "f").write_bytes(b"y")
    assert sw.folder_fingerprint(tmp_path) != before


def test_a_point_error_is_the_first_line_or_the_type_of_an_empty_message():
    from workbench.core.checks import first_line

    assert first_line(RuntimeError()) == "RuntimeError" and first_line(ValueError("  \n ")) == "ValueError"
    assert first_line(ValueError("  converter said no\ntraceback...")) == "converter said no"
    assert first_line(ValueError("x" * 500)) == "x" * 300
