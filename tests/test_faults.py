"""Runs killed with SIGKILL at random moments (training, conversion, sweep) leave nothing that a later run trusts:
the next normal run gives exactly what a clean run gives.

Each run is a process of its own, started from a fork server that has already imported TensorFlow and the
workbench: a run's life is the job itself, so every kill lands in its work rather than in ``import tensorflow``
(about 5 s of CPU per process), and twenty kills cost twenty short jobs.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# Imported once, in the fork server; nothing of TensorFlow's runtime starts there (no op runs), so each forked
# run starts it afresh.
PRELOAD = ["tensorflow", "tf_keras", "workbench", "workbench.core.train", "workbench.explore.sweep"]


def job(cache: str, out: str | None) -> None:
    """Train (cached), convert and sweep (cached) the digits LeNet; write what it got to ``out``."""
    warnings.simplefilter("ignore")
    import workbench as wb
    from workbench.core import artifacts, data as D
    from workbench.core.train import TrainConfig, trained_lenet
    from workbench.explore import sweep as sw

    d = D.load_digits()
    model = trained_lenet(d, TrainConfig(epochs=3, batch_size=64), cache=cache)
    converted = wb.convert(model, "legacy-uint8", default_ranges=(0.0, 6.0))
    frame = sw.sweep(model, {"mean": [0.0, 64.0], "std": [255.0]}, d.test_images, d.test_labels,
                     executor=None, cache=cache, progress=False)
    if out is not None:
        Path(out).write_text(json.dumps({"weights": artifacts.weights_digest(model),
                                         "convert": wb.evaluate(converted, d.test_images, d.test_labels).accuracy,
                                         "sweep": list(frame.accuracy)}))


def _nothing() -> None:
    pass


@pytest.fixture(scope="module")
def runs():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _start(runs, cache: Path, out: Path | None = None):
    proc = runs.Process(target=job, args=(str(cache), None if out is None else str(out)), daemon=True)
    proc.start()
    return proc


def _run(runs, cache: Path, out: Path) -> dict:
    proc = _start(runs, cache, out)
    proc.join(timeout=300)
    assert proc.exitcode == 0, proc.exitcode
    return json.loads(out.read_text())


def test_twenty_sigkills_then_a_normal_run_equals_a_clean_run(runs, tmp_path):
    warm_up = runs.Process(target=_nothing)  # the fork server's imports, not timed
    warm_up.start()
    warm_up.join(timeout=120)
    start = time.perf_counter()
    clean = _run(runs, tmp_path / "clean", tmp_path / "clean.json")
    duration = time.perf_counter() - start
    cache = tmp_path / "killed"
    rng = np.random.default_rng(20)
    killed = finished = 0
    for _ in range(10):  # two runs at a time on one cache: 20 kills at random moments of the job
        procs = [_start(runs, cache) for _ in range(2)]
        for proc, delay in zip(procs, rng.uniform(0.05 * duration, 0.9 * duration, 2)):
            time.sleep(delay / 2)  # the two waits add up to one random moment per run
            if proc.is_alive():
                proc.kill()  # SIGKILL
                killed += 1
            else:
                finished += 1
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode in (0, -9), proc.exitcode  # finished, or killed: nothing else went wrong
    assert killed >= 15, (killed, finished)  # the kills really interrupted the job
    after = _run(runs, cache, tmp_path / "after.json")
    assert after == clean
    assert not [p for p in cache.rglob("*") if ".wbtmp-" in p.name]  # killed runs' temporaries were cleaned
