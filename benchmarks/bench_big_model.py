"""``python -m workbench report`` on a MobileNet-size model: wall time and peak RSS, an earlier commit beside this.

Targets (2 cores): ``report`` on Keras 3 ``keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
classes=1000)`` saved as ``.keras``, with 200 images of 224x224x3 (uint8, labels 0..999) in an ``.npz``, every
recipe: **<= 75 s** wall and **<= 1.5 GB** peak RSS; from 200 to 5,000 images the peak RSS grows by **<= 300 MB**.

One run measures, each command in its own process with an empty artifact cache (the model's SavedModel export is
paid every time, as on a user's first report):

1. the earlier path: the same command run from ``git archive BASE`` of this repository (``--base``, default the
   commit before the shared calibration and the lazy data), on the 200 images;
2. this tree's path, on the same 200 images;
3. where this tree's time goes, measured alone in one process: one SavedModel export, each recipe's conversion,
   each conversion's evaluation on the 200 images; their sum beside the report's wall time;
4. this tree's peak RSS with 200 and with 5,000 images for ``--growth-recipes`` (a subset, so the 5,000-image run
   stays minutes long; the rows and the verdict step are those of the full command).

Peak RSS is the process's ``ru_maxrss`` (``os.wait4`` on the command's process); the process with its children
(the conversion worker) is sampled beside it. The images are random pixels: the model is untrained
(``weights=None``), so its accuracy says nothing; the time and the memory are the point.

Measured 2026-12-07 (2 cores, no other job, load average 0.2 at the start), one run:

- before (eacf7c4): 205.0 s wall, 221.6 s CPU, peak RSS 12,244 MB;
- this tree: **68.0 s** wall, 99.7 s CPU, peak RSS **1,485 MB**; the process tree with its conversion worker
  2,461 MB. With ``WORKBENCH_CONVERT_WORKER=0``: 87.1 s, 1,432 MB (no worker);
- the steps measured alone, one after the other in one process: 67.3 s (export 4.4 s, conversions 58.9 s of which
  int8-ptq 19.5 s with its calibration, int16x8 4.4 s sharing it, aeq-int8 10.8 s; evaluations 8.2 s). The report
  counts 66.7 s from its checks to its last file, verdicts and fixes included: the worker's parallel conversions
  pay for the verdicts;
- ``--recipes float32 int8-ptq legacy-uint8``: 1,373 MB with 200 images (50 s), 1,643 MB with 5,000 (137 s):
  +270 MB.

Run: ``.venv/bin/python benchmarks/bench_big_model.py [--base REV] [--skip-base] [--skip-growth]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "eacf7c4"  # the path before: a calibration per recipe, the whole data set read and fed at once
TARGET_S, TARGET_RSS_MB, TARGET_GROWTH_MB = 75.0, 1536.0, 300.0
GROWTH_RECIPES = ("float32", "int8-ptq", "legacy-uint8")

ALONE = r'''
import json, sys, time, warnings
import numpy as np
from workbench.core import converters, recipes, sources
from workbench.core.convert import convert
from workbench.core.measure import outputs_of
from workbench.core.recipe_table import recipe_parameters
from workbench.core.samples import read_samples
model = sources.load_source(sys.argv[1])
data = read_samples("--data", sys.argv[2])
times = {}
start = time.perf_counter(); converters.keras_saved_model(model); times["export"] = time.perf_counter() - start
warnings.simplefilter("ignore")
for name in recipes.names():
    params = recipe_parameters(name, "float")
    if params is None:
        continue
    start = time.perf_counter()
    try:
        converted = convert(model, recipes.recipe(name, **params), representative=data.feed())
    except Exception as err:
        times[f"convert {name}"] = time.perf_counter() - start
        continue
    times[f"convert {name}"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        outputs_of(converted, data)
    except Exception:
        pass
    times[f"evaluate {name}"] = time.perf_counter() - start
print(json.dumps(times))
'''


def prepare(folder: Path, counts: tuple[int, ...]) -> tuple[Path, dict[int, Path]]:
    """The untrained Keras 3 MobileNetV2-224 as ``.keras`` and one uncompressed ``.npz`` per image count."""
    import numpy as np

    script = ("import sys, keras; keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), "
              "classes=1000).save(sys.argv[1])")
    model = folder / "mobilenet_v2.keras"
    subprocess.run([sys.executable, "-c", script, str(model)], check=True, capture_output=True, timeout=600)
    rng = np.random.default_rng(0)
    data = {}
    for n in counts:
        data[n] = folder / f"images{n}.npz"
        np.savez(data[n], images=rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8),
                 labels=rng.integers(0, 1000, n))
    return model, data


TREE = {}  # argv -> the peak RSS (MB) of the command's process and its children together, sampled


def measured(argv: list[str], cwd: Path, cache: Path) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB of the command's process, stdout) of ``python ARGV`` run in ``cwd`` with the
    artifact cache ``cache``; ``TREE`` gets the peak of the process and its children together (sampled every 0.2 s)."""
    import threading

    import psutil

    env = dict(os.environ, WORKBENCH_CACHE=str(cache), PYTHONPATH=str(cwd))
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
        peak, done = [0], threading.Event()

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while not done.wait(0.2):
                try:
                    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                except psutil.Error:
                    continue
                peak[0] = max(peak[0], rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{text[-3000:]}")
    TREE[tuple(argv)] = peak[0] / 2**20
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def report(model: Path, data: Path, out: Path, cwd: Path,
           recipes: tuple[str, ...] = ()) -> tuple[float, float, float, float, str]:
    """(wall s, CPU s, peak RSS MB of the report's process, of it and its worker together, stdout)."""
    argv = ["-m", "workbench", "report", str(model), "--data", str(data), "--out", str(out)]
    if recipes:
        argv += ["--recipes", *recipes]
    wall, cpu, rss, text = measured(argv, cwd, out.with_name(out.name + "-cache"))
    return wall, cpu, rss, TREE[tuple(argv)], text


def rows(stdout: str) -> list[str]:
    """The report's per-recipe result lines (``  LABEL: ... in S s`` or ``  NAME: failed``)."""
    return [line.strip() for line in stdout.splitlines() if re.match(r"^  \S.*(: failed| in [\d.]+ s)$", line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE, help="the commit whose report is measured beside this tree's")
    parser.add_argument("--skip-base", action="store_true", help="do not run the earlier commit's report")
    parser.add_argument("--skip-growth", action="store_true", help="do not run the 5,000-image report")
    parser.add_argument("--growth-recipes", nargs="+", default=list(GROWTH_RECIPES))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        folder = Path(tmp)
        model, data = prepare(folder, (200,) if args.skip_growth else (200, 5000))
        print(f"cores: {os.cpu_count()}  load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}  "
              f"model: Keras 3 MobileNetV2-224, weights=None, 1000 classes ({model.stat().st_size / 2**20:.1f} MB)",
              flush=True)
        if not args.skip_base:
            base = folder / "base"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "workbench"], check=True,
                                     capture_output=True, timeout=120).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True, timeout=120)
            wall, cpu, rss, tree, text = report(model, data[200], folder / "out-base", base)
            print(f"{args.base} (before): {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.0f} MB (with its "
                  f"children {tree:.0f} MB)", flush=True)
            for line in rows(text):
                print(f"    {line}")
        wall, cpu, rss, tree, text = report(model, data[200], folder / "out-new", ROOT)
        verdict = "met" if wall <= TARGET_S and rss <= TARGET_RSS_MB else "NOT met"
        print(f"this tree: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.0f} MB  (targets <= {TARGET_S:.0f} s, "
              f"<= {TARGET_RSS_MB:.0f} MB: {verdict}); with its conversion worker {tree:.0f} MB", flush=True)
        for line in rows(text):
            print(f"    {line}")
        said = re.search(r"report finished in ([\d.]+) s", text)
        import json

        _, _, _, alone = measured(["-c", ALONE, str(model), str(data[200])], ROOT, folder / "alone-cache")
        parts = json.loads(alone.strip().splitlines()[-1])
        total = sum(parts.values())
        print(f"measured alone: {total:.1f} s = " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
        print(f"  the report's own count ({said[1] if said else '?'} s, imports excluded) against that sum: "
              f"{float(said[1]) - total:+.1f} s" if said else "")
        if not args.skip_growth:
            small = report(model, data[200], folder / "out-200", ROOT, tuple(args.growth_recipes))
            big = report(model, data[5000], folder / "out-5000", ROOT, tuple(args.growth_recipes))
            growth = big[2] - small[2]  # the report's process
            print(f"peak RSS, --recipes {' '.join(args.growth_recipes)}: 200 images {small[2]:.0f} MB "
                  f"({small[0]:.0f} s), "
                  f"5,000 images {big[2]:.0f} MB ({big[0]:.0f} s): grows {growth:+.0f} MB (target <= "
                  f"{TARGET_GROWTH_MB:.0f} MB: {'met' if growth <= TARGET_GROWTH_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
