"""``python -m workbench demo``: the demo's table, legend and files (``core.demo`` computes them)."""

from __future__ import annotations

import os
from pathlib import Path

from ..core import artifacts
from ..core.compare import format_p
from ..core.demo import DemoRun, results_frame, seeds_frame


def format_table(frame) -> str:
    """The console table: recipe, model, epochs, accuracy (± std over seeds), the reference it is compared
    with, the difference, its 95 % interval, the p-value and verdict, size, speed, input dtype."""
    import pandas as pd

    def accuracy(row) -> str:
        if row["seeds"] == 1:
            return f"{row['accuracy_pct']:.2f}"
        return (f"{row['accuracy_pct']:.2f} ± {row['accuracy_std_pts']:.2f} "
                f"({row['accuracy_min_pct']:.2f}–{row['accuracy_max_pct']:.2f})")

    def delta(row) -> str:
        if row["verdict"] == "reference":
            return ""
        if row["seeds"] == 1:
            return f"{row['delta_pts']:+.2f}"
        return f"{row['delta_pts']:+.2f} ± {row['delta_std_pts']:.2f}"

    def interval(row) -> str:
        return "" if row["verdict"] == "reference" else f"[{row['ci_low_pts']:+.2f}, {row['ci_high_pts']:+.2f}]"

    def p(row) -> str:
        if row["verdict"] == "reference":
            return ""
        text = format_p(row["p_value"]).removeprefix("p ").removeprefix("= ")
        return text if row["seeds"] == 1 else f"{text} ({row['significant_seeds']})"

    def verdict(row) -> str:
        if row["verdict"] == "reference":
            return "(reference)"
        if row["verdict"].startswith("significantly"):
            return row["verdict"].replace("significantly ", "")
        return "n.s. (borderline)" if "borderline" in row["verdict"] else "n.s."

    shown = pd.DataFrame({
        "recipe": frame["recipe"], "model": frame["model"], "epochs": frame["epochs"],
        "accuracy %" if frame["seeds"].max() == 1 else "accuracy % (mean ± std (min–max))":
            frame.apply(accuracy, axis=1),
        "vs": frame["reference"], "Δ pts": frame.apply(delta, axis=1),
        "95 % CI": frame.apply(interval, axis=1),
        "p" if frame["seeds"].max() == 1 else "p (max over seeds)": frame.apply(p, axis=1),
        "": frame.apply(verdict, axis=1),
        "size KB": frame["size_kb"], "images/s": frame["images_per_s"], "input": frame["input"]})
    return shown.to_string(index=False)


def legend(frame) -> str:
    """What the table's columns mean, and what it shows, in words made from its numbers."""
    seeds = int(frame["seeds"].max())
    lines = [
        "epochs: training epochs spent on the model. vs: the float model each row is compared with, trained "
        "with the same budget (float-same-budget = the float model trained as many extra float epochs as QAT "
        "fine-tunes). Δ pts: accuracy minus that reference's, on the same test images; 95 % CI and p: paired "
        "exact McNemar test; n.s. = no significant difference (p >= 0.05).",
    ]
    if seeds > 1:
        lines.append(f"{seeds} seeds per row: mean ± std (min–max); a difference is called significant only "
                     "when it is in every seed, in one direction; p is the largest over the seeds.")
    noise = frame[frame["verdict"].str.startswith(("no significant", "n.s."))]
    if len(noise):
        lines.append("within noise of their reference: " + ", ".join(
            f"{r} ({m})" for r, m in zip(noise["recipe"], noise["model"])))
    return "\n".join(lines)


def write_report(runs: list[DemoRun], out: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.csv`` (a row per recipe, every seed's accuracy as a column), ``results_by_seed.csv``,
    ``accuracy_size.png`` and every ``.tflite`` (first seed) into ``out``, atomically."""
    from .demo_figure import accuracy_size_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(runs)
    csv = artifacts.write_text_atomic(out / "results.csv", frame.to_csv(index=False))
    by_seed = artifacts.write_text_atomic(out / "results_by_seed.csv", seeds_frame(runs).to_csv(index=False))
    fig = accuracy_size_figure(frame)
    png = out / "accuracy_size.png"
    with artifacts.atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    first_seed = runs[0].seed
    for run in runs:
        if run.seed != first_seed:
            continue
        name = run.label.replace(" ", "").replace("[", "_").replace("]", "")
        for ch in ";,=()":
            name = name.replace(ch, "_")
        run.converted.save(out / "models" / f"{run.source}__{name}.tflite")
    return {"csv": csv, "by_seed": by_seed, "png": png, "models": out / "models"}
