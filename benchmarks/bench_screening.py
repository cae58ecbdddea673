"""Screening sweep vs exact sweep: a 7x7 mean/std grid on the full 10k test set, both in one run.

Target (benchmarks/README.md, 2 cores): the screening sweep >= 5x the exact sweep, with the same best
point. Both run without the point cache, on the same execution (the default: conversions here, mean/std
points patched where the guard allows, evaluations on the session's warm LiteRT-only pool, started before
the clock runs; or everything in this process with ``--serial``); they alternate ``--repeats`` times so background
load hits both alike. Screening saves evaluations, not conversions (each round converts or patches its points
again): the script prints how much of each sweep was converting and evaluating.

Run: ``.venv/bin/python benchmarks/bench_screening.py [--grid 7] [--repeats 1] [--serial]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def work(frame, sizes: list[int]) -> tuple[int, int]:
    """(conversions, images evaluated) a screening frame cost: each row ran every round up to its own, each
    round on images the point had not seen."""
    conversions = sum(len([s for s in sizes if s <= n]) if n else 1 for n in frame["images_evaluated"])
    return conversions, int(frame["images_evaluated"].sum())


def compare(folder, images, labels, size: int, executor, repeats: int) -> list[str]:
    """Exact and screening sweeps of the ``size`` x ``size`` stats grid, alternated ``repeats`` times; report lines."""
    import workbench as wb
    from workbench.explore import screening

    points = wb.sweep.stats_grid(wb.InputSpec(), size)
    exact_s, screen_s = [], []
    for _ in range(repeats):
        s, exact = timed(wb.sweep.sweep, folder, points, images, labels, executor=executor, cache=False,
                         progress=False)
        exact_s.append(s)
        s, screened = timed(screening.sweep, folder, points, images, labels, executor=executor, cache=False,
                            progress=False)
        screen_s.append(s)
    e, sc = statistics.median(exact_s), statistics.median(screen_s)
    best, found = wb.sweep.best_point(exact), wb.sweep.best_point(screened)
    same = (best["mean"], best["std"]) == (found["mean"], found["std"])
    sizes = screened.attrs["screening"]["stages"]
    conversions, evaluated = work(screened, sizes)
    truth = exact["accuracy"].to_numpy()
    inside = ((screened["ci_low"] <= truth) & (truth <= screened["ci_high"])).mean()
    n = len(points)
    return [
        f"grid {len(set(p['mean'] for p in points))} means x {len(set(p['std'] for p in points))} stds = {n} points, "
        f"{len(images):,} images, rounds {sizes}",
        f"exact sweep: {e:.1f} s  screening sweep: {sc:.1f} s  ratio {e / sc:.2f}x [target >= 5x: "
        f"{'met' if e / sc >= 5 else 'NOT met'}]  (median of {repeats}: exact {_runs(exact_s)}, screening "
        f"{_runs(screen_s)})",
        f"best point: exact (mean={best['mean']:g}, std={best['std']:g}) {100 * best['accuracy']:.2f} %, "
        f"screening (mean={found['mean']:g}, std={found['std']:g}) {100 * found['accuracy']:.2f} %: "
        f"{'same' if same else 'DIFFERENT'}",
        f"  {screening.describe(screened)}",
        f"  intervals holding the exact accuracy: {100 * inside:.0f} % of rows",
        f"  work: exact {n} conversions + {n * len(images):,} image evaluations; screening {conversions} "
        f"conversions + {evaluated:,} image evaluations ({n * len(images) / evaluated:.1f}x fewer)",
        f"  exact sweep per point: convert median {exact['convert_s'].median():.3f} s, evaluate median "
        f"{exact['eval_s'].median():.3f} s; screening converts (or patches) every point again in each round it "
        f"reaches, so its ratio is at most {n * len(images) / evaluated:.1f}x (the evaluations it saves)",
    ]


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def measure(grid: int = 7, repeats: int = 1, serial: bool = False, train_size: int = 20000) -> list[str]:
    """The report's lines: the QAT uint8 LeNet (cached), the full MNIST test set, one warm pool (or ``serial``)."""
    import workbench as wb

    data = wb.load_mnist()
    model = wb.trained_lenet(data, wb.TrainConfig(epochs=1, train_size=train_size),
                             wb.QatConfig(scheme="uint8-legacy"))
    folder = wb.sweep.saved_model_folder(model)
    workers = os.cpu_count() or 1
    images, labels = data.test_images, data.test_labels
    load = os.getloadavg()[0]
    if serial:
        lines = compare(folder, images, labels, grid, None, repeats)
        where = "in this process"
    else:
        wb.sweep.sweep(folder, wb.sweep.stats_grid(wb.InputSpec(), 2), images[:100], labels[:100],
                       cache=False, progress=False)  # starts the session's warm pool
        lines = compare(folder, images, labels, grid, "auto", repeats)
        where = f"default execution: the session's warm LiteRT-only pool, {workers} workers"
    return [f"screening vs exact sweep ({where}; {workers} cores, load average {load:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after):", *("  " + line for line in lines)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=7, help="values per axis of the mean/std grid")
    parser.add_argument("--repeats", type=int, default=1, help="exact/screening pairs to run (median reported)")
    parser.add_argument("--serial", action="store_true", help="run both in this process instead of a warm pool")
    parser.add_argument("--train-size", type=int, default=20000, help="training images of the model (cached)")
    args = parser.parse_args()
    print("\n".join(measure(args.grid, args.repeats, args.serial, args.train_size)))


if __name__ == "__main__":
    main()
