"""Foundation benchmarks: demo wall time, epoch times, conversion times, batched vs looped inference.

Run: ``.venv/bin/python benchmarks/run.py`` (or ``make benchmark``); the sweep rates against the bound
come from ``bench_sweep.py`` (``--skip-sweep`` leaves them out). Every
figure is measured in this one run; ratios compare measurements taken side by
side. Targets (benchmarks/README.md, 2 cores): demo <= 60 s, QAT/float epoch <= 1.3x,
batched evaluation >= 1.5x the one-image loop with the same predictions, screening sweep >= 5x the exact
sweep on a 7x7 mean/std grid with the same best point (``bench_screening.py``), ``report`` without labels on a
64x64x1 7-class classifier with 100 images <= 20 s (``bench_unlabelled_report.py``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_wall_time(extra: list[str]) -> float:
    """Seconds for ``python -m workbench demo`` with an empty cache (so it trains)."""
    return demo_times(extra)[0]


def demo_times(extra: list[str]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds for ``python -m workbench demo`` with an empty cache (so it trains).

    The CPU time (user + system of the demo process) says how much of the wall time was the demo's own
    work on a machine other jobs share: the wall time alone moves with their load.
    """
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_CACHE=tmp)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workbench", "demo", "--out", f"{tmp}/out", "--no-progress", *extra],
                       check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def epoch_times(data):
    """(float epoch s, QAT epoch s): the second epoch of each, so graph tracing is excluded."""
    from workbench.core.train import QatConfig, TrainConfig, fit, quantize_model, set_seed
    from workbench.core.models import lenet

    cfg = TrainConfig()

    def timed_second_epoch(model):
        fit(model, data, cfg, epochs=1)  # warm-up: tracing and the first epoch
        start = time.perf_counter()
        model.fit(cfg.spec.normalize(data.train_images), data.train_labels, batch_size=cfg.batch_size,
                  epochs=1, verbose=0)
        return time.perf_counter() - start, model

    set_seed(0)
    float_s, float_model = timed_second_epoch(lenet())
    qat_s, _ = timed_second_epoch(quantize_model(float_model, QatConfig("int8")))
    return float_s, qat_s, float_model


def conversion_times(float_model, data):
    from workbench import convert
    from workbench.core.convert import export_saved_model
    from workbench.core.train import QatConfig, quantize_model

    rows = []
    for name, kw in [("float32", {}), ("dynamic-range", {}), ("float16", {}), ("int8-ptq", {}),
                     ("int16x8", {}), ("legacy-uint8", {"default_ranges": (0, 6)})]:
        c = convert(float_model, name, representative=data.train_images, **kw)
        rows.append((c.recipe.label() + " (from Keras)", c.seconds))
    qat = quantize_model(float_model, QatConfig("uint8-legacy"))
    c = convert(quantize_model(float_model, QatConfig("int8")), "qat-int8", io_type="uint8")
    rows.append((c.recipe.label() + " (from Keras)", c.seconds))
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_saved_model(qat, Path(tmp) / "sm")
        convert(folder, "legacy-uint8")  # warm-up
        times = []
        for _ in range(5):
            times.append(convert(folder, "legacy-uint8").seconds)
        rows.append(("legacy-uint8 (from SavedModel folder, median of 5)", sorted(times)[2]))
    return rows, qat


def tutorial_loop(model, images):
    """The classic one-image-per-invoke loop of the TFLite tutorials (LiteRT's default threads), for comparison."""
    from workbench import litert

    return litert.run(model, images, batch_size=1).outputs.argmax(1)


def batched_vs_loop(model, data):
    import numpy as np

    from workbench import convert, predict

    c = convert(model, "legacy-uint8")
    images = data.test_images
    rows = []
    for _ in range(3):  # alternate the two so background load hits both alike
        start = time.perf_counter()
        batched = predict(c, images).argmax(1)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        loop = tutorial_loop(c, images)
        loop_s = time.perf_counter() - start
        rows.append((batched_s, loop_s))
    batched_s = sorted(r[0] for r in rows)[1]
    loop_s = sorted(r[1] for r in rows)[1]
    return batched_s, loop_s, bool(np.array_equal(batched, loop))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true", help="skip the demo wall-time run")
    parser.add_argument("--skip-screening", action="store_true", help="skip the screening vs exact sweep run")
    parser.add_argument("--skip-sweep", action="store_true", help="skip the sweep rates (bench_sweep.py)")
    parser.add_argument("--skip-unlabelled-report", action="store_true",
                        help="skip report without and with labels (bench_unlabelled_report.py)")
    args = parser.parse_args()
    from workbench import load_mnist

    data = load_mnist()
    if not args.skip_demo:
        demo_s, demo_cpu = demo_times([])
        print(f"demo (python -m workbench demo, empty cache, full MNIST): {demo_s:.1f} s (CPU {demo_cpu:.1f} s, "
              f"load average {os.getloadavg()[0]:.1f})   target <= 60 s")
    float_s, qat_s, float_model = epoch_times(data)
    print(f"float epoch: {float_s:.2f} s   QAT epoch: {qat_s:.2f} s   ratio {qat_s / float_s:.2f}x   target <= 1.3x")
    rows, qat = conversion_times(float_model, data)
    for label, seconds in rows:
        print(f"convert {label}: {seconds:.2f} s")
    batched_s, loop_s, same = batched_vs_loop(qat, data)
    print(f"evaluate 10k on legacy-uint8 (median of 3): batched {batched_s:.2f} s, one image per invoke "
          f"{loop_s:.2f} s, speed-up {loop_s / batched_s:.2f}x (target >= 1.5x), same predictions: {same}")
    if not args.skip_screening:
        from bench_screening import measure  # this folder is on the path when run as a script

        print("\n".join(measure()))
    if not args.skip_sweep:
        import bench_sweep  # benchmarks/ is this script's folder
        from workbench import QatConfig, TrainConfig, sweep, trained_lenet

        model = trained_lenet(data, TrainConfig(epochs=1, train_size=20000), QatConfig(scheme="uint8-legacy"))
        bench_sweep.measure(data, sweep.saved_model_folder(model), size=5, test_size=len(data.test_images),
                            updates=12)
    if not args.skip_unlabelled_report:
        import bench_unlabelled_report  # benchmarks/ is this script's folder

        bench_unlabelled_report.measure()
    return 0


if __name__ == "__main__":
    sys.exit(main())
