"""The evaluation engine of sweeps (``core.parallel``) and the mean/std byte patch (``core.stats_patch``):
real converter, real LiteRT, real spawned worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from workbench import QuantizationWarning, convert
from workbench import sweep as sw
from workbench.core import litert, parallel, stats_patch
from workbench.core.recipes import Recipe


@pytest.fixture(scope="module")
def small_set(test_set):
    images, labels = test_set
    return images[:500], labels[:500]


@pytest.fixture(scope="module")
def models(uint8_folder):
    return [convert(uint8_folder, "legacy-uint8", mean=m, std=s).tflite for m, s in [(0, 255), (127.5, 127.5), (0, 1)]]


def test_the_worker_side_imports_no_tensorflow(small_set, models):
    code = ("import sys, workbench.core.parallel, workbench.core.litert; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
    parallel.evaluate_models(models[:2], *small_set[:1], mode="pool")  # the pool's workers have run a model
    loaded = parallel.default_pool().executor().submit(eval, "sorted(m for m in __import__('sys').modules if m.startswith("
                                               "('tensorflow', 'keras', 'tf_keras')))").result()
    assert loaded == []


def test_pool_gives_the_serial_predictions_and_stays_warm(small_set, models):
    images, labels = small_set
    serial = parallel.evaluate_models(models, images, mode="serial")
    pooled = parallel.evaluate_models(models, images, mode="pool")
    pids = parallel.pool_workers_pids()
    again = parallel.evaluate_models(models, images[:200], mode="pool")  # another image set, same workers
    assert parallel.pool_workers_pids() == pids and len(pids) == (os.cpu_count() or 1)
    for a, b, c in zip(serial, pooled, again):
        assert np.array_equal(a.predictions, b.predictions) and np.array_equal(a.predictions[:200], c.predictions)
    accuracy = [float(np.mean(p.predictions == labels)) for p in serial]
    assert accuracy[0] > 0.9 and accuracy[2] < accuracy[0] - 0.3  # (0, 1) squashes the input


def test_a_refused_model_is_an_error_not_a_crash(small_set, models):
    broken = bytearray(models[0])
    broken[4:8] = b"XXXX"
    result = parallel.evaluate_models([bytes(broken), models[0]], small_set[0], mode="pool")
    assert result[0].predictions is None and "flatbuffer" in result[0].error
    assert result[1].error == "" and len(result[1].predictions) == len(small_set[0])


def test_a_killed_pool_worker_loses_no_model(small_set, models):
    images = np.concatenate([small_set[0]] * 4)
    expected = parallel.evaluate_models(models, images, mode="serial")
    ev = parallel.evaluator(images, mode="pool")
    futures = [ev.submit(m) for m in models * 2]
    os.kill(parallel.pool_workers_pids()[0], signal.SIGKILL)
    results = [ev.result(f) for f in futures]
    assert all(np.array_equal(r.predictions, e.predictions) for r, e in zip(results, expected * 2))
    assert len(parallel.evaluate_models(models[:1], images, mode="pool")[0].predictions) == len(images)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="models is empty"):
        parallel.evaluate_models([], np.zeros((1, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        parallel.evaluator(np.zeros((1, 28, 28, 1), np.uint8), mode="threads")
    with pytest.raises(ValueError, match="client=42"):
        parallel.connect(42)
    with pytest.raises(ValueError, match="workers=0"):
        parallel.default_pool(0)


def test_patched_bytes_equal_real_conversions(uint8_folder):
    """The converter's arithmetic, not the textbook one: at (127.5, 5.62) its zero point is 127, not 128."""
    points = [(0.0, 255.0), (127.5, 127.5), (127.5, 5.62), (0.0, 1.0), (255.0, 1000.0), (30.0, 255.0),
              (10.45, 1.12), (218.64, 1.26), (151.55, 10.32)]
    real = [convert(uint8_folder, "legacy-uint8", mean=m, std=s).tflite for m, s in points]
    patcher = stats_patch.patcher(real[0], stats_patch.InputStats(*points[0]),
                                  stats_patch.saved_model_variables(uint8_folder))
    assert patcher is not None
    assert [patcher.patch(m, s) == r for (m, s), r in zip(points, real)] == [True] * len(points)
    assert stats_patch.input_quantization(127.5, 5.62)[1] == 127 != stats_patch.InputStats(127.5, 5.62).zero_point
    sites = litert.input_layer_sites(real[0])
    differ = [i for i in range(len(real[0])) if real[0][i] != real[1][i]]
    inside = [range(sites.input_scale, sites.input_scale + 4), range(sites.input_zero_point, sites.input_zero_point + 8),
              range(sites.bias_scale, sites.bias_scale + 4),
              range(sites.bias_values, sites.bias_values + 4 * sites.bias_count)]
    assert differ and all(any(i in r for r in inside) for i in differ)  # nothing else changes


def test_the_guard_patches_only_what_a_real_conversion_confirmed(uint8_folder, qat_uint8_learned):
    guarded = stats_patch.GuardedConverter(uint8_folder)
    recipes = [Recipe("legacy-uint8", mean=m, std=s) for m, s in [(0, 255), (64, 255), (127.5, 127.5), (0, 1)]]
    out = [guarded(r) for r in recipes]
    assert (guarded.converted, guarded.patched, guarded.checked) == (2, 2, True)
    assert all(o.tflite == convert(uint8_folder, r).tflite for o, r in zip(out, recipes))
    assert out[3].effective_stats.std == pytest.approx(1.0, rel=1e-4)
    # another parameter than mean/std: converted for real
    other = guarded(Recipe("legacy-uint8", mean=0, std=255, default_ranges=(0.0, 6.0)))
    assert guarded.converted == 3 and other.tflite == convert(uint8_folder, other.recipe).tflite
    # a model whose input range was learned ignores the stats: the check conversion disagrees, nothing is patched
    learned = stats_patch.GuardedConverter(sw.saved_model_folder(qat_uint8_learned))
    with pytest.warns(QuantizationWarning, match="mean/std ignored"):
        out = [learned(r) for r in recipes]
    assert learned.patched == 0 and learned.checked in (False, None)
    assert all(o.stats_ignored for o in out[1:])


def test_sweep_patches_and_matches_converting_every_point(uint8_folder, small_set, tmp_path):
    points = sw.grid(mean=[0.0, 64.0, 127.5], std=[1.0, 255.0])
    sw._CONVERTERS.clear()  # this session's checked patchers: start as a new session does
    patched = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=False, progress=False)
    converted = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=False, progress=False,
                         patch_stats=False)
    assert (patched.attrs["patched"], patched.attrs["converted"]) == (4, 2) and converted.attrs["patched"] == 0
    # the next sweep of the same model reuses the checked patcher: no check conversion again
    again = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=False, progress=False)
    assert (again.attrs["patched"], again.attrs["converted"]) == (6, 0)
    timing = ["convert_s", "eval_s"]
    assert patched.drop(columns=timing).equals(converted.drop(columns=timing))
    assert again.drop(columns=timing).equals(converted.drop(columns=timing))
    pooled = sw.sweep(uint8_folder, points, *small_set, cache=False, progress=False)
    assert pooled.attrs["evaluator"] == "pool" and pooled.drop(columns=timing).equals(converted.drop(columns=timing))


def test_evaluators_open_at_once_keep_their_image_sets(small_set, models):
    """Three sweeps' evaluators at once (a background sweep beside a foreground one): no set is freed in use."""
    images = small_set[0]
    sets = [images[:100], images[100:250], images[250:500]]
    evaluators = [parallel.evaluator(x, mode="pool") for x in sets]
    futures = [ev.submit(models[0]) for ev in evaluators]
    results = [ev.result(f) for ev, f in zip(evaluators, futures)]
    for ev in evaluators:
        ev.close()
    expected = parallel.evaluate_models([models[0]], images, mode="serial")[0].predictions
    assert np.array_equal(np.concatenate([r.predictions for r in results]), expected)
    assert len(parallel._SHARED) <= parallel._SHARED_KEEP  # idle sets beyond the newest two are freed


@pytest.mark.slow  # a Python process with TensorFlow, and worker processes that fail twice
def test_a_script_without_the_main_guard_is_told_what_to_do(uint8_folder, tmp_path):
    """Spawned workers import the script again; without ``if __name__ == "__main__":`` each one starts a sweep
    while starting up and dies. The script gets one sentence that names the guard, not a bare BrokenProcessPool."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\nfrom workbench import sweep as sw\n"
        f"images = np.zeros((20, 28, 28, 1), np.uint8)\n"
        f"sw.sweep({str(uint8_folder)!r}, {{'mean': [0.0, 64.0], 'std': [1.0, 255.0]}}, images, np.zeros(20, int), "
        "cache=False, progress=False)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode != 0
    # the script's own error (the crashed workers' leaked-memory notices may follow it)
    errors = [line for line in run.stderr.splitlines() if re.match(r"^\w+(\.\w+)*(Error|Pool):", line)]
    assert errors and errors[-1].startswith("RuntimeError:"), run.stderr[-2000:]
    assert 'if __name__ == "__main__":' in errors[-1] and "executor=None" in errors[-1]
