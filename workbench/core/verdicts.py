"""Why a recipe's row loses, measured on this model and these inputs, and a fix tried the same way.

``losing(run, reference_run)`` says whether a ``recipe_table.RecipeRun`` loses against the reference row
(``LOSS_THRESHOLDS``): accuracy significantly lower (the paired exact McNemar test of ``compare``, with labels)
by at least ``accuracy_pts`` points, ``agreement`` with the float model's classes under its threshold, the
output's ``snr_db`` under its threshold; or not what the recipe promised: a model that came out float, weights
left unquantized, int16 activations running ``slower`` times slower than the float model (reference kernels).

``explain_loss`` gives each losing row the ``Verdict``s whose cause it measures (``causes``): the activations
``default_ranges`` clip (the float model's own activation values, ``tensor_stats.activation_ranges``), the
input codes the mean/std clip or leave unused (``stats.code_usage`` for pixels, ``stats.value_codes`` for
real values), the learned input range of a QAT model overriding the stats, saturated integer tensors
(``tensor_stats.saturation``), a model that came out float, ops left float, weights left unquantized,
per-channel weights on the uint8 path, slow int16 kernels. Each verdict carries a ``Fix``: a recipe of the
registry converted with ``convert.convert`` and measured with ``measure`` against the same reference outputs,
in the row's metric (accuracy with labels, else agreement, else SNR); when no post-training fix recovers the
row, the QAT recipe is named.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from . import heap, progress, recipes as registry
from .data import InputSpec
from .measure import plain
from .samples import Samples

# A row loses under these (README, "Why a row loses"). Agreement 0.98: on the digits LeNet the calibrated int8
# recipes keep 0.983-0.992 and default ranges that clip its activations 0.15-0.96. SNR 10 dB (the output's noise a
# tenth of its signal): the same calibrated recipes measure 14-39 dB, the clipped rows 0.6-8.8 dB. Accuracy:
# significantly lower (p < 0.05) by at least 1 point (a 0.2-point drop can be significant on 10,000 images and is
# no loss).
# ``slower``: int16 activations this many times slower than the float model.
LOSS_THRESHOLDS = {"agreement": 0.98, "snr_db": 10.0, "accuracy_pts": 1.0, "slower": 2.0}
# A cause is said when its measure reaches these shares.
CAUSE_THRESHOLDS = {"clipped": 0.001, "clipped_tensor": 0.01, "saturated": 0.01, "input_clipped": 0.001,
                    "unused_codes": 0.25}


@dataclass(frozen=True)
class Fix:
    """A recipe use tried (or named) for a verdict, and its figure in the row's ``metric`` before and after
    (``after`` is ``None`` when it was named, not run)."""

    description: str
    recipe: str
    params: dict = field(default_factory=dict)
    metric: str = "agreement"
    before: float | None = None
    after: float | None = None

    def sentence(self) -> str:
        """``fix tried: <description> -> agreement 0.92 (+0.79)``, or ``fix named: ...`` when not run."""
        if self.after is None:
            return f"fix named: {self.description}"
        delta = "" if self.before is None else f" ({_figure(self.metric, self.after - self.before, signed=True)})"
        return f"fix tried: {self.description} -> {self.metric} {_figure(self.metric, self.after)}{delta}"

    def record(self) -> dict[str, Any]:
        return plain(asdict(self))


@dataclass(frozen=True)
class Verdict:
    """One cause of one row's loss: a plain sentence with its numbers, the measurements behind it, a fix."""

    recipe: str
    cause: str
    sentence: str
    record: dict
    fix: Fix | None = None

    def text(self) -> str:
        """The sentence and the fix's, on one line."""
        return self.sentence + (f" {self.fix.sentence()}" if self.fix is not None else "")

    def summary(self) -> dict[str, Any]:
        """JSON-ready: recipe, cause, sentence, record, fix."""
        return {"recipe": self.recipe, "cause": self.cause, "sentence": self.sentence, "record": plain(self.record),
                "fix": None if self.fix is None else self.fix.record()}


def metric_of(run: Any) -> tuple[str, float | None]:
    """The figure a row is judged by: ``accuracy`` with labels, else ``agreement`` (classifiers), else ``snr_db``."""
    if run.result is not None and run.result.accuracy is not None:
        return "accuracy", float(run.result.accuracy)
    return figure_of(run.fidelity, None, "agreement" if _agreement(run.fidelity) is not None else "snr_db")


def figure_of(fid: Any, accuracy: float | None, metric: str) -> tuple[str, float | None]:
    if metric == "accuracy":
        return metric, accuracy if accuracy is not None else (fid.truth.get("accuracy") if fid else None)
    if metric == "agreement":
        return metric, _agreement(fid)
    value = fid.headline.get("snr_db") if fid is not None else None
    return metric, None if value is None else float(value)


def speed_of(run: Any) -> float | None:
    """Inputs per second of a row."""
    if run.result is not None:
        return float(run.result.images_per_second)
    if run.fidelity is not None and run.fidelity.seconds:
        return run.fidelity.count / run.fidelity.seconds
    return None


def losing(run: Any, reference_run: Any = None, labels: Any = None) -> str | None:
    """Why ``run`` (a ``RecipeRun``) counts as losing against ``reference_run`` (see the module), ``None`` when it
    does not. ``labels``: the true classes, for the paired test of the accuracy (without them an accuracy
    ``accuracy_pts`` points under the reference's loses)."""
    if run.converted is None or not run.ok or registry.is_reference(run.name):
        return None
    reasons = []
    outcome = run.converted.outcome
    if outcome.came_out_float:
        reasons.append(f"came out float ({outcome.float_activations} of {outcome.activations} activation tensors "
                       "float32)")
    if outcome.weights_unquantized:
        reasons.append("no weight quantized")
    base = reference_run.result if reference_run is not None else None
    if base is not None and getattr(run, "early", None) is not None:  # stopped early: the same inputs
        base, labels = run.early.reference or base, run.early.take(labels)
    if run.result is not None and base is not None and run.result.accuracy is not None:
        drop = 100 * (base.accuracy - run.result.accuracy)
        if drop >= LOSS_THRESHOLDS["accuracy_pts"]:
            if labels is None:
                reasons.append(f"accuracy {run.result.accuracy:.3f} against {base.accuracy:.3f} ({-drop:+.1f} points)")
            else:
                from .compare import format_p, paired

                test = paired(base.predictions, run.result.predictions, labels)
                if test.significant:
                    reasons.append(f"accuracy {run.result.accuracy:.3f} against {base.accuracy:.3f} "
                                   f"({-drop:+.1f} points, {format_p(test.p_value)})")
    agreement = _agreement(run.fidelity)
    if agreement is not None and agreement < LOSS_THRESHOLDS["agreement"]:
        reasons.append(f"agreement {agreement:.3f} < {LOSS_THRESHOLDS['agreement']:g}")
    snr = run.fidelity.headline.get("snr_db") if run.fidelity is not None else None
    if snr is not None and snr < LOSS_THRESHOLDS["snr_db"]:
        reasons.append(f"SNR {snr:.1f} dB < {LOSS_THRESHOLDS['snr_db']:g} dB")
    speed, base_speed = speed_of(run), speed_of(reference_run) if reference_run is not None else None
    if ("int16" in run.converted.activation_dtypes and speed and base_speed
            and base_speed / speed >= LOSS_THRESHOLDS["slower"]):
        reasons.append(f"{base_speed / speed:.0f}x slower than {reference_run.name}")
    return "; ".join(reasons) or None


def explain_loss(model: Any, runs: Sequence[Any], samples: Samples, spec: InputSpec, *, try_fixes: bool = True,
                 percentile: float = 99.9, size: int = 200, calibrated_on_samples: bool = False) -> list[Verdict]:
    """The verdicts of every losing row of ``runs`` (``recipe_table.run_recipes(model, samples, ...)``).

    Args:
        model: the model the rows converted (fixes convert it again with other parameters).
        runs: the rows, with the reference recipe's row among them.
        samples: the samples the rows were measured on (their labels, when given, decide the metric).
        spec: the float range the rows were converted and fed with (``InputSpec``).
        try_fixes: convert and measure the fixes; ``False`` names them only (``Fix.after`` is ``None``).
        percentile: default ranges from the float activations are taken at this percentile (each tensor's
            ``100 - p`` and ``p`` percentiles, the widest of them, widened to hold 0).
        calibrated_on_samples: the rows' calibrated recipes were calibrated on ``samples`` (their first
            ``calibration_size``): a fix that is then one of the rows is not converted again (its figures are the row's).
        size: inputs the per-tensor measures run on (the first ``size`` samples; fewer for a model with many
            activation values per input, ``causes.per_tensor_rows``: 16 of MobileNetV2 at 224x224).

    Returns:
        One or more ``Verdict`` per losing row (a row with no cause measured gets ``"unexplained"``), in row order.
    """
    from .causes import Context, verdicts_of
    from .recipe_table import reference_run

    samples = Samples.of(samples)
    reference = reference_run(runs)
    if reference is None:
        return []
    context = Context(model, samples, spec, reference, try_fixes, percentile, size, runs, calibrated_on_samples)
    found: list[Verdict] = []
    for run in runs:
        why = losing(run, reference, samples.labels)
        if why is not None:
            with progress.line(f"why {run.label}"):  # its measures and fixes as they go
                found += verdicts_of(context, run, why)
            heap.trim()  # the per-tensor measures' freed memory back to the system (core.heap)
    return found


def _agreement(fid: Any) -> float | None:
    value = fid.headline.get("agreement") if fid is not None else None
    return None if value is None else float(value.value)


def _figure(metric: str, value: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if metric == "snr_db":
        return f"{value:{sign}.1f} dB"
    if metric == "images_per_s":
        return f"{value:{sign},.0f}/s"
    return f"{value:{sign}.3f}" if not signed else f"{value:+.2f}"
