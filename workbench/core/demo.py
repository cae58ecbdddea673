"""The end-to-end job: train, QAT, convert every recipe, evaluate, compare honestly, report.

``python -m workbench demo`` runs it on the full offline MNIST; the same
function drives the quickstart notebooks with smaller settings.

Every row is compared with a float reference that spent the same training
budget: a row converted from the float model with that model's ``float32``
row (the conversion is the only difference), a QAT row with
``float-same-budget`` (the same float model trained ``qat_epochs`` more
epochs in float, as QAT trains them with fake-quant). Each comparison is paired
on the same test images (``core.compare``: exact McNemar test, 95 % interval),
and with ``seeds=N`` everything is trained N times and shown as mean ± std.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from . import checks
from . import recipes as registry
from .compare import PairedComparison, comparison_columns, format_p, paired, spread
from .convert import ConvertedModel, QuantizationWarning, convert
from .data import InputSpec, Mnist, load_mnist
from .evaluate import EvalResult, evaluate
from .recipes import Recipe

MAX_SEEDS = 20
SAME_BUDGET = "float-same-budget"  # the float model trained as many epochs as the QAT models
QAT_SOURCES = ("qat-int8", "qat-uint8-legacy")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo; the defaults are the full job.

    ``seeds=N`` trains every model N times (seeds ``seed`` .. ``seed + N - 1``); the
    table then shows each row's mean ± standard deviation and min–max.
    """

    epochs: int = 1
    qat_epochs: int = 1
    train_size: int | None = None
    test_size: int | None = None
    calibration_size: int = 500
    seed: int = 0
    spec: InputSpec = InputSpec()
    recipes: tuple[str, ...] | None = None  # only these recipes (default: every registered one)
    seeds: int = 1

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
        checks.number("seed", self.seed, low=0, integer=True)
        checks.number("seeds", self.seeds, low=1, high=MAX_SEEDS, integer=True)

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds trained: ``seed``, ``seed + 1``, ... (``seeds`` of them)."""
        return tuple(range(self.seed, self.seed + self.seeds))

    def budget(self, source: str) -> int:
        """Training epochs spent on the model ``source``: the float model's, or float + QAT epochs."""
        return self.epochs if source == "float" else self.epochs + self.qat_epochs


@dataclass(frozen=True)
class DemoRun:
    """What one recipe produced for one seed: the model it came from, the conversion, the evaluation,
    and the paired comparison with its equal-budget float reference (``None`` for a reference row)."""

    source: str
    converted: ConvertedModel
    result: EvalResult
    seed: int = 0
    epochs: int = 1
    reference: str = ""  # the model whose float32 row this one is compared with
    comparison: PairedComparison | None = None

    @property
    def label(self) -> str:
        return self.converted.recipe.label()

    @property
    def is_reference(self) -> bool:
        return self.comparison is None


def reference_source(source: str) -> str:
    """The model whose ``float32`` row a row from ``source`` is compared with (same training budget)."""
    return "float" if source == "float" else SAME_BUDGET


def lineup(calibration_size: int = 500, recipes: tuple[str, ...] | None = None) -> list[tuple[str, Recipe]]:
    """Which trained model goes through which recipe, in report order (from the registry's ``demo`` rows).

    The float model's ``float32`` row comes first; when a QAT model is in the lineup, the
    ``float-same-budget`` model's ``float32`` row (its equal-budget reference) comes just before it.

    Args:
        calibration_size: representative images for calibrated recipes.
        recipes: only these recipe names (default: every registered recipe).
    """
    if recipes is not None:
        for name in recipes:
            checks.choice("recipes", name, registry.names())
    everything = registry.lineup(calibration_size)
    (float32,) = [recipe for source, recipe in everything if source == "float" and recipe.spec.is_reference]
    rows = [row for row in everything if recipes is None or row[1].name in recipes]
    if not rows or rows[0] != ("float", float32):  # the float baseline always comes first
        rows = [("float", float32)] + [row for row in rows if row != ("float", float32)]
    first_qat = next((i for i, (source, _) in enumerate(rows) if source in QAT_SOURCES), None)
    if first_qat is not None:
        rows.insert(first_qat, (SAME_BUDGET, float32))
    return rows


def run_demo(config: DemoConfig = DemoConfig(), data: Mnist | None = None,
             cache: str | os.PathLike | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> list[DemoRun]:
    """Train float, its equal-budget twin and both QAT schemes; convert every recipe; evaluate; compare.

    Returns:
        One ``DemoRun`` per recipe and seed, seed by seed in ``lineup`` order (the float ``float32``
        row first). Every non-reference run carries its paired comparison with its reference.
    """
    from tqdm.auto import tqdm

    from .train import QatConfig, TrainConfig, fine_tuned_lenet, trained_lenet

    data = data if data is not None else load_mnist(cache=cache)
    if config.test_size is not None:
        data = data.subset(test=config.test_size, seed=config.seed)
    steps = lineup(config.calibration_size, config.recipes)
    sources = {source for source, _ in steps}
    runs: list[DemoRun] = []
    for seed in config.seed_list:
        train_cfg = TrainConfig(epochs=config.epochs, train_size=config.train_size, seed=seed, spec=config.spec)
        t0 = time.perf_counter()
        models = {"float": trained_lenet(data, train_cfg, None, cache, progress)}
        if SAME_BUDGET in sources:
            models[SAME_BUDGET] = fine_tuned_lenet(data, train_cfg, config.qat_epochs, cache, progress)
        for scheme in ("int8", "uint8-legacy"):
            if f"qat-{scheme}" in sources:
                qat = QatConfig(scheme=scheme, epochs=config.qat_epochs)
                models[f"qat-{scheme}"] = trained_lenet(data, train_cfg, qat, cache, progress)
        log(f"seed {seed}: trained {len(models)} models in {time.perf_counter() - t0:.1f} s")

        # LiteRT releases the GIL while it runs: each evaluation runs on one interpreter thread in one worker
        # while the next conversion runs here (the int16x8 reference kernels alone take seconds), so
        # images_per_s is a one-core figure. One worker, first in first out: a reference row is evaluated
        # before the rows compared with it.
        pending: list[tuple[str, ConvertedModel, Future]] = []
        references: dict[str, Future] = {}
        bar = tqdm(steps, desc=f"convert + evaluate (seed {seed})", unit="recipe", disable=not progress,
                   leave=False)
        with ThreadPoolExecutor(max_workers=1) as pool:
            for source, recipe in bar:
                bar.set_postfix_str(recipe.label())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", QuantizationWarning)  # kept on the record, reported below
                    converted = convert(models[source], recipe, spec=config.spec, representative=data.train_images)
                ref_future = None if _is_reference(source, recipe) else references[reference_source(source)]
                future = pool.submit(_evaluate, converted, data, config.spec, ref_future)
                if ref_future is None:
                    references[source] = future
                pending.append((source, converted, future))
                if seed == config.seed:
                    for note in converted.warnings:
                        log(f"  note [{recipe.label()}]: {note}")
        for source, converted, future in pending:
            result = future.result()
            if _is_reference(source, converted.recipe):
                comparison = None
            else:
                comparison = paired(references[reference_source(source)].result(), result, data.test_labels)
            runs.append(DemoRun(source, converted, result, seed, config.budget(source), reference_source(source),
                                comparison))
        bar.close()
    return runs


def _is_reference(source: str, recipe: Recipe) -> bool:
    return source == reference_source(source) and recipe.spec.is_reference


def _evaluate(converted: ConvertedModel, data: Mnist, spec: InputSpec, reference: Future | None) -> EvalResult:
    return evaluate(converted, data.test_images, data.test_labels, spec,
                    reference=None if reference is None else reference.result(), num_threads=1)


def _groups(runs: list[DemoRun]) -> list[list[DemoRun]]:
    """The runs of one row (same model and recipe) across seeds, in first-seen order."""
    groups: dict[tuple[str, str], list[DemoRun]] = {}
    for run in runs:
        groups.setdefault((run.source, run.label), []).append(run)
    return list(groups.values())


def results_frame(runs: list[DemoRun]):
    """One row per recipe and model, over every seed.

    Columns: ``recipe``, ``model``, ``epochs`` (the model's training budget), ``reference`` (the
    equal-budget model whose ``float32`` row it is compared with; empty for the reference rows),
    ``accuracy_pct`` (mean over seeds), ``accuracy_std_pts``, ``accuracy_min_pct``, ``accuracy_max_pct``,
    ``delta_pts`` (mean difference from the reference, points), ``ci_low_pts``/``ci_high_pts`` (95 %
    interval), ``p_value`` (exact McNemar; over seeds the largest), ``significant``, ``significant_seeds``,
    ``verdict``, ``size_kb``, ``images_per_s``, ``agreement_pct`` (with the reference), ``input``,
    ``activations``, ``convert_s``, ``warnings``, ``seeds``, then ``accuracy_pct_seed<S>`` for every seed.
    """
    import pandas as pd

    rows = []
    for group in _groups(runs):
        first = group[0]
        c = first.converted
        acc = spread(run.result.accuracy for run in group)
        row = {"recipe": first.label, "model": first.source, "epochs": first.epochs,
               "reference": "" if first.is_reference else first.reference,
               "accuracy_pct": round(100 * acc.mean, 2),
               "accuracy_std_pts": round(100 * acc.std, 2) if acc.n > 1 else float("nan"),
               "accuracy_min_pct": round(100 * acc.min, 2), "accuracy_max_pct": round(100 * acc.max, 2)}
        row.update(comparison_columns(None if first.is_reference else [run.comparison for run in group], seeds=True))
        agreement = [run.result.agreement for run in group if run.result.agreement is not None]
        row.update({
            "size_kb": round(c.size_kb, 1),
            "images_per_s": round(sorted(run.result.images_per_second for run in group)[len(group) // 2]),
            "agreement_pct": round(100 * sum(agreement) / len(agreement), 2) if agreement else None,
            "input": c.input.dtype, "activations": "/".join(sorted(c.activation_dtypes)),
            "convert_s": round(sum(run.converted.seconds for run in group) / len(group), 2),
            "warnings": " | ".join(c.warnings), "seeds": len(group),
        })
        for run in group:
            row[f"accuracy_pct_seed{run.seed}"] = round(100 * run.result.accuracy, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def seeds_frame(runs: list[DemoRun]):
    """Every seed's row (long format): ``seed``, ``recipe``, ``model``, ``epochs``, ``reference``,
    ``accuracy_pct``, the paired comparison with that seed's reference (``delta_pts``, ``ci_low_pts``,
    ``ci_high_pts``, ``p_value``, ``significant``, ``discordant``, ``verdict``), ``size_kb``, ``images_per_s``."""
    import pandas as pd

    rows = []
    for run in runs:
        row = {"seed": run.seed, "recipe": run.label, "model": run.source, "epochs": run.epochs,
               "reference": "" if run.is_reference else run.reference,
               "accuracy_pct": round(100 * run.result.accuracy, 2)}
        row.update(comparison_columns(None if run.is_reference else run.comparison))
        row.update(size_kb=round(run.converted.size_kb, 1), images_per_s=round(run.result.images_per_second))
        rows.append(row)
    return pd.DataFrame(rows)


def findings(frame) -> list[str]:
    """What the table shows, one sentence per compared row, made only from its numbers.

    E.g. ``"legacy-uint8 [ranges=(0,6)] (float): -2.79 points against float (1 epochs each), 95 % CI
    [-3.17, -2.41], p < 0.001: significantly worse"``; over seeds the difference is mean ± std.
    """
    lines = []
    for _, row in frame.iterrows():
        if row["verdict"] == "reference":
            continue
        delta = f"{row['delta_pts']:+.2f}"
        if row["seeds"] > 1:
            delta += f" ± {row['delta_std_pts']:.2f} (over {row['seeds']} seeds)"
        p = format_p(row["p_value"]) + ("" if row["seeds"] == 1 else f", significant in {row['significant_seeds']}"
                                                                       " seeds")
        epochs = f"{row['epochs']} epoch{'s' if row['epochs'] != 1 else ''}"
        lines.append(f"{row['recipe']} ({row['model']}): {delta} points against {row['reference']} ({epochs} each), "
                     f"95 % CI [{row['ci_low_pts']:+.2f}, {row['ci_high_pts']:+.2f}], {p}: {row['verdict']}")
    return lines
