"""``python -m workbench report`` without labels: wall time of the whole command, and where it goes.

Target (2 cores): <= 20 s from starting ``python -m workbench report model.keras --data
unlabelled.npz`` to its exit, every recipe, on a 64x64x1, 7-class Keras classifier with 100
images and no labels (every row is then the fidelity to the float model: agreement, SNR).
The same command on the same images with labels is timed beside it. The model is the
MobileNet-style net (``models.mobilenet_style``) trained 20 epochs on the digits 0..6 of
scikit-learn's ``digits``, each pixel blown up to 8x8 (64x64x1), saved as ``.keras``; the
data are 100 of its held-out images, as ``images`` alone and as ``images``/``labels``.
Preparing them (training, cached by configuration in ``$WORKBENCH_CACHE``) is not timed.

Every timed run starts with an empty artifact cache of its own, as a user's first report of a
model does. ``--profile`` then runs the unlabelled command ``--repeats`` times more with its
phases timed in the process (``trace``: imports wherever they happen, loading the model, each
recipe's conversion, the LiteRT runs, the fidelity figures, the files) and once under cProfile
(the workbench functions with the most cumulative time).

Measured 2026-12-07 (2 cores, load average 0.8-1.0, ``--repeats 3 --profile``): without labels median 12.1 s
wall (12.0-12.2 s, 12.3 s CPU), with labels 12.0 s. Of the unlabelled run: start-up and exit 0.8 s, imports
3.2 s (TensorFlow 2.9 s), loading the model 0.23 s, conversions 7.1 s (float32 2.3 s with the one SavedModel
export, the other TF2 recipes 0.95-1.1 s each, legacy-uint8 0.6 s, the AEQ recipes 0.2 s), LiteRT runs 0.12 s,
files 0.22 s. Before the TF2 conversions started from the cached export (``converters._keras_converter``):
16.4 s, conversions 10.4 s. benchmarks/README.md has the table.

Run: ``.venv/bin/python benchmarks/bench_unlabelled_report.py [--repeats 3] [--profile]``
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_report  # the same timed command (benchmarks/ is this script's folder on the path)

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 20.0
CLASSES = 7
IMAGES = 100


def prepare(folder: Path) -> tuple[Path, Path, Path]:
    """The MobileNet-style net trained on 64x64 digits 0..6 (``.keras``) and 100 held-out images with and
    without labels (two ``.npz``)."""
    import numpy as np

    from workbench.core.data import digits_arrays, split
    from workbench.core.train import TrainConfig, trained_mobilenet

    images, labels, names = digits_arrays()
    keep = labels < CLASSES
    big = np.kron(images[keep][..., 0], np.ones((8, 8), np.uint8))[..., None]  # each pixel 8x8: (N, 64, 64, 1)
    data = split(big, labels[keep], class_names=names[:CLASSES], name="digits64")
    model = trained_mobilenet(data, TrainConfig(epochs=20, batch_size=32))
    model.save(folder / "mobilenet64.keras")
    np.savez(folder / "unlabelled.npz", images=data.test_images[:IMAGES])
    np.savez(folder / "labelled.npz", images=data.test_images[:IMAGES], labels=data.test_labels[:IMAGES])
    return folder / "mobilenet64.keras", folder / "unlabelled.npz", folder / "labelled.npz"


def command(model: Path, data: Path, out: Path) -> list[str]:
    return ["-m", "workbench", "report", str(model), "--data", str(data), "--out", str(out)]


def fresh_cache(out: Path) -> dict[str, str]:
    """The environment of one timed run: an empty artifact cache of its own, as on a user's first report of a model
    (the SavedModel export the conversions reuse is then paid in every run, never found from an earlier one)."""
    return dict(os.environ, WORKBENCH_CACHE=str(out.with_name(out.name + "-cache")))


def timed_report(model: Path, data: Path, out: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the command's process, its stdout) for one ``report`` run, with an empty cache."""
    return bench_report.timed_report(model, data, out, env=fresh_cache(out))


def conversions(stdout: str) -> dict[str, float]:
    """Each converted recipe's seconds, as the report prints them (``  LABEL: ... in 1.2 s``)."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^  (.+?): .* in ([\d.]+) s$", stdout, re.M)}


def in_report(stdout: str) -> float:
    """The seconds the report itself says it took (from its checks to its last file, imports excluded)."""
    return float(re.search(r"report finished in ([\d.]+) s", stdout)[1])


# What the traced run times (``trace``): (label, module, attribute). Each phase's time excludes the phases and the
# imports that run inside it (the float model's outputs run the float32 conversion through ``outputs_of``).
PHASES = (
    ("load the model (.keras)", "workbench.cli.evaluation", "load"),
    ("convert", "workbench.core.convert", "convert"),
    ("float model's outputs (reference)", "workbench.core.measure", "Reference.take"),
    ("LiteRT runs (interpreter + invoke)", "workbench.core.measure", "outputs_of"),
    ("fidelity figures", "workbench.core.measure", "Reference.fidelity"),
    ("write CSV, PNG, models", "workbench.cli.report", "write"),
    ("print the table", "workbench.cli.report", "format_table"),
    ("report, the rest (checks, data, model facts, notes)", "workbench.cli.report", "run"),
)
REST = "the rest (argument parsing, ...)"


def trace(argv: list[str]) -> dict[str, float]:
    """Run ``python -m workbench ARGV`` in this process, timing each phase (``PHASES``) and every import apart.

    Wall seconds, exclusive: a stack of running phases where the outermost loading of a module (``import``,
    ``importlib.import_module``) is a phase of its own, so TensorFlow's import counts as import wherever it happens.
    Conversions are timed per recipe (``convert: NAME``).
    """
    import importlib
    import threading

    started = time.perf_counter()
    totals: dict[str, float] = {}
    stack: list[list] = []  # [label, start, seconds spent in nested phases]
    main_thread = threading.main_thread()

    def timed(label_of, call):
        def run(*args, **kwargs):
            if threading.current_thread() is not main_thread or (stack and stack[-1][0] == "imports"):
                return call(*args, **kwargs)
            frame = [label_of(args), time.perf_counter(), 0.0]
            stack.append(frame)
            try:
                return call(*args, **kwargs)
            finally:
                stack.pop()
                spent = time.perf_counter() - frame[1]
                totals[frame[0]] = totals.get(frame[0], 0.0) + spent - frame[2]
                if stack:
                    stack[-1][2] += spent
        return run

    bootstrap = importlib._bootstrap  # its _find_and_load runs every import of a module not loaded yet, and only those
    bootstrap._find_and_load = timed(lambda a: "imports", bootstrap._find_and_load)
    for label, module, attribute in PHASES:
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        if label == "convert":
            def label_of(a):
                recipe = a[1] if len(a) > 1 else "?"
                return f"convert: {getattr(recipe, 'label', lambda: recipe)()}"
        else:
            label_of = (lambda text: lambda a: text)(label)
        setattr(owner, name, timed(label_of, getattr(owner, name)))
    from workbench.cli.main import main as workbench_main

    code = workbench_main(argv)
    if code:
        raise SystemExit(code)
    total = time.perf_counter() - started
    totals[REST] = total - sum(totals.values())
    totals["total in the process"] = total
    return totals


def traced_report(model: Path, data: Path, out: Path) -> tuple[float, dict[str, float]]:
    """(wall s from outside, the phases ``trace`` measured in a fresh process) for one unlabelled ``report``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--trace", *command(model, data, out)[2:]], capture_output=True,
                          text=True, cwd=ROOT, env=fresh_cache(out), timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"traced report failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def top_cumulative(model: Path, data: Path, out: Path, prof: Path, count: int = 15) -> list[tuple[float, str]]:
    """The report under cProfile: its ``count`` workbench functions with the most cumulative time."""
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *command(model, data, out)],
                          capture_output=True, text=True, cwd=ROOT, env=fresh_cache(out), timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"profiled report failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    stats = pstats.Stats(str(prof)).stats
    ours = [(v[3], f"{Path(k[0]).parent.name}/{Path(k[0]).name}:{k[2]}") for k, v in stats.items()
            if f"{os.sep}workbench{os.sep}" in k[0] and k[2] not in ("<module>", "main")]
    return sorted(ours, reverse=True)[:count]


def main() -> None:
    if sys.argv[1:2] == ["--trace"]:  # the traced run, in its own process (``traced_report``)
        print(json.dumps(trace(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command (the median is judged)")
    parser.add_argument("--profile", action="store_true",
                        help="then time the unlabelled run's phases (repeats times) and list cProfile's top entries")
    args = parser.parse_args()
    measure(args.repeats, args.profile)


def measure(repeats: int = 1, profile: bool = False) -> None:
    """Time both commands ``repeats`` times each (alternating) and print the figures; ``profile``: then the phases."""
    with tempfile.TemporaryDirectory(prefix="bench-unlabelled-") as tmp:
        folder = Path(tmp)
        model, unlabelled, labelled = prepare(folder)
        times: dict[str, list[tuple[float, float, float]]] = {"without labels": [], "with labels": []}
        stdouts = {}
        for i in range(repeats):  # alternate the two so background load hits both alike
            for kind, data in (("without labels", unlabelled), ("with labels", labelled)):
                load = os.getloadavg()[0]
                wall, cpu, stdout = timed_report(model, data, folder / f"out-{kind.replace(' ', '-')}-{i}")
                times[kind].append((wall, cpu, in_report(stdout)))
                stdouts.setdefault(kind, stdout)
                print(f"run {i + 1} {kind}: {wall:.1f} s wall, {cpu:.1f} s CPU, {in_report(stdout):.1f} s by the "
                      f"report's own clock (load average before: {load:.2f})", flush=True)
        print(f"cores: {os.cpu_count()}  model: MobileNet-style, 64x64x1, {CLASSES} classes, {IMAGES} images")
        medians = {}
        for kind, runs in times.items():
            walls = [r[0] for r in runs]
            medians[kind] = statistics.median(walls)
            print(f"report {kind}: median {medians[kind]:.1f} s wall (min {min(walls):.1f}, max {max(walls):.1f}; "
                  f"CPU {statistics.median(r[1] for r in runs):.1f} s; "
                  f"{statistics.median(r[2] for r in runs):.1f} s by its own clock) over {len(runs)} run(s)")
        print("conversion seconds as the unlabelled report printed them (first run):")
        for label, seconds in conversions(stdouts["without labels"]).items():
            print(f"  {label:<60} {seconds:5.1f} s")
        met = medians["without labels"] <= TARGET_S
        print(f"python -m workbench report without labels: median {medians['without labels']:.1f} s "
              f"[target <= {TARGET_S:.0f} s: {'met' if met else 'NOT met'}]; with labels "
              f"{medians['with labels']:.1f} s")
        if not profile:
            return
        traced = [traced_report(model, unlabelled, folder / f"out-traced-{i}") for i in range(repeats)]
        print(f"where the unlabelled run's time goes (wall s, each phase without the phases and imports inside it; "
              f"median [min-max] of {len(traced)} traced run(s)):")
        outside = [wall - phases["total in the process"] for wall, phases in traced]
        order = ["imports"] + [label for label, _, _ in PHASES] + [REST]
        labels = sorted(dict.fromkeys(k for _, phases in traced for k in phases),
                        key=lambda k: order.index(k) if k in order else order.index("convert"))
        rows = [("python start-up and exit", outside)] + [
            (k, [phases.get(k, 0.0) for _, phases in traced]) for k in labels if k != "total in the process"]
        converts = [sum(v for k, v in phases.items() if k.startswith("convert")) for _, phases in traced]
        rows.append(("convert, every recipe", converts))
        rows.append(("wall from outside", [wall for wall, _ in traced]))
        for label, values in rows:
            print(f"  {label:<60} {statistics.median(values):6.2f} s  [{min(values):.2f}-{max(values):.2f}]")
        print("cProfile, one unlabelled run: workbench functions by cumulative seconds (imports inside included):")
        for seconds, name in top_cumulative(model, unlabelled, folder / "out-profiled", folder / "report.prof"):
            print(f"  {name:<60} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
