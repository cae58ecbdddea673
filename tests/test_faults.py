"""Runs killed with SIGKILL at random moments (training, conversion, sweep) leave nothing that a later run trusts:
the next normal run gives exactly what a clean run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

JOB = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import workbench as wb
    from workbench.core import artifacts, data as D
    from workbench.core.train import TrainConfig, trained_lenet
    from workbench.explore import sweep as sw

    cache = sys.argv[1]
    d = D.load_digits()
    model = trained_lenet(d, TrainConfig(epochs=3, batch_size=64), cache=cache)
    converted = wb.convert(model, "legacy-uint8", default_ranges=(0.0, 6.0))
    frame = sw.sweep(model, {"mean": [0.0, 64.0], "std": [255.0]}, d.test_images, d.test_labels,
                     executor=None, cache=cache, progress=False)
    print(json.dumps({"weights": artifacts.weights_digest(model),
                      "convert": wb.evaluate(converted, d.test_images, d.test_labels).accuracy,
                      "sweep": list(frame.accuracy)}))
""")


def _start(script, cache):
    return subprocess.Popen([sys.executable, str(script), str(cache)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _run(script, cache) -> dict:
    proc = _start(script, cache)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def test_twenty_sigkills_then_a_normal_run_equals_a_clean_run(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    start = time.perf_counter()
    clean = _run(script, tmp_path / "clean")
    duration = time.perf_counter() - start
    cache = tmp_path / "killed"
    rng = np.random.default_rng(20)
    killed = finished = 0
    for _ in range(10):  # two runs at a time on one cache: 20 kills at random moments of the job
        procs = [_start(script, cache) for _ in range(2)]
        for proc, delay in zip(procs, rng.uniform(0.2 * duration, 1.1 * duration, 2)):
            time.sleep(delay / 2)  # the two waits add up to one random moment per run
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                finished += 1
        for proc in procs:
            proc.wait(timeout=60)
    assert killed >= 15, (killed, finished)  # the kills really interrupted the job
    after = _run(script, cache)
    assert after == clean
    assert not [p for p in cache.rglob("*") if ".wbtmp-" in p.name]  # killed runs' temporaries were cleaned
