"""Every registered recipe on one model: the quick comparison (accuracy, size, images/s, what happened).

``run_recipes`` converts one model (a Keras model, a SavedModel, a frozen ``.pb``,
any image shape and class count) with each recipe of the registry and evaluates
it on labelled images; ``recipe_table`` turns the runs into a DataFrame, the
reference recipe's row (``float32``, ``recipes.reference()``) first. Each recipe gets the parameters of its
registry ``demo`` row for this kind of model (float or QAT; a QAT model falls back
to the float row), as ``python -m workbench report`` chooses them: a float model's
uint8 path uses ``default_ranges=(0, 6)``, ``int8-ptq`` uint8 I/O. A recipe that
needs a QAT model is not run on a float model, and one the converter or runtime
refuses is a row with its reason in ``outcome``, never an exception. A ``.tflite``
(nothing to convert) gives one row for the model as it is. A model whose input has ``None``
beyond the batch is first fixed to the images' shape (``fixed_input``; an ``InputFixed`` warning says so).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import checks, convert_worker, heap, litert, measure
from .progress import line as progress_line
from . import recipes as registry
from .data import InputSpec
from .model_facts import input_spec_for, qat_refusal
from .samples import Samples, input_spec_of
from .sources import is_qat

KINDS = ("float", "qat")


@dataclass(frozen=True, eq=False)
class RecipeRun:
    """One recipe on the model: the recipe with its parameters, what it gave, and in words what happened.

    ``converted`` and ``result`` are ``None`` when the recipe did not run or failed; ``outcome``
    is ``"ok"``, the conversion's warnings (came out float, stats ignored, ops left float),
    ``"not run: ..."`` or ``"failed: ..."`` (the first line of the explanation).
    """

    name: str
    label: str
    outcome: str
    converted: Any = field(default=None, repr=False)
    result: Any = field(default=None, repr=False)  # an EvalResult: accuracy against the labels, when given
    fidelity: Any = field(default=None, repr=False)  # a measure.Fidelity: how close it stays to the float model
    early: Any = field(default=None, repr=False)  # an early_stop.Stop: measured on part of the inputs (precision=)
    outputs: Any = field(default=None, repr=False)  # the reference row's measure.Outputs on every input

    @property
    def ok(self) -> bool:
        return self.result is not None or self.fidelity is not None

    @property
    def score(self) -> float | None:
        """The figure a plot draws: the accuracy with labels, else the agreement with the float model's classes
        (``None``: neither, e.g. a detector without labels; its ``fidelity`` has the task's figures)."""
        if self.result is not None:
            return self.result.accuracy
        agreement = self.fidelity.headline.get("agreement") if self.fidelity is not None else None
        return None if agreement is None else agreement.value

    @property
    def images_used(self) -> int | None:
        """How many inputs the figures come from (all, unless the row stopped early: ``early``)."""
        measured = self.result if self.result is not None else self.fidelity
        return None if measured is None else measured.count


def model_kind(model: Any) -> str:
    """``"qat"`` when the model carries fake-quant (``sources.is_qat``), else ``"float"``."""
    return "qat" if is_qat(model) else "float"


def recipe_parameters(name: str, kind: str, calibration_size: int = 500) -> dict[str, Any] | None:
    """The parameters a recipe gets for a ``kind`` of model, from its ``demo`` rows.

    A QAT model takes the recipe's QAT row, else its float row; a recipe without demo rows runs
    with its defaults. ``None``: the recipe needs a QAT model and this one is float.
    """
    checks.choice("kind", kind, KINDS)
    spec = registry.get(name)
    if spec.needs_qat and kind == "float":
        return None
    rows = [dict(v) for s, v in spec.demo if (s.startswith("qat") if kind == "qat" else s == "float")]
    rows = rows or [dict(v) for s, v in spec.demo if s == "float"]
    params = rows[0] if rows else {}
    if spec.takes("calibration_size"):
        params.setdefault("calibration_size", calibration_size)
    return params


def run_recipes(model: Any, images: Any, labels: np.ndarray | None = None, *, spec: InputSpec | None = None,
                representative: Any = None, recipes: Sequence[str] | None = None,
                calibration_size: int = 500, kind: str | None = None,
                parameters: Mapping[str, Mapping[str, Any]] | None = None,
                progress: Callable[[RecipeRun], None] | None = None, client: Any = None,
                custom_objects: Any = None, task: str | None = None,
                converted: Sequence[RecipeRun] = (), precision: float | None = None) -> list[RecipeRun]:
    """Convert ``model`` with every registered recipe (or ``recipes``) and evaluate each on ``images``.

    Args:
        model: a Keras model, a SavedModel folder or ``sources.SavedModel``, a ``sources.FrozenGraph``,
            the path of a ``.keras``/``.h5``/``.tflite`` file (``sources.load_source``), or ``.tflite``
            bytes / a ``ConvertedModel``.
        images: raw uint8 test images of the shape the model reads, a float array ``(N, ...)`` fed as it is, or a
            ``samples.Samples`` (several inputs, labels of any task). A model whose input has ``None`` beyond the
            batch is fixed to the images' ``H, W, C`` first (``fixed_input``; an ``InputFixed`` warning says so).
        labels: class labels ``0..K-1`` (accuracy, paired tests), or ``None``: every run is then measured against
            the reference recipe's outputs alone (``RecipeRun.fidelity``; measured with labels too).
        spec: the float range the model was trained on (``Dataset.spec``); default: 0..255 for a model that
            starts with ``Rescaling``/``Normalization`` (``model_facts.input_spec_for``; the first row's outcome
            says so), else 0..1.
        representative: raw uint8 calibration images for the calibrated recipes (without them
            those recipes are rows saying so).
        recipes: recipe names, in order (default: the whole registry, the reference ``float32`` first).
        calibration_size: calibration images the calibrated recipes use.
        kind: ``"float"`` or ``"qat"`` (default: read off the model, ``model_kind``).
        parameters: the parameters of some recipes, in place of ``recipe_parameters`` (``python -m
            workbench report`` adds the input range's mean/std and its default ranges this way).
        progress: called with each run as it finishes.
        client: a ``dask.distributed.Client``: convert here, evaluate on that cluster (``core.parallel``: the
            images scattered once, each task one model's bytes); the runs are the same.
        custom_objects: for a ``.keras``/``.h5`` path, the layer classes of the user's own it needs
            (``sources.load_source``: a ``.py`` file, a dict, classes).
        task: ``tasks.TASKS``: what the model does, in place of what its outputs show (``tasks.recognise``).
        converted: the runs of an earlier call on the same model, spec and calibration data (e.g. the same inputs
            without labels): a recipe with the same parameters is measured on its conversion instead of converting
            again (a recipe whose parameters differ converts).
        precision: points: measure each recipe but the reference on growing random subsets of the inputs and stop
            when the interval of its paired difference from the reference is within ``±precision`` points or
            excludes 0 (``early_stop``; the row's ``early`` says where it stopped). ``None``: every input.

    Returns:
        One ``RecipeRun`` per recipe.

    Raises:
        ValueError: bad images or labels (checked once, against the first model that converts),
            an unknown recipe or kind, a ``precision`` not > 0 or given with ``client``.
    """
    from . import early_stop
    from .convert import QuantizationWarning, convert
    from .diagnose import QuantizationError
    from .evaluate import evaluate, from_predictions
    from .fixed_input import fit_to_images
    from .model_io import model_io

    if precision is not None:
        checks.number("precision", precision, low=0, low_open=True)
    if isinstance(model, (str, os.PathLike)) and Path(model).is_file():
        from .sources import load_source

        model = load_source(model, custom_objects=custom_objects)  # a frozen .pb needs its arrays: load_source(path, input_arrays=...) says so
    if task is not None:
        from .tasks import TASKS

        checks.choice("task", task, TASKS)
    samples = Samples.of(images, labels)
    spec, range_note = data_spec(model, samples, spec)
    io = model_io(model)
    if samples.is_images and len(samples.inputs) == 1:
        checks.images("images", samples.images, shape=io.image_shape)
        model = fit_to_images(model, samples.images)
    else:
        samples = samples.ordered([t.name for t in io.inputs] or samples.names, "images")
    labels = samples.labels
    calibration_size = checks.number("calibration_size", calibration_size, low=1, integer=True)
    if representative is not None and samples.is_images and len(samples.inputs) == 1:
        representative = checks.images("representative", representative, shape=samples.images.shape[1:])
    if isinstance(model, (bytes, bytearray)) or hasattr(model, "tflite"):
        if labels is None:
            raise ValueError("model= is a .tflite and images= have no labels: there is no float model to measure it "
                             "against; allowed: labels, or the source model (every recipe is then measured against "
                             "its float conversion)")
        return [RecipeRun("tflite", "the .tflite as given", "ok", model, evaluate(model, samples.images, labels, spec))]
    names = list(registry.names()) if recipes is None else [checks.choice("recipe", r, registry.names())
                                                             for r in recipes]
    kind = model_kind(model) if kind is None else checks.choice("kind", kind, KINDS)
    given = dict(parameters or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"parameters={unknown!r} name recipes that do not run; allowed: {names}")
    plan = early_stop.plan(precision, len(samples))
    if plan is not None and client is not None:
        raise ValueError(f"precision={precision!r} with client=: the cluster evaluates every input; allowed: "
                         "precision=None with a client, or client=None")
    reuse = {r.name: r.converted for r in converted if r.converted is not None}
    runs: list[RecipeRun] = []
    reference = None
    remote = None
    if client is not None:
        if labels is None or not samples.is_images:
            raise ValueError("client= evaluates uint8 images against labels on the cluster; allowed: labelled images, "
                             "or client=None to measure unlabelled or float data here")
        from .parallel import DaskEvaluator

        remote = DaskEvaluator(client, samples.images, spec, keep_outputs=True)
    outputs = measure.Reference(samples, spec, task)
    waiting: list[Any] = []  # with a cluster: runs, or (name, label, converted, future) still evaluating

    def finish(run: RecipeRun) -> None:
        heap.trim()  # the conversion's freed memory back to the system (core.heap)
        if range_note and not runs:  # said once, on the first row
            run = replace(run, outcome=f"{run.outcome}; {range_note}")
        runs.append(run)
        if progress is not None:
            progress(run)

    def record(name: str, label: str, converted: Any, result: Any, fid: Any = None, early: Any = None) -> None:
        nonlocal reference
        if reference is None and registry.is_reference(name):
            reference = result
        if result is None and fid is None:  # unlabelled, and the reference did not run
            finish(RecipeRun(name, label, f"failed: no float outputs to measure against ({outputs.error})"))
            return
        outcome = " ".join(converted.warnings) or "ok"
        if early is not None:
            outcome = early.said_after(outcome)
        own = outputs.values if registry.is_reference(name) else None  # what the verdicts measure against
        finish(RecipeRun(name, label, outcome, converted, result, fid, early, own))

    def hold(run: RecipeRun) -> None:
        (waiting.append if remote is not None else finish)(run)

    first = [n for n in names if registry.is_reference(n)][:1]  # the reference's outputs first: every row needs them
    planned = []  # the recipes this call converts (a reused one is not)
    for n in names:
        p = dict(given[n]) if n in given else recipe_parameters(n, kind, calibration_size)
        if p is not None and not (n in reuse and reuse[n].recipe == registry.recipe(n, **p)):
            planned.append(registry.recipe(n, **p))
    # A big model's calibrated conversions start at once in a second process (convert_worker); the rest run here.
    with convert_worker.ahead(model, planned if remote is None else [], spec, representative) as ahead:
        sent = {r.name for r in ahead}  # converted here after the others, by when the worker has them ready
        rest = [n for n in names if n not in first]
        for name in first + [n for n in rest if n not in sent] + [n for n in rest if n in sent]:
            rspec = registry.get(name)
            params = dict(given[name]) if name in given else recipe_parameters(name, kind, calibration_size)
            if params is None:
                refusal = qat_refusal(model)
                hold(RecipeRun(name, name, "not run: needs a QAT model (train with QAT, then convert)"
                               + (f"; {refusal}" if refusal else "")))
                continue
            recipe = registry.recipe(name, **params)
            if rspec.calibrated and representative is None:
                hold(RecipeRun(name, recipe.label(), "not run: needs representative images for calibration"))
                continue
            error = None
            with progress_line(recipe.label()):  # the recipe's phases as they go, erased before its result line
                try:
                    if name in reuse and reuse[name].recipe == recipe:  # the same recipe, converted by an earlier run
                        converted = reuse[name]
                    else:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", QuantizationWarning)  # sentences: outcome column
                            converted = convert(model, recipe, spec=spec,
                                                representative=representative if rspec.calibrated else None)
                    if remote is not None:
                        waiting.append((name, recipe.label(), converted, remote.submit(converted.tflite)))
                        continue
                    own = registry.is_reference(name) and outputs.values is None  # the reference's outputs: run once
                    if outputs.values is None:
                        outputs.take(model, converted if registry.is_reference(name) else None)
                    looks = None if registry.is_reference(name) else plan  # the reference: every input
                    got = early_stop.Measured(outputs.values, outputs.fidelity(outputs.values)) \
                        if own and outputs.values is not None else \
                        early_stop.measured(looks, outputs, converted, samples, spec)
                    ran, fid, early, seen = got.outputs, got.fidelity, got.stop, got.take(labels)
                    result = None
                    if labels is not None:
                        classes = fid.classes if fid is not None and fid.classes else model_io(converted).classes
                        checks.labels("labels", seen, len(seen), classes)
                        predictions = fid.predictions if fid is not None and fid.predictions is not None else \
                            ran.values[0].reshape(ran.count, -1).argmax(axis=1)
                        base = got.take(reference.predictions) if reference is not None else None
                        result = from_predictions(predictions, seen, classes, ran.seconds, base)
                        if early is not None and reference is not None:  # the reference on the same inputs: paired
                            early = replace(early, reference=from_predictions(
                                base, seen, classes, reference.seconds * len(seen) / max(reference.count, 1)))
                except (QuantizationError, RuntimeError, ValueError) as err:  # explained: one row, not an exception
                    error = err
            if error is not None:
                hold(RecipeRun(name, recipe.label(), "failed: " + failure(error)))
                continue
            record(name, recipe.label(), converted, result, fid, early)
    for item in waiting:  # the cluster's evaluations, in recipe order (the reference first)
        if isinstance(item, RecipeRun):
            finish(item)
            continue
        name, label, converted, future = item
        done = remote.result(future)
        if done.predictions is None:
            finish(RecipeRun(name, label, "failed: " + done.error))
            continue
        outputs.take(model, converted if registry.is_reference(name) else None)  # the reference, run here
        fid = outputs.fidelity(measure.Outputs(done.names, done.outputs, done.seconds))
        classes = fid.classes if fid is not None and fid.classes else model_io(converted).classes
        try:
            checks.labels("labels", labels, len(samples), classes)
        except ValueError as err:  # as evaluate() says it here
            finish(RecipeRun(name, label, "failed: " + failure(err)))
            continue
        predictions = fid.predictions if fid is not None and fid.predictions is not None else done.predictions
        record(name, label, converted, from_predictions(predictions, labels, classes, done.seconds, reference), fid)
    if remote is not None:
        remote.close()
    order = {n: i for i, n in enumerate(names)}
    return sorted(runs, key=lambda r: order.get(r.name, len(order)))


def data_spec(model: Any, samples: Samples, given: InputSpec | None = None) -> tuple[InputSpec, str | None]:
    """The float range ``run_recipes`` converts and feeds ``samples`` with, and the sentence saying where it came from:
    ``given``, else the model's own (0..255 after ``Rescaling``, ``model_facts.input_spec_for``) for images; for
    float data ``given``, else the data's own range (``samples.input_spec_of``)."""
    spec, note = input_spec_for(model, given)
    if not samples.is_images or len(samples.inputs) > 1:
        spec, note = input_spec_of(samples, given, spec)
    return spec, note


def failure(err: BaseException) -> str:
    """A refused conversion in one line: the diagnosis's title and fix, else the start of the original message."""
    diagnosis = getattr(err, "diagnosis", None)
    if diagnosis is not None and diagnosis.entry is not None:
        return f"{diagnosis.entry.title} Fix: {diagnosis.entry.fix}"
    text = diagnosis.original if diagnosis is not None else str(err)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def reference_run(runs: Sequence[RecipeRun]) -> RecipeRun | None:
    """The reference recipe's run (``recipes.reference()``: ``float32``) when it ran, else ``None``."""
    return next((r for r in runs if registry.is_reference(r.name) and r.ok), None)


def paired_base(run: RecipeRun, base: Any) -> Any:
    """The reference's ``EvalResult`` on the inputs ``run`` used: ``base`` (on every input), or for a row that
    stopped early the reference's on the same inputs (``early_stop.Stop.reference``)."""
    return base if run.early is None or run.early.reference is None else run.early.reference


def recipe_table(runs: Sequence[RecipeRun]):
    """The runs as a DataFrame: ``recipe``, ``accuracy_pct``, ``delta_pts`` (against the
    reference ``float32`` row on the same inputs, when there is one; empty without labels), ``size_kb``,
    ``images_per_s``, ``images_used`` (fewer than all: the row stopped early, its ``outcome`` says so), ``input``
    (dtype), ``outcome``, then the fidelity to the float model (``measure.COLUMNS``: ``task``, ``agreement`` with its
    interval, ``snr_db``, ..., ``map50``/``psnr`` where the task has them, the label figures where given)."""
    import pandas as pd

    reference = reference_run(runs)
    base = None if reference is None else reference.result
    rows = []
    fidelity_columns = [c for c in measure.COLUMNS if c != "accuracy"]
    for r in runs:
        info = litert.read_model(r.converted) if r.ok else None
        labelled = r.result is not None
        seconds = r.result.images_per_second if labelled else (
            r.fidelity.count / max(r.fidelity.seconds, 1e-9) if r.fidelity is not None else None)
        row = {
            "recipe": r.label,
            "accuracy_pct": round(100 * r.result.accuracy, 2) if labelled else np.nan,
            "delta_pts": round(100 * (r.result.accuracy - paired_base(r, base).accuracy), 2)
            if labelled and base is not None else np.nan,
            "size_kb": round(len(litert.model_bytes(r.converted)) / 1024, 1) if r.ok else np.nan,
            "images_per_s": round(seconds) if seconds is not None else np.nan,
            "images_used": r.images_used if r.ok else np.nan,
            "input": info.inputs[0].dtype if info is not None else "",
            "outcome": r.outcome,
        }
        measured = r.fidelity.columns() if r.fidelity is not None else {}
        row.update({c: measured.get(c) for c in fidelity_columns})
        rows.append(row)
    base_columns = ["recipe", "accuracy_pct", "delta_pts", "size_kb", "images_per_s", "images_used", "input", "outcome"]
    frame = pd.DataFrame(rows, columns=[*base_columns, *fidelity_columns])
    return frame[base_columns + [c for c in fidelity_columns if frame[c].notna().any()]]  # the task's figures
