"""The end-to-end job: train, QAT, convert every recipe, evaluate, report.

``python -m workbench demo`` runs it on the full offline MNIST; the same
function drives the quickstart notebook with smaller settings.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core import artifacts, checks
from ..core import recipes as registry
from ..core.convert import ConvertedModel, QuantizationWarning, convert
from ..core.data import InputSpec, Mnist, load_mnist
from ..core.evaluate import EvalResult, evaluate
from ..core.recipes import Recipe


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo; the defaults are the full job."""

    epochs: int = 1
    qat_epochs: int = 1
    train_size: int | None = None
    test_size: int | None = None
    calibration_size: int = 500
    seed: int = 0
    spec: InputSpec = InputSpec()
    recipes: tuple[str, ...] | None = None  # only these recipes (default: every registered one)

    def __post_init__(self) -> None:
        if self.recipes is not None:
            if isinstance(self.recipes, str) or not self.recipes:
                raise ValueError(f"recipes={self.recipes!r}; allowed: None or a non-empty tuple of recipe names")
            object.__setattr__(self, "recipes", tuple(self.recipes))
            for name in self.recipes:
                checks.choice("recipes", name, registry.names())
        checks.number("epochs", self.epochs, low=1, integer=True)
        checks.number("qat_epochs", self.qat_epochs, low=1, integer=True)
        if self.train_size is not None:
            checks.number("train_size", self.train_size, low=1, integer=True)
        if self.test_size is not None:
            checks.number("test_size", self.test_size, low=1, integer=True)
        checks.number("calibration_size", self.calibration_size, low=1, integer=True)


@dataclass(frozen=True)
class DemoRun:
    """What one recipe produced: the model it came from, the conversion, the evaluation."""

    source: str
    converted: ConvertedModel
    result: EvalResult


def lineup(calibration_size: int = 500, recipes: tuple[str, ...] | None = None) -> list[tuple[str, Recipe]]:
    """Which trained model goes through which recipe, in report order (from the registry's ``demo`` rows).

    Args:
        calibration_size: representative images for calibrated recipes.
        recipes: only these recipe names (default: every registered recipe).
    """
    if recipes is not None:
        for name in recipes:
            checks.choice("recipes", name, registry.names())
    rows = registry.lineup(calibration_size)
    return [row for row in rows if recipes is None or row[1].name in recipes]


def run_demo(config: DemoConfig = DemoConfig(), data: Mnist | None = None,
             cache: str | os.PathLike | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> list[DemoRun]:
    """Train float and both QAT schemes, convert every recipe, evaluate on the test set.

    Returns:
        One ``DemoRun`` per recipe, float32 first (the baseline).
    """
    from tqdm.auto import tqdm

    from ..core.train import QatConfig, TrainConfig, trained_lenet

    data = data if data is not None else load_mnist(cache=cache)
    if config.test_size is not None:
        data = data.subset(test=config.test_size, seed=config.seed)
    train_cfg = TrainConfig(epochs=config.epochs, train_size=config.train_size, seed=config.seed, spec=config.spec)
    steps = lineup(config.calibration_size, config.recipes)
    if steps[0][1].name != "float32":  # the float baseline always comes first
        steps = [s for s in lineup(config.calibration_size, ("float32",))] + steps
    t0 = time.perf_counter()
    models = {"float": trained_lenet(data, train_cfg, None, cache, progress)}
    for scheme in ("int8", "uint8-legacy"):
        if any(source == f"qat-{scheme}" for source, _ in steps):
            qat = QatConfig(scheme=scheme, epochs=config.qat_epochs)
            models[f"qat-{scheme}"] = trained_lenet(data, train_cfg, qat, cache, progress)
    log(f"trained float + {len(models) - 1} QAT model(s) in {time.perf_counter() - t0:.1f} s")

    runs: list[DemoRun] = []
    reference = None
    bar = tqdm(steps, desc="convert + evaluate", unit="recipe", disable=not progress, leave=False)
    for source, recipe in bar:
        bar.set_postfix_str(recipe.label())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)  # kept on the record, reported below
            converted = convert(models[source], recipe, spec=config.spec, representative=data.train_images)
        result = evaluate(converted, data.test_images, data.test_labels, config.spec, reference=reference)
        if reference is None:
            reference = result
        runs.append(DemoRun(source, converted, result))
        for note in converted.warnings:
            log(f"  note [{recipe.label()}]: {note}")
    bar.close()
    return runs


def results_frame(runs: list[DemoRun]):
    """One row per recipe: accuracy, delta vs float, size, speed, agreement, dtypes."""
    import pandas as pd

    base = runs[0].result.accuracy
    rows = []
    for run in runs:
        c, r = run.converted, run.result
        rows.append({
            "recipe": c.recipe.label(), "model": run.source,
            "accuracy_pct": round(100 * r.accuracy, 2),
            "delta_vs_float_pts": round(100 * (r.accuracy - base), 2),
            "size_kb": round(c.size_kb, 1),
            "images_per_s": round(r.images_per_second),
            "agreement_pct": None if r.agreement is None else round(100 * r.agreement, 2),
            "input": c.input.dtype, "activations": "/".join(sorted(c.activation_dtypes)),
            "convert_s": round(c.seconds, 2), "warnings": " | ".join(c.warnings),
        })
    return pd.DataFrame(rows)


def format_table(frame) -> str:
    """The console table: recipe, accuracy, delta vs float, size KB, images/s."""
    cols = ["recipe", "model", "accuracy_pct", "delta_vs_float_pts", "size_kb", "images_per_s", "input"]
    shown = frame[cols].rename(columns={"accuracy_pct": "accuracy %", "delta_vs_float_pts": "Δ vs float",
                                        "size_kb": "size KB", "images_per_s": "images/s"})
    return shown.to_string(index=False)


def write_report(runs: list[DemoRun], out: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.csv``, ``accuracy_size.png`` and every ``.tflite`` into ``out`` (atomically)."""
    from .demo_figure import accuracy_size_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(runs)
    csv = artifacts.write_text_atomic(out / "results.csv", frame.to_csv(index=False))
    fig = accuracy_size_figure(frame)
    png = out / "accuracy_size.png"
    with artifacts.atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    for run in runs:
        name = run.converted.recipe.label().replace(" ", "").replace("[", "_").replace("]", "")
        for ch in ";,=()":
            name = name.replace(ch, "_")
        run.converted.save(out / "models" / f"{run.source}__{name}.tflite")
    return {"csv": csv, "png": png, "models": out / "models"}
