"""The troubleshooting gallery: each forum failure reproduced, explained, fixed and measured.

Every case function trains (or loads from the cache) the small models it needs,
makes the failure happen with the real converter and runtime, applies the fix
and returns a ``CaseResult``: the observed failure, its diagnosis from the
catalog, one row per variant measured, and notes stating what was seen.
Nothing here is asserted from memory: the rows are what TF 2.21 and LiteRT did,
and every note is built from values measured in the same run (op counts, the
dtypes ops read, whether a conversion succeeded, paired tests of accuracy
differences at equal training budgets), so it cannot claim more than the run
showed. History (what TOCO did) is labelled as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import diagnose, checks
from ..core.data import InputSpec, Mnist
from ..core.evaluate import evaluate, evaluate_keras
from ..core.stats import stats_for_range
from ..core.compare import paired
from ..core.train import QatConfig, fine_tuned_lenet, trained_lenet
from .casework import (CaseResult, GalleryConfig, attempt, convert_case, count_ops, failure_text, islands_text,
                       keras_row, measure, ops_by_input_dtype, refused, tf_version, written_dtypes)
from .variants import build, trained_variant


# --- 1. lacking min/max --------------------------------------------------------------------------

def lacking_min_max(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """A float model down the uint8 path: it silently comes out float; fixes: QAT or default ranges.

    Rows carry their training budget (``epochs``). The QAT fix trained one more epoch than the float
    model, so it is tested against the float model trained that same extra epoch ("float Keras, same
    budget"), and the default-range fix against its own float model (paired notes, ``core.compare``).
    """
    float_model = trained_lenet(data, cfg.train())
    qat_config = QatConfig("uint8-legacy")
    qat = trained_lenet(data, cfg.train(), qat_config)
    same_budget = fine_tuned_lenet(data, cfg.train(), epochs=qat_config.epochs)
    budget, qat_budget = cfg.epochs, cfg.epochs + qat_config.epochs
    plain = convert_case(float_model, "legacy-uint8", data, cfg)
    rows = [keras_row("float Keras", float_model, data, cfg, epochs=budget),
            measure("float -> uint8, no ranges", plain, data, cfg, epochs=budget)]
    ranged = {}
    for lo, hi in ((0.0, 6.0), (-1.0, 1.0), (0.0, 20.0)):
        ranged[(lo, hi)] = convert_case(float_model, "legacy-uint8", data, cfg, default_ranges=(lo, hi))
        rows.append(measure(f"float -> uint8, default_ranges=({lo:g},{hi:g})", ranged[(lo, hi)], data, cfg,
                            epochs=budget))
    qat_uint8 = convert_case(qat, "legacy-uint8", data, cfg)
    rows.append(keras_row("float Keras, same budget as QAT", same_budget, data, cfg, epochs=qat_budget))
    rows.append(measure("QAT (per-tensor) -> uint8", qat_uint8, data, cfg, epochs=qat_budget))
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    float_pred = evaluate_keras(float_model, images, labels).predictions
    same_pred = evaluate_keras(same_budget, images, labels).predictions
    ranged_test = paired(float_pred, evaluate(ranged[(0.0, 6.0)], images, labels).predictions, labels)
    qat_test = paired(same_pred, evaluate(qat_uint8, images, labels).predictions, labels)
    warning = plain.warnings[0] if plain.warnings else "no warning"
    return CaseResult(1, "lacking min/max data", warning, diagnose.explain(warning), tuple(rows), (
        f"TF {tf_version()}'s v1 converter does not stop with 'lacking min/max data' as TOCO did: it returned a model "
        f"of {plain.size_kb:.0f} KB with {rows[1]['float_activations']} float32 activations.",
        f"default_ranges=(0,6) against its float model ({budget} epoch{'s' if budget != 1 else ''} each, "
        f"{len(labels):,} test images): {ranged_test.summary()}.",
        f"QAT -> uint8 against the float model trained the same {qat_budget} epochs: {qat_test.summary()}. "
        f"Compare QAT only with that row: the plain float model trained {qat_budget - budget} epoch"
        f"{'s' if qat_budget - budget != 1 else ''} less."))


# --- 2. wrong mean/std ---------------------------------------------------------------------------

SPEC_RANGES: tuple[tuple[float, float], ...] = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))


def wrong_mean_std(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """QAT models trained on [0,1], [-1,1] and [0,255], each converted with every range's mean/std."""
    rows = []
    for lo, hi in SPEC_RANGES:
        spec = InputSpec(lo, hi)
        model = trained_lenet(data, cfg.train(spec), QatConfig("uint8-legacy"))
        for s_lo, s_hi in SPEC_RANGES:
            stats = stats_for_range(s_lo, s_hi)
            mean, std = stats.mean + 0.0, stats.std  # + 0.0 turns -0.0 into 0.0 for display
            converted = convert_case(model, "legacy-uint8", data, cfg, spec=spec, mean=mean, std=std)
            rows.append(measure(f"trained [{lo:g},{hi:g}], stats ({abs(mean):g},{std:g})", converted,
                                data, cfg, trained_on=f"[{lo:g},{hi:g}]", mean=abs(mean), std=std,
                                correct=(s_lo, s_hi) == (lo, hi)))
    worst = min(rows, key=lambda r: r["accuracy"])
    rule = ", ".join(f"[{r['trained_on'][1:-1]}] -> ({r['mean']:g}, {r['std']:g})" for r in rows if r["correct"])
    return CaseResult(2, "wrong mean/std", f"accuracy {worst['accuracy']:.1%} with {worst['variant']}", None,
                      tuple(rows), (f"mean = the byte that means 0.0; std = 255 / (hi - lo): {rule}.",))


# --- 3. BatchNorm in QAT -------------------------------------------------------------------------

def batchnorm(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """Conv->BN->ReLU folds and quantizes; Conv->ReLU->BN does not fold: what tells them apart."""
    rows = []
    folded = trained_variant("lenet-bn", data, cfg.train())
    qat = trained_variant("lenet-bn", data, cfg.train(), QatConfig("int8"))
    rows.append(keras_row("Conv->BN->ReLU float", folded, data, cfg))
    for label, model, recipe in (("Conv->BN->ReLU QAT -> int8", qat, "qat-int8"),
                                 ("Conv->BN->ReLU PTQ -> int8", folded, "int8-ptq")):
        c = convert_case(model, recipe, data, cfg)
        rows.append(measure(label, c, data, cfg, mul_add_ops=count_ops(c, "MUL", "ADD")))
    legacy_qat = trained_variant("lenet-bn", data, cfg.train(), QatConfig("uint8-legacy"))
    legacy = convert_case(legacy_qat, "legacy-uint8", data, cfg)
    rows.append(measure("Conv->BN->ReLU QAT -> legacy uint8", legacy, data, cfg,
                        mul_add_ops=count_ops(legacy, "MUL", "ADD")))
    unfolded = trained_variant("lenet-bn-after-relu", data, cfg.train())
    rows.append(keras_row("Conv->ReLU->BN float", unfolded, data, cfg))
    _, error = attempt(lambda: trained_variant("lenet-bn-after-relu", data, cfg.train(), QatConfig("int8")))
    c = convert_case(unfolded, "int8-ptq", data, cfg)
    rows.append(measure("Conv->ReLU->BN PTQ -> int8", c, data, cfg, mul_add_ops=count_ops(c, "MUL", "ADD")))
    failure = failure_text(error, "tfmot quantized the unfoldable layout")
    folded_qat, folded_ptq = rows[1]["mul_add_ops"], rows[2]["mul_add_ops"]
    bn_layers = sum(1 for layer in unfolded.layers if type(layer).__name__ == "BatchNormalization")
    muls, adds = count_ops(c, "MUL"), count_ops(c, "ADD")
    return CaseResult(3, "BatchNorm in QAT", failure, error.diagnosis if error else None, tuple(rows), (
        f"Folded (Conv->BN->ReLU): {folded_qat} MUL/ADD ops after QAT -> int8, {folded_ptq} after PTQ -> int8"
        + ("; the BN lives inside CONV_2D's weights and bias." if folded_qat == folded_ptq == 0
           else "; some BN arithmetic stayed as separate ops."),
        f"Not folded (Conv->ReLU->BN): tfmot {refused(error, 'QAT')}; PTQ -> int8 keeps {muls} MUL and {adds} ADD "
        f"ops for {bn_layers} BatchNormalization layers"
        + (" (a MUL and an ADD per BN)" if muls == adds == bn_layers else "")
        + f", writing {written_dtypes(c, 'MUL', 'ADD')}.",
        f"Legacy uint8 path on the folded QAT model: {rows[3]['float_activations']} activations stayed float; "
        f"{islands_text(legacy)}.",))


# --- 4. ops with no quantized kernel -------------------------------------------------------------

def no_quantized_kernel(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """The instance-norm block and a tf.cast on the uint8 and int8 paths; rewrite or keep float."""
    inorm = trained_variant("instance-norm", data, cfg.train())
    rows = [keras_row("instance norm float", inorm, data, cfg)]
    _, error = attempt(lambda: convert_case(inorm, "legacy-uint8", data, cfg, default_ranges=(-6.0, 6.0)))
    int8 = convert_case(inorm, "int8-ptq", data, cfg)
    rows.append(measure("instance norm -> int8", int8, data, cfg, ops=" ".join(sorted(set(int8.ops)))))
    kept = convert_case(inorm, "int8-ptq", data, cfg, keep_float=("inorm1",))
    rows.append(measure("instance norm -> int8, inorm1 kept float", kept, data, cfg))
    rewritten = build("instance-norm-rewritten")
    rewritten.set_weights(inorm.get_weights())
    rw = convert_case(rewritten, "float32", data, cfg)
    plain = convert_case(inorm, "float32", data, cfg)
    cast = trained_variant("cast", data, cfg.train())
    rows.append(keras_row("tf.cast float", cast, data, cfg))
    cast_int8 = convert_case(cast, "int8-ptq", data, cfg)
    rows.append(measure("tf.cast -> int8", cast_int8, data, cfg, cast_ops=count_ops(cast_int8, "CAST")))
    cast_row = rows[-1]
    cast_legacy = convert_case(cast, "legacy-uint8", data, cfg, default_ranges=(0.0, 6.0))
    rows.append(measure("tf.cast -> uint8, default_ranges=(0,6)", cast_legacy, data, cfg))
    no_cast = _without(cast, "pixel_cast")
    rows.append(measure("cast removed -> int8", convert_case(no_cast, "int8-ptq", data, cfg), data, cfg))
    failure = failure_text(error, "the uint8 conversion of the instance norm ran")
    reads = ops_by_input_dtype(int8)
    return CaseResult(4, "ops with no quantized kernel", failure, error.diagnosis if error else None, tuple(rows), (
        f"The converter already rewrites the block: ops {sorted(set(plain.ops))}; written with rsqrt by hand "
        f"the op list is {'identical' if plain.ops == rw.ops else 'different: ' + str(sorted(set(rw.ops)))}.",
        "int8, the dtype each op reads: " + "; ".join(f"{dtype}: {', '.join(ops)}" for dtype, ops in reads.items())
        + ("; every op between QUANTIZE and DEQUANTIZE runs an int8 kernel." if set(reads) == {"int8"} else "."),
        f"tf.cast: the int8 converter returned a model with {cast_row['cast_ops']} CAST ops and "
        f"{cast_row['float_activations']} float activations; {islands_text(cast_int8)}.",))


def _without(model: Any, layer_name: str) -> Any:
    """A copy of a single-chain Keras model with one (weightless) layer skipped."""
    from ..core.keras_compat import keras

    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:
        if layer.name != layer_name:
            x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_without_{layer_name}")


# --- 5. per-channel QAT weights on the uint8 path ------------------------------------------------

def per_channel_on_uint8(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """tfmot's default (per-channel) QAT model down the uint8 path; fixes: per-tensor QAT or int8."""
    per_channel = trained_lenet(data, cfg.train(), QatConfig("int8"))
    per_tensor = trained_lenet(data, cfg.train(), QatConfig("uint8-legacy"))
    _, error = attempt(lambda: convert_case(per_channel, "legacy-uint8", data, cfg))
    rows = [keras_row("per-channel QAT Keras", per_channel, data, cfg),
            measure("per-tensor QAT -> legacy uint8", convert_case(per_tensor, "legacy-uint8", data, cfg), data, cfg),
            measure("per-channel QAT -> int8", convert_case(per_channel, "qat-int8", data, cfg), data, cfg)]
    failure = failure_text(error, "the per-channel model ran on the uint8 path")
    return CaseResult(5, "per-channel QAT weights on the uint8 path", failure,
                      error.diagnosis if error else None, tuple(rows))


# --- 6. uint8 outputs that look like [15 0 0 0] ---------------------------------------------------

def raw_outputs(data: Mnist, cfg: GalleryConfig = GalleryConfig(), count: int = 5) -> CaseResult:
    """Raw quantized outputs vs outputs dequantized with the output's scale and zero point."""
    from ..core import litert

    count = checks.number("count", count, low=1, high=cfg.eval_size, integer=True)
    qat = trained_lenet(data, cfg.train(), QatConfig("uint8-legacy"))
    reference = np.asarray(qat.predict(InputSpec().normalize(data.test_images[:count]), verbose=0))
    rows, notes = [], []
    for label, converted in (("legacy uint8", convert_case(qat, "legacy-uint8", data, cfg)),
                             ("int8 with int8 I/O", convert_case(
                                 trained_lenet(data, cfg.train(), QatConfig("int8")), "qat-int8", data, cfg,
                                 io_type="int8"))):
        outcome = litert.run(converted, data.test_images[:count], batch_size=None)
        raw, real = outcome.raw, outcome.outputs
        rows.append({"variant": label, "dtype": str(raw.dtype), "scale": converted.output.scale,
                     "zero_point": converted.output.zero_point, "raw_first": str(raw[0].tolist()),
                     "raw_row_sum": float(raw[0].astype(np.float64).sum()),
                     "dequantized_row_sum": float(real[0].sum()),
                     "max_abs_error_raw": float(np.abs(raw.astype(np.float32) - reference).max()),
                     "max_abs_error_dequantized": float(np.abs(real - reference).max()),
                     "same_argmax": bool(np.array_equal(raw.argmax(1), real.argmax(1)))})
        notes.append(f"{label}: raw {raw[0].tolist()} -> {np.round(real[0], 3).tolist()}")
    legacy = rows[0]
    return CaseResult(6, "uint8 outputs that look like [15 0 0 0]", legacy["raw_first"], None, tuple(rows), (
        f"real = scale * (q - zero_point); the legacy uint8 softmax output has scale {legacy['scale']:.6g} "
        f"(1/{1 / legacy['scale']:.0f}) and zero point {legacy['zero_point']}, so its raw bytes sum to "
        f"{legacy['raw_row_sum']:.0f} where the probabilities sum to {legacy['dequantized_row_sum']:.3f}.",
        *notes))
