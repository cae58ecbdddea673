"""``python -m workbench report SOURCE --data FILE.npz``: every registered recipe on a user's model, one table.

This module owns the one-command quick comparison: the arguments, the parameters
each recipe gets, the paired tests and the files. ``core.recipe_table.run_recipes``
converts the model with every recipe of the registry (the parameters come from each
spec: its demo row for a float or a QAT model, calibration from ``--calibration`` or the
data's first images, the uint8 input stats from ``--input-range``),
evaluates every result on all images of ``--data``, and prints and writes the
table (accuracy, size, images/s, the outcome in words) as ``report.csv``, ``report.json`` and
``report.png`` with each ``.tflite`` in ``models/``. Every recipe's difference from
the reference recipe (``float32``) is tested on the same images (``core.compare``: exact McNemar ``p_value``,
95 % interval, ``verdict``); one within noise is marked ``n.s.`` (hatched in the PNG). A recipe that needs a QAT
model is skipped on a float model, with a note (for a Keras 3 model: why QAT is not offered); a model
that starts with ``Rescaling``/``Normalization`` reads 0..255 unless ``--input-range`` says otherwise (a note
says so); a recipe the converter or LiteRT refuses is a row that says why. A model whose input has ``None``
sizes is converted at ``--input_shapes``, else at the data's ``H, W, C`` (``core.fixed_input``), and the report
says so. ``--scheduler ADDRESS`` evaluates on a ``dask.distributed`` cluster (conversions stay here;
``core.parallel``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core import recipes as registry
from ..core.data import InputSpec
from ..core.model_facts import RAW_PIXELS, input_range_note, input_spec_for, qat_refusal
from ..core.model_io import model_io
from ..core.recipe_table import RecipeRun, paired_base, recipe_parameters, reference_run, run_recipes
from ..core.measure import COLUMNS
from ..core.samples import Samples, input_spec_of
from ..core.sources import is_qat, keras_origin
from . import evaluation, inputs

# A float model's default ranges: the registry's own, from the float row of the recipe that takes them.
DEFAULT_RANGES = next(dict(params)["default_ranges"] for spec in registry.specs() for kind, params in spec.demo
                      if kind == "float" and "default_ranges" in dict(params))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="SOURCE", help="a .keras/.h5 file, a SavedModel folder or a frozen .pb")
    parser.add_argument("--data", required=True, metavar="FILE.npz",
                        help="inputs (uint8 images or float arrays) to evaluate on, all of them; labels optional")
    parser.add_argument("--calibration", default=None, metavar="FILE.npz",
                        help="calibration images (array images or x_train; default: the first images of --data)")
    parser.add_argument("--calibration-size", "--calibration_size", dest="calibration_size", type=int, default=500,
                        metavar="N", help="calibration images per calibrated recipe (default 500)")
    parser.add_argument("--default-ranges", "--default_ranges", dest="default_ranges", nargs=2, type=float,
                        default=None, metavar=("MIN", "MAX"),
                        help=f"legacy-uint8 on a float model: the range for activations without one "
                             f"(default {DEFAULT_RANGES[0]:g} {DEFAULT_RANGES[1]:g})")
    parser.add_argument("--recipes", nargs="+", metavar="RECIPE", choices=registry.names(), default=None,
                        help="only these recipes (default: all): " + ", ".join(registry.names()))
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for report.csv, report.png and models/ (default out/report-SOURCE)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="evaluate on this dask.distributed scheduler (e.g. tcp://10.0.0.5:8786): conversions "
                             "run here, the .tflite bytes and the images (sent once) go to the cluster")
    parser.add_argument("--precision", type=float, default=None, metavar="P",
                        help="stop measuring a recipe once the interval of its difference from float32 is within "
                             "±P points or excludes 0, on growing random subsets of --data (default: every input)")
    parser.add_argument("--no-fix", "--no_fix", dest="no_fix", action="store_true",
                        help="say why each losing row loses but do not convert and measure the fixes")
    evaluation.add_data_arguments(parser)


@dataclass(frozen=True)
class Choice:
    """What the report runs for one recipe: the parameters, or why it is skipped, and what it used in words."""

    name: str
    params: dict[str, Any] | None  # None: skipped
    note: str


def choose(spec: registry.RecipeSpec, qat: bool, stats: Any, calibration_size: int,
           default_ranges: tuple[float, float], calibration_from: str, qat_note: str | None = None) -> Choice:
    """The parameters of ``spec`` for a float or QAT model: its demo row for that kind of model, else its defaults.
    ``qat_note``: why QAT is not offered for this model (``model_facts.qat_refusal``), added to a skipped QAT row."""
    if spec.needs_qat and not qat:
        return Choice(spec.name, None, "skipped: needs a model trained with quantization-aware training (the "
                                        "source has no fake-quant layers)" + (f"; {qat_note}" if qat_note else ""))
    params = recipe_parameters(spec.name, "qat" if qat else "float")
    notes = []
    if spec.calibrated:
        params["calibration_size"] = calibration_size
        notes.append(f"calibrated on {calibration_from}")
    if spec.takes("mean"):
        params.update(mean=float(stats.mean) + 0.0, std=float(stats.std))  # + 0.0: no "-0" for a range from 0
        notes.append(f"mean/std ({params['mean']:g}, {params['std']:g}) from the input range")
    if spec.takes("default_ranges") and not qat:
        params["default_ranges"] = tuple(default_ranges)
        notes.append(f"float model: default_ranges ({default_ranges[0]:g}, {default_ranges[1]:g}) for every "
                     "activation without a learned range")
    if params.get("io_type", "float32") != "float32":
        notes.append(f"{params['io_type']} input and output")
    return Choice(spec.name, params, "; ".join(notes))


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Check everything, then convert and evaluate every recipe; print the table and write CSV, PNG, models."""
    start = time.perf_counter()
    spec = inputs.input_spec("--input-range", args.input_range) if args.input_range is not None else InputSpec()
    from ..core import checks

    checks.number("--calibration-size", args.calibration_size, low=1, integer=True)
    precision = getattr(args, "precision", None)
    if precision is not None:
        checks.number("--precision", precision, low=0, low_open=True)
        if getattr(args, "scheduler", None):
            raise ValueError(f"--precision {precision:g} with --scheduler: the cluster evaluates every input; "
                             "allowed: one of the two")
    ranges = DEFAULT_RANGES
    if args.default_ranges is not None:
        try:
            ranges = checks.range_pair("ranges", args.default_ranges)
        except ValueError as err:
            raise ValueError(f"--default-ranges {' '.join(f'{v:g}' for v in args.default_ranges)}: {err}") from None
    if Path(args.model).suffix.lower() == ".tflite":
        raise ValueError(f"SOURCE={args.model!r} is a .tflite, already converted; allowed: a .keras/.h5 file, a "
                         "SavedModel folder or a frozen .pb (to measure a .tflite: python -m workbench evaluate)")
    data = inputs.samples("--data", args.data, args.images, args.labels)
    if args.calibration is not None:
        calibration, key = inputs.calibration_images("--calibration", args.calibration, args.images)
        calibration_from = f"{len(calibration[:args.calibration_size])} images of {Path(args.calibration).name}"
    else:
        calibration = data.feed()
        calibration_from = (f"the first {min(args.calibration_size, len(data))} inputs of "
                            f"{Path(args.data).name} (also evaluated: pass --calibration for a separate set)")
    out_dir = Path(args.out) if args.out else Path("out") / f"report-{Path(args.model).stem or 'model'}"
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out={str(out_dir)!r} is a file; allowed: a folder (created if missing)")

    model = evaluation.load(args, "SOURCE")
    origin = keras_origin(model)  # read before fit_input: a fixed copy is another model object
    model, fixed = evaluation.fit_input(args, model, data.images)
    io = model_io(model)
    data = inputs.check_data_fit(f"--data={args.data!r}", data, io)
    inputs.check_labels_fit("--data", data, io)
    if args.calibration is not None:
        inputs.check_images_fit(f"--calibration={args.calibration!r}", calibration, io.input_shape)
    elif len(data.inputs) > 1:
        calibration = data.feed()  # in the model's input order
    qat = is_qat(model)
    spec, range_note = model_input_spec(model, spec if args.input_range is not None else None)
    spec, stats_note = input_spec_of(data, spec if args.input_range is not None else None, spec)
    names = args.recipes or registry.names()
    choices = [choose(registry.get(n), qat, spec.stats, args.calibration_size, ranges, calibration_from,
                      qat_refusal(model)) for n in names]
    out(f"report: {args.model} ({'QAT' if qat else 'float'} model) on {data.describe()}; "
        f"input range [{spec.lo:g}, {spec.hi:g}]; {len(choices)} recipes")
    for note in (origin, range_note, fixed, stats_note):
        if note:
            out(f"note: {note}")
    client, owned = None, False
    if getattr(args, "scheduler", None):
        from ..core.parallel import connect

        try:
            client, owned = connect(args.scheduler)
        except ValueError as err:
            raise ValueError(f"--scheduler {args.scheduler}: {err}") from None
        out(f"evaluating on the Dask cluster at {args.scheduler}; dashboard: {client.dashboard_link}")
    try:
        rows = compare(model, choices, data, calibration, spec, progress=out, client=client, qat=qat, task=args.task,
                       precision=precision)
    finally:
        if owned:
            client.close()
    measured = next((row["fidelity"] for row in rows if row.get("fidelity") is not None), None)
    from ..core.verdicts import explain_loss

    losses = explain_loss(model, [row["run"] for row in rows if row["run"] is not None], data, spec,
                          try_fixes=not args.no_fix, calibrated_on_samples=args.calibration is None)
    summary = {"model": str(args.model), "data": str(args.data), "count": len(data),
               "task": None if measured is None else measured.task.kind,
               "task_reason": None if measured is None else measured.task.reason,
               "notes": [] if measured is None else list(measured.notes),
               "losses": [verdict.summary() for verdict in losses]}
    paths = write(rows, out_dir, title=f"{Path(args.model).name} on {Path(args.data).name}", summary=summary)
    frame = table(rows)
    out("")
    out(format_table(frame))
    out("")
    for row in rows:
        out(f"{row['recipe']}: {row['outcome']}" + (f" ({row['note']})" if row["note"] else ""))
    if measured is not None:
        out(f"task: {measured.task.kind} ({measured.task.reason}); every row is measured against the float32 "
            "model's outputs on the same inputs (definitions: README, Fidelity metrics)")
        for note in measured.notes:
            out(f"note: {note}")
    if losses:
        out("")
        out("why rows lose (measured on this model and these inputs"
            + ("; --no-fix: the fixes named, not tried):" if args.no_fix else "; each fix converted and measured):"))
        for verdict in losses:
            out(f"  {verdict.recipe}: {verdict.text()}")
    out("")
    png = f", {paths['png']}" if paths["png"] else " (no PNG: no recipe converted)"
    out(f"wrote {paths['csv']}, report.json{png} and {paths['count']} models in {paths['models']}")
    out(f"report finished in {time.perf_counter() - start:.1f} s")
    return 0


def model_input_spec(model: Any, given: InputSpec | None) -> tuple[InputSpec, str | None]:
    """The input range the report uses and a note: ``--input-range`` when given, else 0..255 for a model that
    starts with ``Rescaling``/``Normalization`` (``model_facts.input_spec_for``); a given range other than
    0..255 for such a model is used as given, and the note says what the model reads."""
    spec, note = input_spec_for(model, given)
    said = input_range_note(model) if given is not None else None
    if said and (given.lo, given.hi) != (RAW_PIXELS.lo, RAW_PIXELS.hi):
        note = f"{said}; --input-range {given.lo:g} {given.hi:g} given, used as given"
    return spec, note


def compare(model: Any, choices: list[Choice], data: Samples, calibration: Any, spec: InputSpec,
            progress: Callable[[str], None] | None = None, client: Any = None,
            qat: bool | None = None, task: str | None = None,
            precision: float | None = None) -> list[dict[str, Any]]:
    """Convert and evaluate every chosen recipe (``core.recipe_table.run_recipes``); one row each, skipped and
    refused recipes included, each converted one tested against the reference recipe (``float32``) on the same
    images. With a ``dask.distributed`` ``client`` the evaluations run on that cluster (the conversions stay
    here). ``qat``: whether the model is a QAT model (default: ``sources.is_qat``). ``precision``: points, each row
    but the reference stops early once sure (``core.early_stop``); ``images_used`` says on how many inputs."""
    from ..core.compare import paired
    from .toco import as_asked

    chosen = {c.name: c.params for c in choices if c.params is not None}
    qat = is_qat(model) if qat is None else qat

    def said(run: RecipeRun) -> None:
        if progress:
            used = f" (on {run.images_used} of {run.early.count} inputs)" if run.early is not None else ""
            progress(f"  {run.label}: {headline(run)}{used} in {run.converted.seconds:.1f} s" if run.ok
                     else f"  {run.name}: failed")

    runs = {r.name: r for r in run_recipes(model, data, spec=spec, representative=calibration,
                                            recipes=list(chosen), kind="qat" if qat else "float",
                                            parameters=chosen, progress=said, client=client, task=task,
                                            precision=precision)} \
        if chosen else {}
    base = reference_run(list(runs.values()))
    base = None if base is None else base.result
    rows = []
    for choice in choices:
        row = {"recipe": choice.name, "status": "skipped", "accuracy": None, "accuracy_pct": None,
               "delta_pts": None, "p_value": None, "ci_low_pts": None, "ci_high_pts": None,
               "significant": None, "verdict": "", "size_kb": None, "images_per_s": None,
               "images_used": None, "agreement": None,
               **{k: None for k in COLUMNS if k not in ("agreement", "accuracy")},
               "input": "", "activations": "", "convert_s": None, "outcome": choice.note, "note": "",
               "converted": None, "fidelity": None, "run": None}
        rows.append(row)
        if choice.params is None:
            continue
        run = runs[choice.name]
        row["note"] = choice.note
        if not run.ok:
            row.update(status="failed", outcome=run.outcome)
            continue
        converted, result = run.converted, run.result
        row["run"] = run
        if run.fidelity is not None:
            row.update({k: v for k, v in run.fidelity.columns().items() if k != "accuracy"}, fidelity=run.fidelity)
        row.update(
            recipe=run.label, status="ok", size_kb=round(converted.size_kb, 1), input=converted.input.dtype,
            activations="/".join(sorted(converted.activation_dtypes)), convert_s=round(converted.seconds, 2),
            outcome=" ".join(converted.warnings) or as_asked(converted), converted=converted,
            images_used=run.images_used)
        if run.early is not None:
            row["outcome"] = run.early.said_after(row["outcome"])
        if result is None:  # no labels: the fidelity to the float model is the whole row
            row["images_per_s"] = round(run.fidelity.count / max(run.fidelity.seconds, 1e-9))
            continue
        paired_to = None if base is None else paired_base(run, base)  # the reference on the same inputs
        if base is not None and not registry.is_reference(choice.name):  # one trained model two ways: paired
            test = paired(paired_to, result, data.labels if run.early is None else run.early.take(data.labels))
            row.update(p_value=test.p_value, ci_low_pts=round(100 * test.ci_low, 2),
                       ci_high_pts=round(100 * test.ci_high, 2), significant=test.significant, verdict=test.verdict)
        row.update(
            accuracy=round(result.accuracy, 6), accuracy_pct=round(100 * result.accuracy, 2),
            delta_pts=None if base is None else round(100 * (result.accuracy - paired_to.accuracy), 2),
            images_per_s=round(result.images_per_second))
        if row["agreement"] is None and result.agreement is not None:
            row["agreement"] = round(result.agreement, 4)
    return rows


def headline(run: RecipeRun) -> str:
    """A finished run in a few words: its accuracy, and how close it stays to the float model."""
    said = [f"{100 * run.result.accuracy:.2f} %"] if run.result is not None else []
    if run.fidelity is not None:
        said.append(run.fidelity.text())
    return "; ".join(said)


def table(rows: list[dict[str, Any]]):
    """The rows as a DataFrame (the CSV's columns)."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in row.items() if k not in ("converted", "fidelity", "run")} for row in rows])


def format_table(frame) -> str:
    """The console table: recipe, accuracy, delta vs float with its paired test (p, n.s. when within noise) when
    the data have labels; the agreement with the float model (95 % interval) and its SNR, and mAP50 or PSNR where
    the task has them; size, images/s, the inputs each row used (when some stopped early: ``--precision``), input,
    status."""
    from ..core.compare import format_p

    def agreement(row) -> str:
        if row["agreement"] is None or row["agreement"] != row["agreement"]:
            return "-"
        if row.get("agreement_low") is None or row["agreement_low"] != row["agreement_low"]:
            return f"{row['agreement']:.3f}"
        return f"{row['agreement']:.3f} [{row['agreement_low']:.3f}, {row['agreement_high']:.3f}]"

    def number(value, digits: int = 1) -> str:
        return "-" if value is None or value != value else f"{value:.{digits}f}"

    labelled = frame["accuracy"].notna().any()
    extra = {"agreement": [agreement(row) for _, row in frame.iterrows()],
             "snr_db": [number(v) for v in frame["snr_db"]]}
    cols = ["recipe", "agreement", "snr_db"]
    for key, digits in (("map50", 3), ("psnr", 1), ("truth_map50", 3), ("truth_psnr", 1)):
        if frame[key].notna().any():
            extra[key] = [number(v, digits) for v in frame[key]]
            cols.append(key)
    if labelled:
        cols = ["recipe", "accuracy", "delta_pts", "p", ""] + cols[1:]
        extra["p"] = [format_p(v).removeprefix("p ").removeprefix("= ") if v is not None and v == v else "-"
                      for v in frame["p_value"]]
        extra[""] = ["" if not v else ("n.s." if v.startswith("no significant") else v.replace("significantly ", ""))
                     for v in frame["verdict"]]
    used = ["images_used"] if "images_used" in frame and frame["images_used"].dropna().nunique() > 1 else []
    if used:  # some rows stopped early: how many inputs each used
        extra["images_used"] = [number(v, 0) for v in frame["images_used"]]
    shown = frame.assign(**extra)[cols + ["size_kb", "images_per_s", *used, "input", "status"]]
    shown = shown.rename(columns={"delta_pts": "Δ vs float (pts)", "size_kb": "size KB", "images_per_s": "images/s",
                                  "images_used": "images",
                                  "agreement": "agreement [95 % CI]", "snr_db": "SNR dB", "map50": "mAP50",
                                  "psnr": "PSNR dB", "truth_map50": "mAP50 (labels)", "truth_psnr": "PSNR (targets)"})
    return shown.to_string(index=False, na_rep="-")


def write(rows: list[dict[str, Any]], out: str | Path, title: str = "",
          summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``report.csv`` (every row), ``report.json`` (every row, and ``summary``: the task, what each losing row lost and
    why), ``report.png`` (the evaluated rows) and ``models/*.tflite``, written atomically."""
    import json

    from ..core import artifacts
    from ..core.measure import plain
    from .demo_figure import accuracy_size_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = table(rows)
    csv = artifacts.write_text_atomic(out / "report.csv", frame.to_csv(index=False))
    record = {"rows": [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")],
              **{k: plain(v) for k, v in (summary or {}).items()}}
    artifacts.write_text_atomic(out / "report.json", json.dumps(record, indent=2))
    done = frame[frame["status"] == "ok"].assign(model="float")
    png = out / "report.png" if len(done) else None
    if png is not None:
        metric, top = "test accuracy (%)", 100.0
        if done["accuracy_pct"].isna().all():  # no labels: the fidelity to the float model
            column, metric, top, scale = next(
                (c, m, t, k) for c, m, t, k in (("agreement", "agreement with the float model (%)", 100.0, 100),
                                                ("map50", "mAP50 against the float model's detections (%)", 100.0, 100),
                                                ("snr_db", "SNR against the float model (dB; inf: identical)", None, 1))
                if done[c].notna().any())
            values = done[column].astype(float) * scale
            done = done.assign(accuracy_pct=values.where(np.isfinite(values), np.nan))
        fig = accuracy_size_figure(done.reset_index(drop=True), metric=metric, top=top)
        if title:
            fig.suptitle(title)
        with artifacts.atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    count = 0
    for row in rows:
        if row["converted"] is not None:
            row["converted"].save(out / "models" / f"{row['converted'].recipe.name}.tflite")
            count += 1
    return {"csv": csv, "png": png, "models": out / "models", "count": count}
