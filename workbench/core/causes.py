"""The causes ``verdicts.explain_loss`` measures on a losing row, each a function giving a ``Verdict`` or ``None``,
and the fixes it tries: recipe uses of the registry, converted with ``convert.convert`` and measured with
``measure`` against the reference row's outputs (the same path as the rows), kept once per recipe use.

A fix chain stops at the first fix whose model no longer loses (figure back over the threshold, integer
activations); when none does, the best one tried is kept in the record and the QAT recipe is named.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np

from . import measure, progress, recipes as registry
from .stats import code_usage, value_codes
from .error_path import ENTRY_DB, entry, entry_sentence, error_path
from .tensor_stats import activation_ranges, saturation
from .measure import plain
from .verdicts import CAUSE_THRESHOLDS, LOSS_THRESHOLDS, Fix, Verdict, figure_of, metric_of

Candidate = tuple[str, Any, dict]  # (description, Recipe, converted model's params for the record)


# The per-tensor measures (float activation ranges, saturation, the error path) read every activation tensor of a
# model on each input: on MobileNetV2 at 224x224 that is 6.9 million values per input. They run on at most ``size``
# inputs, and on fewer when the model's activations would exceed ``VALUES`` values (never under ``MIN_ROWS``): 200
# inputs of a LeNet, 16 of a MobileNetV2. Their sentences say how many inputs they used.
VALUES = 64_000_000
MIN_ROWS = 16


def per_tensor_rows(model: Any, size: int) -> int:
    """How many inputs the per-tensor measures of ``model`` (the float ``.tflite``) use: ``size``, fewer for a model
    whose activations per input are many (see ``VALUES``)."""
    from . import litert

    per_input = sum(int(np.prod(t.shape[1:] or (1,))) for t in litert.read_model(model).tensors if t.is_activation)
    return int(max(1, min(size, max(MIN_ROWS, VALUES // max(per_input, 1)))))


class Context:
    """What every cause of one ``explain_loss`` call shares: the model, samples, reference outputs, fixes tried."""

    def __init__(self, model: Any, samples: Any, spec: Any, reference_run: Any, try_fixes: bool, percentile: float,
                 size: int, runs: Any = (), calibrated_on_samples: bool = False) -> None:
        self.model, self.samples, self.spec, self.reference_run = model, samples, spec, reference_run
        # the rows measured on every input, to stand for a fix that is one of them (``same_row``)
        self.runs = [r for r in runs if r.ok and r.converted is not None and getattr(r, "early", None) is None]
        self.calibrated_on_samples = calibrated_on_samples
        self.try_fixes, self.percentile = try_fixes, percentile
        self.size = per_tensor_rows(reference_run.converted, size)
        self.reference = measure.Reference(samples, spec)
        progress.phase("float outputs")
        given = getattr(reference_run, "outputs", None)  # the row's own outputs on these samples: not run again
        self.reference.take(model, reference_run.converted, given if given is not None and given.count == len(samples)
                            else None)
        self._ranges: dict[Any, tuple] = {}
        self._fixes: dict[Any, tuple[Any, Any, float | None, str]] = {}

    @property
    def rows(self) -> int:
        return min(self.size, len(self.samples))

    def ranges(self, bounds: tuple[float, float] | None = None):
        """The float model's activation tensors on the samples (``tensor_stats.activation_ranges``)."""
        if bounds not in self._ranges:
            progress.phase("float activation ranges")
            self._ranges[bounds] = activation_ranges(self.reference_run.converted, self.samples, self.spec,
                                                     size=self.size, bounds=bounds, percentile=self.percentile)
        return self._ranges[bounds]

    def observed_range(self) -> tuple[float, float]:
        """Default ranges from the float activations: the widest ``100 - p``/``p`` percentiles of the tensors, held
        to contain 0, at 3 significant digits."""
        ranges = self.ranges()
        lo, hi = min(0.0, min(r.low for r in ranges)), max(0.0, max(r.high for r in ranges))
        return float(f"{lo:.3g}"), float(f"{hi:.3g}")

    def same_row(self, recipe: Any) -> Any:
        """The row already converted with ``recipe``, else ``None``: the same recipe, or for a calibrated one when
        the rows were calibrated on these samples, the same but for a ``calibration_size`` beyond their count."""
        count = len(self.samples)

        def plain(r: Any) -> Any:
            calibrated = r.spec.calibrated and self.calibrated_on_samples
            return dataclasses.replace(r, calibration_size=min(r.calibration_size, count)) if calibrated else r

        return next((run for run in self.runs if plain(run.converted.recipe) == plain(recipe)), None)

    def measured(self, recipe: Any) -> tuple[Any, Any, float | None, str]:
        """``(converted, fidelity, accuracy, error)`` of ``recipe`` on the samples, converted once (a recipe that is
        a row's: that row's figures)."""
        from .convert import QuantizationWarning, convert
        from .diagnose import QuantizationError

        key = recipe
        row = self.same_row(recipe)
        if key not in self._fixes and row is not None and row.fidelity is not None:
            self._fixes[key] = (row.converted, row.fidelity, row.fidelity.truth.get("accuracy"), "")
        if key not in self._fixes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", QuantizationWarning)
                    rep = self.samples.feed() if recipe.spec.calibrated else None
                    converted = convert(self.model, recipe, spec=self.spec, representative=rep)
                outputs = measure.outputs_of(converted, self.samples, self.spec)
                fid = self.reference.fidelity(outputs)
                self._fixes[key] = (converted, fid, fid.truth.get("accuracy") if fid else None, "")
            except (QuantizationError, RuntimeError, ValueError) as err:
                self._fixes[key] = (None, None, None, " ".join(str(err).split())[:200])
        return self._fixes[key]

    def fix(self, run: Any, candidates: list[Candidate]) -> tuple[Fix | None, list[dict]]:
        """Try ``candidates`` in order until one recovers the row; the chosen ``Fix`` and every one tried."""
        metric, before = metric_of(run)
        if not candidates:
            return None, []
        if not self.try_fixes:
            text, recipe, params = candidates[0]
            return Fix(text, recipe.name, params, metric, before, None), []
        tried, best = [], None
        for text, recipe, params in candidates:
            if self.same_row(recipe) is run:  # the row itself: it loses already
                continue
            converted, fid, accuracy, error = self.measured(recipe)
            after = None if fid is None else figure_of(fid, accuracy, metric)[1]
            fix = Fix(text + (f" (failed: {error})" if error else ""), recipe.name, params, metric, before, after)
            tried.append(fix.record())
            if after is None:
                continue
            if best is None or after > best.after:
                best = fix
            if self.recovers(metric, after, converted):
                return fix, tried
        qat = next((s.name for s in registry.specs() if s.needs_qat), None)
        if qat is None:
            return best, tried
        best_text = f" (best tried: {best.sentence().removeprefix('fix tried: ')})" if best is not None else ""
        return Fix(f"nothing post-training recovers the row{best_text}; train with quantization-aware training "
                   f"(train_qat) and convert with {qat!r}", qat, {}, metric, before, None), tried

    def recovers(self, metric: str, after: float, converted: Any) -> bool:
        outcome = converted.outcome
        if outcome.came_out_float or outcome.weights_unquantized:
            return False
        if metric == "accuracy":
            base = self.reference_run.result
            return base is not None and 100 * (base.accuracy - after) < LOSS_THRESHOLDS["accuracy_pts"]
        return after >= LOSS_THRESHOLDS[metric]

    def path(self, run: Any) -> tuple:
        """The cumulative and local error along the row's model (``error_path``), measured once per row."""
        key = ("path", run.name, id(run.converted))
        if key not in self._ranges:
            progress.phase("error path")
            self._ranges[key] = error_path(self.reference_run.converted, run.converted, self.samples, self.spec,
                                           size=min(self.rows, 100))
        return self._ranges[key]

    def keep_float(self, run: Any, point: Any) -> list[Candidate]:
        """The calibrated int8 recipe with the Keras layer where the error enters kept in float (selective
        quantization, the QuantizationDebugger's deny-list), when that layer can be named."""
        from .converters import name_segments
        from .keras_compat import is_keras3

        layers = [layer.name for layer in getattr(self.model, "layers", ())]
        target = registry.full_integer()
        if point is None or not layers or target is None:
            return []
        named = [layer for layer in layers if layer in name_segments(point.name, layers, is_keras3(self.model))]
        if len(named) != 1:
            return []
        size = min(len(self.samples), 500)
        recipe = registry.recipe(target.name, calibration_size=size, keep_float=(named[0],))
        return [(f"{target.name} with layer {named[0]!r} kept in float (where the error enters)", recipe,
                 {"calibration_size": size, "keep_float": [named[0]]})]

    def calibrated(self, run: Any) -> list[Candidate]:
        """The calibrated int8 recipe calibrated on these samples: the row's own parameters when the row is that
        recipe, else its float row's."""
        from .recipe_table import recipe_parameters
        from .sources import is_qat

        target = registry.full_integer()
        if target is None or is_qat(self.model):
            return []
        size = min(len(self.samples), 500)
        if run.name == target.name:
            recipe = dataclasses.replace(run.converted.recipe, calibration_size=size)
            params = {"calibration_size": size, "io_type": recipe.io_type}
        else:
            params = recipe_parameters(target.name, "float", size)
            recipe = registry.recipe(target.name, **params)
        return [(f"{target.name} calibrated on {size} of these inputs", recipe, params)]

    def ranges_fix(self, run: Any) -> list[Candidate]:
        """The row's recipe with default ranges from the float activations."""
        recipe = run.converted.recipe
        if not recipe.spec.takes("default_ranges") or not self.ranges():
            return []
        lo, hi = self.observed_range()
        return [(f"default_ranges ({lo:g}, {hi:g}) from the {self.percentile:g}th percentile of the float "
                 "activations", dataclasses.replace(recipe, default_ranges=(lo, hi)), {"default_ranges": [lo, hi]})]


def verdicts_of(context: Context, run: Any, why: str) -> list[Verdict]:
    """Every cause measured on ``run`` (a losing row), else one ``"unexplained"`` verdict."""
    found = []
    for cause in CAUSES:
        verdict = cause(context, run)
        if verdict is not None:
            found.append(verdict)
    speed_only = all("slower than" in part for part in why.split("; "))
    if speed_only:  # a row that loses only time: only time's cause
        found = [v for v in found if v.cause == "slow-kernels"]
    path = () if speed_only else context.path(run)
    point = entry(path)
    if not found:
        candidates = context.ranges_fix(run) + context.calibrated(run) + context.keep_float(run, point)
        fix, tried = context.fix(run, candidates)
        found.append(_verdict(run, "unexplained", f"{run.label} loses ({why}) and no cause measured here explains "
                                                  "it.", {}, fix, tried))
    metric, before = metric_of(run)
    where = {} if point is None else {"error_enters": point.record(), "error_path": [p.record() for p in path]}
    if point is not None and (point.snr_db < ENTRY_DB or found[0].cause == "unexplained"):
        # the row's first verdict says where the error enters, and whether that op makes it or inherits it
        found[0] = dataclasses.replace(found[0], sentence=f"{found[0].sentence} {entry_sentence(point)}")
    return [dataclasses.replace(v, record={"loss": why, "metric": metric, "before": before, **where, **v.record})
            for v in found]


def _verdict(run: Any, cause: str, sentence: str, record: dict, fix: Fix | None, tried: list) -> Verdict:
    return Verdict(run.name, cause, sentence, plain({**record, "fixes_tried": tried}), fix)


def came_out_float(context: Context, run: Any) -> Verdict | None:
    outcome = run.converted.outcome
    if not outcome.came_out_float:
        return None
    names = [short(t.name) for t in run.converted.info.tensors if t.is_activation and t.dtype == "float32"]
    why = outcome.sentences()[0]
    fix, tried = context.fix(run, context.ranges_fix(run) + context.calibrated(run))
    sentence = (f"{run.label} came out float: {len(names)} of {outcome.activations} activation tensors are float32 "
                f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); {why.removeprefix('came out float: ')}")
    return _verdict(run, "came-out-float", sentence, {"float_tensors": names, "activations": outcome.activations,
                                                      "why": why}, fix, tried)


def _clipped(context: Context, run: Any) -> tuple | None:
    """``(bounds, ranges, share outside, most clipped tensor)`` when the row's default ranges clip, else ``None``."""
    recipe, outcome = run.converted.recipe, run.converted.outcome
    bounds = recipe.default_ranges
    if bounds is None or outcome.came_out_float or outcome.source_has_fake_quant:
        return None
    ranges = context.ranges(tuple(bounds))
    if not ranges:
        return None
    total = sum(r.count for r in ranges)
    share = sum(r.outside * r.count for r in ranges) / max(total, 1)
    worst = max(ranges, key=lambda r: r.outside)
    if share < CAUSE_THRESHOLDS["clipped"] and worst.outside < CAUSE_THRESHOLDS["clipped_tensor"]:
        return None
    return bounds, ranges, share, worst


def default_ranges_clip(context: Context, run: Any) -> Verdict | None:
    clipped = _clipped(context, run)
    if clipped is None:
        return None
    bounds, ranges, share, worst = clipped
    span = (min(r.min for r in ranges), max(r.max for r in ranges))
    fix, tried = context.fix(run, context.ranges_fix(run) + context.calibrated(run))
    sentence = (f"default_ranges ({bounds[0]:g}, {bounds[1]:g}) clip the activations: {100 * share:.1f} % of the "
                f"float model's activation values on {context.rows} inputs lie outside [{bounds[0]:g}, {bounds[1]:g}] "
                f"(they span [{span[0]:.3g}, {span[1]:.3g}]); the most clipped tensor is {short(worst.name)} "
                f"({100 * worst.outside:.1f} % outside, spanning [{worst.min:.3g}, {worst.max:.3g}]).")
    return _verdict(run, "default-ranges-clip", sentence,
                    {"default_ranges": list(bounds), "share_outside": share, "span": list(span),
                     "worst_tensor": short(worst.name), "inputs": context.rows,
                     "tensors": [r.record() for r in ranges]}, fix, tried)


def _input_codes(context: Context, run: Any) -> dict[str, Any] | None:
    """How the row's uint8 input codes the samples (``_codes``) when the stats it reads them with clip them or leave
    codes unused (the stats asked for, or the learned range that overrides them), else ``None``."""
    converted = run.converted
    effective, outcome = converted.effective_stats, converted.outcome
    if effective is None or outcome.came_out_float:
        return None
    right = context.spec.stats
    if (not outcome.stats_ignored and abs(effective.mean - right.mean) <= 0.5
            and abs(effective.std - right.std) <= 1e-3 * right.std):
        return None
    measured = _codes(context, effective)
    return measured if _codes_lose(measured) else None


def input_stats(context: Context, run: Any) -> Verdict | None:
    converted = run.converted
    measured = None if converted.outcome.stats_ignored else _input_codes(context, run)
    if measured is None:
        return None
    effective, right = converted.effective_stats, context.spec.stats
    candidates = []
    if converted.recipe.spec.takes("mean"):
        candidates.append((f"mean={right.mean:g}, std={right.std:g} from the input range "
                           f"[{context.spec.lo:g}, {context.spec.hi:g}]",
                           dataclasses.replace(converted.recipe, mean=right.mean, std=right.std),
                           {"mean": right.mean, "std": right.std}))
    fix, tried = context.fix(run, candidates + context.calibrated(run))
    return _verdict(run, "input-stats", f"the input stats {_stats_words(effective, measured)}",
                    {**measured, "right_stats": [right.mean, right.std]}, fix, tried)


def stats_ignored(context: Context, run: Any) -> Verdict | None:
    outcome = run.converted.outcome
    if not outcome.stats_ignored:
        return None
    asked, read = outcome.requested_stats, outcome.effective_stats
    measured = _input_codes(context, run)
    if measured is None:
        return None  # the learned range fits the inputs: not this row's loss
    qat = [s for s in registry.specs() if s.needs_qat and s.name != run.name and "float32" in s.io_types]
    candidates = [(f"{qat[0].name} with float input (the model quantizes the input with its own learned range)",
                   registry.recipe(qat[0].name, io_type="float32"), {"io_type": "float32"})] if qat else []
    fix, tried = context.fix(run, candidates)
    sentence = (f"the model learned its input range in QAT and ignores the mean={asked.mean:g}, std={asked.std:g} "
                f"asked for: {_stats_words(read, measured)}")
    return _verdict(run, "stats-ignored", sentence, {**measured, "requested": [asked.mean, asked.std]}, fix, tried)


def saturated(context: Context, run: Any) -> Verdict | None:
    if (run.converted.outcome.came_out_float or _clipped(context, run) is not None
            or _input_codes(context, run) is not None):
        return None  # default ranges that clip, or input codes that do, are the cause: saturation is their symptom
    tensors = saturation(run.converted, context.samples, context.spec, size=context.size)
    if not tensors:
        return None
    worst = max(tensors, key=lambda t: t.share)
    if worst.share < CAUSE_THRESHOLDS["saturated"]:
        return None
    total = sum(t.share * t.count for t in tensors) / max(sum(t.count for t in tensors), 1)
    fix, tried = context.fix(run, context.ranges_fix(run) + context.calibrated(run))
    sentence = (f"{run.label} saturates: {100 * worst.share:.1f} % of the values of {short(worst.name)} sit at its "
                f"{worst.dtype} minimum or maximum on {context.rows} inputs ({100 * total:.2f} % over every integer "
                "activation).")
    return _verdict(run, "saturation", sentence, {"worst_tensor": short(worst.name), "share": worst.share,
                                                  "tensors": [t.record() for t in tensors]}, fix, tried)


def ops_left_float(context: Context, run: Any) -> Verdict | None:
    outcome = run.converted.outcome
    if outcome.came_out_float or not outcome.ops_left_float or outcome.kept_float:
        return None
    ops = list(dict.fromkeys(outcome.ops_left_float))
    fix, tried = context.fix(run, context.calibrated(run))
    sentence = (f"{len(outcome.ops_left_float)} op(s) of {run.label} write float activations in an integer model "
                f"({', '.join(ops)}): each converts between float and integer around it.")
    return _verdict(run, "ops-left-float", sentence, {"ops": list(outcome.ops_left_float)}, fix, tried)


def weights_unquantized(context: Context, run: Any) -> Verdict | None:
    outcome = run.converted.outcome
    if not outcome.weights_unquantized:
        return None
    fix, tried = context.fix(run, context.calibrated(run))
    return _verdict(run, "weights-unquantized", outcome.sentences()[-1], {"largest_weight": outcome.largest_weight,
                    "min_weight_elements": run.converted.recipe.spec.min_weight_elements}, fix, tried)


def per_channel_on_uint8(context: Context, run: Any) -> Verdict | None:
    from .diagnose import entry

    tensors = run.converted.outcome.per_channel_on_uint8
    if not tensors:
        return None
    fix = Fix(entry("per-channel-on-uint8").fix, run.name, {}, metric_of(run)[0], metric_of(run)[1], None)
    return _verdict(run, "per-channel-on-uint8", f"{len(tensors)} uint8 weight tensor(s) of {run.label} have "
                    f"per-channel scales ({', '.join(tensors[:3])}), which the uint8 kernels do not take.",
                    {"tensors": list(tensors)}, fix, [])


def slow_kernels(context: Context, run: Any) -> Verdict | None:
    from .verdicts import speed_of

    speed, base = speed_of(run), speed_of(context.reference_run)
    if "int16" not in run.converted.activation_dtypes or not speed or not base \
            or base / speed < LOSS_THRESHOLDS["slower"]:
        return None
    tried, fix = [], None
    for text, recipe, params in context.calibrated(run):
        converted, fid, _, error = context.measured(recipe)
        after = fid.count / fid.seconds if fid is not None and fid.seconds else None
        fix = Fix(text + (f" (failed: {error})" if error else ""), recipe.name, params, "images_per_s", speed, after)
        tried.append(fix.record())
    sentence = (f"{run.label} runs {speed:,.0f} inputs/s against {base:,.0f} for {context.reference_run.name} "
                f"({base / speed:.0f}x slower): LiteRT runs int16 activations on its reference kernels, without "
                "the optimized (XNNPack) ones.")
    return _verdict(run, "slow-kernels", sentence, {"images_per_s": speed, "reference_images_per_s": base}, fix,
                    tried)


CAUSES: tuple[Callable[[Context, Any], Verdict | None], ...] = (
    came_out_float, stats_ignored, input_stats, default_ranges_clip, saturated, ops_left_float, weights_unquantized,
    per_channel_on_uint8, slow_kernels)


def short(name: str) -> str:
    """A tensor's name without the names the converter fused into it (``a;b;c`` -> ``a``)."""
    return name.split(";")[0]


def _codes(context: Context, stats: Any) -> dict[str, Any]:
    """How ``stats`` code these samples: pixels fed as bytes (``code_usage`` against the input range), or real
    values quantized with them (``value_codes``)."""
    samples, spec = context.samples, context.spec
    if samples.is_images:
        usage = code_usage(stats, (spec.lo, spec.hi), samples.images)
        return {"kind": "pixels", "stats": [stats.mean, stats.std], "code_range": list(usage.code_range),
                "input_range": [spec.lo, spec.hi], "clipped": usage.clipped_fraction,
                "unused": usage.wasted_codes / 256}
    values = np.concatenate([a.reshape(-1) for a in samples.inputs if a.dtype != np.uint8])
    codes = value_codes(stats, values)
    return {"kind": "values", "stats": [stats.mean, stats.std], "code_range": list(codes.code_range),
            "data_range": list(codes.data_range), "clipped": codes.clipped, "unused": codes.unused}


def _codes_lose(measured: dict[str, Any]) -> bool:
    return (measured["clipped"] >= CAUSE_THRESHOLDS["input_clipped"]
            or measured["unused"] >= CAUSE_THRESHOLDS["unused_codes"])


def _stats_words(stats: Any, measured: dict[str, Any]) -> str:
    lo, hi = measured["code_range"]
    head = f"mean={stats.mean:g}, std={stats.std:g} make the 256 input codes stand for [{lo:.3g}, {hi:.3g}]"
    if measured["kind"] == "pixels":
        a, b = measured["input_range"]
        return (f"{head} while the model was trained on [{a:g}, {b:g}]: {100 * measured['clipped']:.1f} % of the "
                f"input pixels are read as values outside [{a:g}, {b:g}] and {100 * measured['unused']:.1f} % of the "
                "codes stand for values training never produced.")
    a, b = measured["data_range"]
    return (f"{head} while the data span [{a:.3g}, {b:.3g}]: {100 * measured['clipped']:.1f} % of the input values "
            f"clip at code 0 or 255 and {100 * measured['unused']:.1f} % of the 256 codes are never used.")
