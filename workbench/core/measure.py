"""One model's outputs on the samples, and how close they stay to the float model's: the ``Fidelity`` record.

``outputs_of`` runs a ``.tflite`` through ``litert`` and keeps every output, dequantized, named by the
signature's output keys. ``measure`` pairs them with the reference's (the float model converted with
the reference recipe; by name, else by shape, else in order), recognises the task (``tasks``) and computes,
per output, the metrics of ``fidelity`` that fit it; a detector's detections are compared with
``detection.coco_map``. With labels, the task's own figure beside them: accuracy (classes), mAP against
the labelled boxes, PSNR against the ``targets``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import fidelity, progress
from .data import InputSpec
from .litert import DEFAULT_BATCH
from .samples import Samples
from .tasks import Task, recognise

# Every figure a row can carry, in table order: the fidelity to the float model, then against the labels.
COLUMNS = ("task", "agreement", "agreement_low", "agreement_high", "snr_db", "cosine", "max_abs", "kl", "psnr",
           "map50", "map", "accuracy", "truth_map50", "truth_map", "truth_psnr")
# mAP of a detector: the float model's detections scoring at least this are the truth; every detection of the
# quantized model (raw heads: those ``detection.from_heads`` keeps, score >= 0.05 after NMS) is ranked by its score.
DETECTION_SCORE = 0.5


@dataclass(frozen=True, eq=False)
class Outputs:
    """A model's outputs on the samples, in the model's order, with their names and the time the run took."""

    names: tuple[str, ...]
    values: tuple[np.ndarray, ...] = field(repr=False)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.values[0]) if self.values else 0

    def shapes(self) -> list[tuple[str, tuple]]:
        return [(n, tuple(v.shape)) for n, v in zip(self.names, self.values)]


def outputs_of(model: Any, samples: Samples | np.ndarray, spec: InputSpec = InputSpec(), *,
               batch_size: int | None = DEFAULT_BATCH, num_threads: int | None = None) -> Outputs:
    """Every output of a ``.tflite`` (``ConvertedModel``, bytes or path) on ``samples``, dequantized; several
    inputs are matched to the model's by name (``Samples.ordered``). ``batch_size=None``: all in one invoke (within
    ``litert.BATCH_BYTES``)."""
    from . import litert
    from .evaluate import default_threads

    if isinstance(samples, Samples) and len(samples.inputs) > 1:
        samples = samples.ordered([i.name for i in litert.read_model(model).inputs])
    feed = samples.feed() if isinstance(samples, Samples) else samples
    progress.phase("evaluate", len(feed[0]) if isinstance(feed, tuple) else len(feed), "inputs")
    start = time.perf_counter()
    run = litert.run(model, feed, spec, batch_size=batch_size,
                     num_threads=default_threads() if num_threads is None else num_threads)
    return Outputs(run.output_names, run.all_outputs, time.perf_counter() - start)


def align(reference: Outputs, other: Outputs) -> list[int]:
    """For each reference output, the index of the same output in ``other``: the same name, else the one output of
    the same shape, else the next in order (two conversions of one model may name and order them differently).

    Raises:
        ValueError: another number of outputs.
    """
    if len(reference.values) != len(other.values):
        raise ValueError(f"the model has {len(other.values)} outputs, the reference {len(reference.values)}; allowed: "
                         "conversions of one model, with the same outputs")
    free = list(range(len(other.values)))
    chosen: list[int | None] = [None] * len(reference.values)
    for i, name in enumerate(reference.names):
        if name in other.names and other.names.index(name) in free:
            chosen[i] = other.names.index(name)
            free.remove(chosen[i])
    for i, value in enumerate(reference.values):
        same = [j for j in free if other.values[j].shape == value.shape]
        if chosen[i] is None and len(same) == 1:
            chosen[i] = same[0]
            free.remove(same[0])
    for i in range(len(chosen)):
        if chosen[i] is None:
            chosen[i] = free.pop(0)
    return [int(c) for c in chosen]


@dataclass(frozen=True, eq=False)
class Fidelity:
    """How close one model's outputs stay to the reference's, per output and in the task's headline figures.

    ``headline``: ``agreement`` (a ``fidelity.Estimate``, classifiers), ``snr_db``, ``cosine``, ``max_abs``, ``kl``
    (probabilities), ``psnr`` (dense), ``map50``/``map`` (detectors), those that apply; ``truth``: the task's
    figures against the labels (``accuracy``, ``truth_map50``/``truth_map``, ``truth_psnr``); ``predictions``: the
    classes the main classifier output picks, for paired tests.
    """

    task: Task
    outputs: dict[str, dict[str, Any]]
    headline: dict[str, Any]
    truth: dict[str, Any] = field(default_factory=dict)
    predictions: np.ndarray | None = field(default=None, repr=False)
    count: int = 0
    seconds: float = 0.0  # the run that gave the outputs
    classes: int | None = None  # the class count of the main output, when it is a classifier
    notes: tuple[str, ...] = ()  # what the figures cannot show (e.g. the float model's ties), in sentences

    def columns(self) -> dict[str, Any]:
        """One flat row: ``task``, ``agreement`` with ``agreement_low``/``agreement_high``, the other headline and
        label figures (``None`` where they do not apply; ``COLUMNS`` in order)."""
        values = {**self.headline, **self.truth}
        row: dict[str, Any] = {k: None for k in COLUMNS}
        row["task"] = self.task.kind
        for key, value in values.items():
            if isinstance(value, fidelity.Estimate):
                row.update({key: value.value, f"{key}_low": value.low, f"{key}_high": value.high})
            elif key in row:
                row[key] = None if value is None else float(value)
        return row

    def text(self) -> str:
        """The headline in words: ``agreement 0.992 [0.980, 0.998], SNR 43.1 dB`` (and mAP, PSNR where they apply)."""
        row = self.columns()
        parts = []
        if row["agreement"] is not None:
            parts.append(f"agreement {row['agreement']:.3f} [{row['agreement_low']:.3f}, {row['agreement_high']:.3f}]")
        if row["map50"] is not None:
            parts.append(f"mAP50 {row['map50']:.3f}")
        if row["snr_db"] is not None:
            parts.append(f"SNR {row['snr_db']:.1f} dB")
        if row["psnr"] is not None:
            parts.append(f"PSNR {row['psnr']:.1f} dB")
        return ", ".join(parts)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the headline figures and the label figures at the top, ``task`` and why, and each output's
        figures under ``outputs``; an estimate is its value with ``<name>_interval`` ``[low, high]``, infinity
        the string ``"inf"``."""
        return {**_flat({**self.headline, **self.truth}), "task": self.task.kind, "task_reason": self.task.reason,
                "count": self.count, "outputs": {name: _flat(metrics) for name, metrics in self.outputs.items()}}


def task_of(reference: Outputs, input_shape: Sequence[int | None] | None, task: str | None = None,
            labels: np.ndarray | None = None) -> Task:
    """The task the reference's outputs show (``tasks.recognise``), with its main output (``tasks.main_output``:
    the one ``labels`` fit, the one that gives probabilities)."""
    from .tasks import main_output

    top = None if labels is None or not len(labels) else int(np.max(labels))
    return main_output(recognise(reference.shapes(), input_shape, task), reference.values, top)


def measure(reference: Outputs, outputs: Outputs, task: Task, samples: Samples | None = None) -> Fidelity:
    """``outputs`` against ``reference`` (the same samples, in the same order), for ``task``; labelled ``samples``
    add the task's own figures."""
    order = align(reference, outputs)
    values = [outputs.values[j] for j in order]
    per_output: dict[str, dict[str, Any]] = {}
    for name, role, f, q in zip(reference.names, task.roles, reference.values, values):
        kind = role if role in ("classifier", "dense") else "generic"
        per_output[name] = fidelity.output_metrics(f, q, kind)
    main = task.main
    headline = dict(per_output[reference.names[main]])
    truth: dict[str, Any] = {}
    predictions = None
    notes: list[str] = []
    if task.kind == "detector":
        found, truth_boxes = _detections(task, values), _detections(task, list(reference.values))
        from . import detection

        scored = detection.coco_map(detection.truth_from(truth_boxes, DETECTION_SCORE), found, 0.0)
        headline.update(map50=scored["map50"], map=scored["map"])
        notes.append(f"mAP: the float model's {scored['truth_boxes']} detections scoring at least {DETECTION_SCORE:g} "
                     "are the truth; each model's detections are ranked by score"
                     + ("" if scored["map50"] is not None else " (none scores that high: no mAP)"))
        if samples is not None and samples.boxes is not None:
            labelled = detection.from_labels(samples.boxes, samples.box_classes)
            given = detection.coco_map(labelled, found, 0.0)
            truth.update(truth_map50=given["map50"], truth_map=given["map"])
    q_main = values[main]
    if task.roles[main] == "classifier":
        predictions = q_main.reshape(len(q_main), -1).argmax(axis=1)
        top2 = np.sort(reference.values[main].reshape(len(q_main), -1), axis=1)[:, -2:]
        ties = int(np.sum(top2[:, 0] == top2[:, 1])) if top2.shape[1] == 2 else 0
        if ties:
            notes.append(f"the float model gives its top score to several classes on {ties} of {len(q_main)} inputs "
                         "(an untrained or saturated model?): there the agreement compares the first of them and "
                         "says little; the SNR still measures the outputs")
        if samples is not None and samples.labels is not None:
            truth["accuracy"] = float(np.mean(predictions == samples.labels))
    if samples is not None and samples.targets is not None and samples.targets.shape[1:] == q_main.shape[1:]:
        targets = samples.targets.astype(np.float32)
        if samples.targets.dtype == np.uint8 and float(np.max(reference.values[main])) <= 1.5:
            targets = targets / 255.0  # uint8 pixels against a model that writes 0..1
        truth["truth_psnr"] = fidelity.psnr(targets, q_main)
    classes = q_main.reshape(len(q_main), -1).shape[1] if predictions is not None else None
    return Fidelity(task, per_output, headline, truth, predictions, outputs.count, outputs.seconds, classes,
                    tuple(notes))


class Reference:
    """The float model's outputs on the samples, taken once (the reference recipe's conversion), and the task
    they show; ``fidelity(outputs)`` measures another conversion against them."""

    def __init__(self, samples: Samples, spec: InputSpec, task: str | None = None) -> None:
        self.samples, self.spec, self.word = samples, spec, task
        self.values: Outputs | None = None
        self.task: Task | None = None
        self.error = "not run yet"
        self.tried = False

    def take(self, model: Any, converted: Any = None, values: Outputs | None = None) -> None:
        """Run the reference: ``converted`` (the reference recipe's conversion), else ``model`` converted with it;
        ``values``: its outputs on these samples, already measured (nothing is run). A failure is kept in ``error``
        (every row then says it), never raised; a bad ``task`` word is raised."""
        import warnings

        from .convert import QuantizationWarning, convert
        from .recipes import reference

        if self.tried:
            return
        self.tried = True
        try:
            if converted is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", QuantizationWarning)
                    converted = convert(model, reference().name, spec=self.spec)
            values = outputs_of(converted, self.samples, self.spec) if values is None else values
        except (RuntimeError, ValueError) as err:  # QuantizationError is a RuntimeError
            from .checks import first_line

            self.error = f"the reference {reference().name} did not run: {first_line(err)}"
            return
        self.task = task_of(values, self.samples.inputs[0].shape, self.word, self.samples.labels)
        self.values = values

    def fidelity(self, outputs: Outputs) -> Fidelity | None:
        if self.values is None:
            return None
        return measure(self.values, outputs, self.task, self.samples)


def _detections(task: Task, values: list[np.ndarray]):
    from . import detection

    boxes = values[task.index("boxes")]
    scores = values[task.index("scores")]
    if task.postprocessed:
        return detection.from_postprocess(boxes, values[task.index("classes")], scores, values[task.index("count")])
    return detection.from_heads(boxes, scores)


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, fidelity.Estimate):
            flat.update({key: value.value, f"{key}_interval": [value.low, value.high]})
        else:
            flat[key] = plain(value)
    return flat


def plain(value: Any) -> Any:
    """``value`` ready for JSON: dicts and sequences through, NumPy numbers as Python's, NaN as ``None``, an infinity
    as ``"inf"``/``"-inf"`` (the one conversion of the report's, the verdicts' and the fidelity records)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
