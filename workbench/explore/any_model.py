"""Notebook 09's measurements: every recipe on models that are not labelled image classifiers.

``run_standin`` converts one of the offline stand-ins (``core.standins``: a detector, a denoiser, an LSTM)
with every recipe and measures each result on its inputs without labels and with them (the same
``recipe_table.run_recipes`` either way). ``fidelity_vs_task`` puts each recipe's fidelity figure (how close it
stays to the float model) beside its task figure (how good it is against the labels), and
``disagreements`` says, in sentences made from those numbers, where the two tell different stories:

* **changed, not worse**: the quantized outputs moved away from the float model's (agreement under
  ``AGREEMENT_CHANGED``, mAP50 against the float detections under ``MAP_CHANGED``, or SNR under ``SNR_CHANGED``
  dB) while the task figure stays within ``TASK_SAME`` of the float model's;
* **worse than it looks**: the task figure drops by more than ``TASK_SAME`` while the fidelity figure says the
  outputs stayed close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

# Where the fidelity figure says "changed", and where the task figure says "the same" (points of accuracy or
# mAP50 x 100, dB of PSNR).
AGREEMENT_CHANGED = 0.99
MAP_CHANGED = 0.95
SNR_CHANGED = 30.0
TASK_SAME = 1.0

# The task figure against the labels, and the fidelity figure against the float model, for each task.
FIGURES = {"classifier": (("accuracy", "accuracy vs labels (%)", 100.0), ("agreement", "agreement with float (%)", 100.0)),
           "detector": (("truth_map50", "mAP50 vs labelled boxes (%)", 100.0),
                        ("map50", "mAP50 vs float detections (%)", 100.0)),
           "dense": (("truth_psnr", "PSNR vs clean targets (dB)", 1.0), ("snr_db", "SNR vs float output (dB)", 1.0)),
           "generic": (("accuracy", "accuracy vs labels (%)", 100.0), ("snr_db", "SNR vs float output (dB)", 1.0))}


@dataclass(frozen=True, eq=False)
class StandinRuns:
    """One stand-in's files and every recipe's run on its inputs without labels and with them."""

    name: str
    files: Any
    unlabelled: list = field(repr=False)
    labelled: list = field(repr=False)
    losses: list = field(default_factory=list, repr=False)  # verdicts.Verdict of each losing labelled row

    @property
    def task(self) -> str:
        return next(r.fidelity.task.kind for r in self.labelled if r.fidelity is not None)


def run_standin(name: str, recipes: Sequence[str] | None = None, calibration_size: int = 100,
                explain: bool = True, **training: Any) -> StandinRuns:
    """Train (cached) the stand-in ``name`` (``"detector"``, ``"denoiser"``, ``"sequence"``) with ``training``
    (its example function's arguments), then run ``recipes`` (default: all) on its inputs, unlabelled, then labelled
    (measuring the same conversions: the two files hold the same inputs). ``explain``: say why each losing
    labelled row loses (``verdicts.explain_loss``: the cause measured, a fix converted and measured)."""
    from ..core import checks, standins
    from ..core.recipe_table import run_recipes
    from ..core.samples import read_samples

    makers = {"detector": standins.detector_example, "denoiser": standins.denoiser_example,
              "sequence": standins.sequence_example}
    checks.choice("name", name, tuple(makers))
    files = makers[name](**training)
    runs: dict[str, list] = {}
    for kind, path in (("unlabelled", files.inputs), ("labelled", files.labelled)):
        data = read_samples("data", path)
        # the labelled run measures the unlabelled run's conversions (the same inputs, so the same calibration)
        runs[kind] = run_recipes(str(files.model), data, representative=data.feed(), recipes=recipes,
                                 calibration_size=calibration_size, converted=runs.get("unlabelled", ()))
    losses = []
    if explain:
        from ..core.recipe_table import data_spec
        from ..core.sources import load_source
        from ..core.verdicts import explain_loss

        model = load_source(files.model)
        losses = explain_loss(model, runs["labelled"], data, data_spec(model, data)[0])
    return StandinRuns(name, files, runs["unlabelled"], runs["labelled"], losses)


def fidelity_vs_task(standin: StandinRuns):
    """One row per recipe that ran: its fidelity figure and its task figure (``FIGURES``), each also as the change
    from the float model's, and what ``disagreements`` calls the row (``""``: the two agree)."""
    import pandas as pd

    from ..core.recipes import is_reference

    (task_key, task_label, task_scale), (fid_key, fid_label, fid_scale) = FIGURES[standin.task]
    measured = [(run, {**run.fidelity.columns(), "accuracy": run.result.accuracy if run.result is not None else None})
                for run in standin.labelled if run.fidelity is not None]
    if all(values[fid_key] is None for _, values in measured):  # e.g. no float detection scores 0.5: no mAP
        fid_key, fid_label, fid_scale = "snr_db", f"SNR vs float output (dB; no {fid_key})", 1.0
    rows = []
    for run, values in measured:
        rows.append({"model": standin.name, "task": standin.task, "recipe": run.label, "reference": is_reference(run.name),
                     "fidelity": fid_label, "fidelity_value": _scaled(values[fid_key], fid_scale),
                     "task_figure": task_label, "task_value": _scaled(values[task_key], task_scale)})
    frame = pd.DataFrame(rows)
    base = frame.loc[frame["reference"], "task_value"]
    base = float(base.iloc[0]) if len(base) else np.nan
    frame["task_change"] = frame["task_value"] - base
    frame["story"] = [_story(standin.task, row, fid_key) for _, row in frame.iterrows()]
    return frame


def disagreements(frame) -> list[str]:
    """The rows whose two figures tell different stories, as sentences with their numbers."""
    said = []
    for _, row in frame[frame["story"] != ""].iterrows():
        said.append(f"{row['model']}, {row['recipe']}: {row['fidelity']} {row['fidelity_value']:.1f}, but "
                    f"{row['task_figure']} {row['task_value']:.1f} ({row['task_change']:+.1f} against float): "
                    f"{row['story']}")
    return said


def plot_fidelity_vs_task(frames: Sequence[Any]):
    """One panel per stand-in: each recipe's fidelity figure (x) against its task figure (y)."""
    from ..core.figures import panels

    axes = panels(None, len(frames), (5 * len(frames), 4.2))
    for ax, frame in zip(axes, frames):
        done = frame[np.isfinite(frame["fidelity_value"].astype(float)) & np.isfinite(frame["task_value"].astype(float))]
        colors = ["#c44e52" if s else "#4c72b0" for s in done["story"]]
        ax.scatter(done["fidelity_value"], done["task_value"], c=colors)
        for _, row in done.iterrows():
            ax.annotate(row["recipe"].split(" [")[0], (row["fidelity_value"], row["task_value"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(frame["fidelity"].iloc[0])
        ax.set_ylabel(frame["task_figure"].iloc[0])
        ax.set_title(f"{frame['model'].iloc[0]} ({frame['task'].iloc[0]}; red: the figures disagree)", fontsize=9)
    return axes[0].figure


def _scaled(value: Any, scale: float) -> float:
    return np.nan if value is None else float(value) * scale


def _story(task: str, row: Any, fid_key: str) -> str:
    if row["reference"] or not np.isfinite(row["task_change"]) or not np.isfinite(row["fidelity_value"]):
        return ""
    value = row["fidelity_value"]
    changed = {"agreement": value < 100 * AGREEMENT_CHANGED, "map50": value < 100 * MAP_CHANGED,
               "snr_db": value < SNR_CHANGED}[fid_key]
    if changed and abs(row["task_change"]) <= TASK_SAME:
        return "changed, not worse: the outputs moved away from the float model's, the task figure did not"
    if not changed and row["task_change"] < -TASK_SAME:
        return "worse than it looks: close to the float model's outputs, yet the task figure dropped"
    return ""
