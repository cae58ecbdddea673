"""``python -m workbench report`` on a user's model: wall time of the whole command.

Target (2 cores): <= 30 s from starting ``python -m workbench report model.keras
--data digits.npz`` to its exit, after install (the command imports TensorFlow,
loads the model, converts it with every registered recipe, evaluates each on all
1,797 images, writes the CSV, the PNG and the models). The model is the
MobileNet-style net trained on scikit-learn's ``digits`` (8x8x1, 10 classes),
saved as ``.keras``; the data is all of ``digits`` as ``images``/``labels`` in an
``.npz``. Preparing them (training, cached by configuration) is not timed.

Run: ``.venv/bin/python benchmarks/bench_report.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


def prepare(folder: Path) -> tuple[Path, Path]:
    """The MobileNet-style net trained on digits (``.keras``) and every digits image (``.npz``)."""
    import numpy as np

    from workbench.core.data import load_digits
    from workbench.core.train import TrainConfig, trained_mobilenet

    data = load_digits()
    model = trained_mobilenet(data, TrainConfig(epochs=30, batch_size=32))
    model.save(folder / "mobilenet_digits.keras")
    np.savez(folder / "digits.npz", images=np.concatenate([data.train_images, data.test_images]),
             labels=np.concatenate([data.train_labels, data.test_labels]))
    return folder / "mobilenet_digits.keras", folder / "digits.npz"


def timed_report(model: Path, data: Path, out: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the command's process, its stdout) for one ``report`` run (``env``: its environment)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "report", str(model), "--data", str(data),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"report failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="report runs to time (the median is judged)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(tmp)
        model, data = prepare(folder)
        walls, cpus = [], []
        for i in range(args.repeats):
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            wall, cpu, stdout = timed_report(model, data, folder / f"out{i}")
            walls.append(wall)
            cpus.append(cpu)
            print(f"run {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU (load average before: {load})", flush=True)
        rows = list(csv.DictReader((folder / "out0" / "report.csv").open()))
    print(f"cores: {os.cpu_count()}  model: MobileNet-style on digits (8x8x1, 10 classes), 1,797 images, "
          f"{len(rows)} recipes ({sum(r['status'] == 'ok' for r in rows)} converted)")
    for row in rows:
        acc = f"{100 * float(row['accuracy']):.2f} %" if row["accuracy"] else row["status"]
        print(f"  {row['recipe']:<48} {acc:>9}  {row['size_kb'] or '-':>6} KB  convert {row['convert_s'] or '-'} s")
    median = statistics.median(walls)
    print(f"python -m workbench report, after install: median {median:.1f} s wall "
          f"(min {min(walls):.1f}, max {max(walls):.1f}; CPU {statistics.median(cpus):.1f} s) over {len(walls)} "
          f"run(s) [target <= {TARGET_S:.0f} s: {'met' if median <= TARGET_S else 'NOT met'}]")


if __name__ == "__main__":
    main()
