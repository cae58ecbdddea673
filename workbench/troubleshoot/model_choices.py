"""Troubleshooting gallery, cases 7-11: shapes, recipes, LSTMs, bit widths, selective quantization.

Same contract as ``gallery``: each function reproduces, fixes, measures and
returns a ``CaseResult``.
"""

from __future__ import annotations

import numpy as np

from ..core import checks, litert
from ..core.converters import Job
from ..core.data import InputSpec, Mnist
from ..core.train import QatConfig, TrainConfig, trained_lenet
from .casework import (CaseResult, GalleryConfig, convert_case, failure_text, tf_version, attempt, kernel_table, keras_row,
                      measure)
from .variants import build, trained_variant


# --- 7. dynamic shapes ---------------------------------------------------------------------------

def dynamic_shape(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """A model declared with (None, None, 1) input; the fix is a fixed-shape copy with the same weights."""
    dynamic = trained_variant("any-size", data, cfg.train())
    _, error = attempt(lambda: convert_case(dynamic, "float32", data, cfg))
    converted, converter_error = attempt(lambda: _converter_only(dynamic, "float32"))
    _, legacy_error = attempt(lambda: convert_case(dynamic, "legacy-uint8", data, cfg, default_ranges=(0.0, 6.0)))
    fixed = build("fixed-size")
    fixed.set_weights(dynamic.get_weights())
    rows = [keras_row("dynamic Keras", dynamic, data, cfg),
            measure("fixed 28x28 -> float32", convert_case(fixed, "float32", data, cfg), data, cfg),
            measure("fixed 28x28 -> int8", convert_case(fixed, "int8-ptq", data, cfg), data, cfg)]
    failure = failure_text(error, "the dynamic model converted and ran")
    if converter_error is not None:
        where = f"the TF {tf_version()} converter refused the None dimensions ({converter_error.key or 'unexplained'})"
    else:
        shape = list(litert.read_model(converted).inputs[0].shape)
        runtime = "failed to prepare the model at that size" if error else "ran it"
        where = (f"the TF {tf_version()} converter accepted the None dimensions; the interpreter's default input "
                 f"shape is {shape}, and LiteRT {runtime}")
    notes = (f"{where} (TOCO, in the old threads, refused at conversion: "
             "'None is only supported in the 1st dimension').",
             f"legacy uint8 path: {legacy_error.key if legacy_error else 'ran'}")
    return CaseResult(7, "dynamic shapes", failure, error.diagnosis if error else None, tuple(rows), notes)


def _converter_only(model, recipe: str) -> bytes:
    """The converter's bytes for ``model``, without ``convert``'s check that LiteRT can prepare them."""
    from ..core.recipes import recipe as make_recipe

    chosen = make_recipe(recipe)
    return chosen.spec.adapter(Job(model, chosen))


# --- 8. dynamic range vs full integer ------------------------------------------------------------

def dynamic_range_vs_integer(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """The old ``post_training_quantize`` (dynamic range) against full integer: kernels, size, accuracy, speed."""
    model = trained_lenet(data, cfg.train())
    rows, notes = [keras_row("float Keras", model, data, cfg)], []
    for recipe in ("float32", "dynamic-range", "int8-ptq"):
        converted = convert_case(model, recipe, data, cfg)
        table = kernel_table(converted)
        kinds = {k: sum(1 for r in table if r["kernel"] == k) for k in sorted({r["kernel"] for r in table})}
        rows.append(measure(recipe, converted, data, cfg, **{f"ops {k}": v for k, v in kinds.items()}))
        notes.append(f"{recipe}: " + ", ".join(f"{r['op']} {r['kernel']}" for r in table))
    dynamic, full = rows[2], rows[3]
    failure = (f"dynamic-range: {dynamic['float_activations']} float activations "
               f"(int8-ptq: {full['float_activations']}, float32: {rows[1]['float_activations']})")
    return CaseResult(8, "dynamic range vs full integer", failure, None, tuple(rows), tuple(notes))


# --- 9. LSTM on MNIST rows ----------------------------------------------------------------------

def evaluate_stateful(model, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec()) -> float:
    """Accuracy of a batch-1 model run one image per invoke, with its state variables reset each time.

    A fused TFLite LSTM keeps its state in variable tensors that persist between
    invokes; without ``reset_all_variables()`` each image starts from the last one's state.
    """
    images = checks.images("images", images)
    scores = litert.run(model, images, spec, batch_size=1, reset_variables=True).outputs
    return float(np.mean(scores.argmax(axis=1) == np.asarray(labels)[:len(images)]))


def lstm(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """LSTM over 28 rows of 28 pixels: float vs dynamic range vs int8 PTQ, and what refuses."""
    from ..core.keras_compat import keras

    config = TrainConfig(epochs=cfg.lstm_epochs, train_size=cfg.lstm_train_size)
    trained = trained_variant("lstm", data, config)
    _, error = attempt(lambda: convert_case(trained, "float32", data, cfg))
    fixed_in = keras.Input((28, 28, 1), batch_size=1, name="image")
    fresh = build("lstm")
    x = fixed_in
    for layer in fresh.layers[1:]:
        x = layer(x)
    fixed = keras.Model(fixed_in, x, name="lstm_rows_batch1")
    fixed.set_weights(trained.get_weights())
    n = min(cfg.lstm_eval_size, cfg.eval_size)
    images, labels = data.test_images[:n], data.test_labels[:n]
    small = GalleryConfig(**{**cfg.__dict__, "eval_size": n})
    rows = [keras_row("LSTM Keras", trained, data, small)]
    for recipe in ("float32", "dynamic-range", "int8-ptq"):
        converted = convert_case(fixed, recipe, data, cfg)
        rows.append({"variant": recipe, "accuracy": evaluate_stateful(converted, images, labels),
                     "size_kb": round(converted.size_kb, 1), "ops": " ".join(converted.ops)})
    float_model = convert_case(fixed, "float32", data, cfg)
    rows.append({"variant": "float32, state not reset (batched evaluate)",
                 "accuracy": _accuracy_without_reset(float_model, images, labels)})
    refused = []
    for recipe, params in (("int16x8", {}), ("legacy-uint8", {"default_ranges": (-1.0, 1.0)})):
        _, err = attempt(lambda: convert_case(fixed, recipe, data, cfg, **params))
        refused.append(f"{recipe}: {'converted' if err is None else (err.key or str(err.diagnosis.original)[:120])}")
    failure = failure_text(error, "the batch-None LSTM converted")
    return CaseResult(9, "LSTM on MNIST rows", failure, error.diagnosis if error else None, tuple(rows),
                      tuple(refused))


def _accuracy_without_reset(model, images: np.ndarray, labels: np.ndarray) -> float:
    scores = litert.run(model, images, batch_size=1, reset_variables=False).outputs  # the state carried over
    return float(np.mean(scores.argmax(axis=1) == np.asarray(labels)[:len(images)]))


# --- 10. 4-bit -----------------------------------------------------------------------------------

def four_bit(data: Mnist, cfg: GalleryConfig = GalleryConfig()) -> CaseResult:
    """QAT simulated at 4 bits vs 8 bits, and what the converter and runtime do with it."""
    rows, errors = [], {}
    for bits in (8, 4):
        for scheme, recipe in (("int8", "qat-int8"), ("uint8-legacy", "legacy-uint8")):
            model = trained_lenet(data, cfg.train(), QatConfig(scheme, bits=bits))
            row = {"variant": f"{bits}-bit QAT ({scheme}) Keras",
                   "keras_accuracy": keras_row("", model, data, cfg)["accuracy"]}
            converted, err = attempt(lambda: convert_case(model, recipe, data, cfg))
            row["converts"] = err is None
            if converted is not None:
                row.update(measure("", converted, data, cfg, weight_levels=_max_levels(converted)))
                row["variant"] = f"{bits}-bit QAT ({scheme}) -> {recipe}"
            else:
                errors[(bits, scheme)] = err
            rows.append(row)
    first = next(iter(errors.values()), None)
    failure = failure_text(first, "4-bit QAT models converted")
    return CaseResult(10, "4-bit", failure, first.diagnosis if first else None, tuple(rows), _bits_notes(rows, errors))


def _bits_notes(rows: list[dict], errors: dict) -> tuple[str, ...]:
    notes = []
    for bits in (8, 4):
        mine = [r for r in rows if r["variant"].startswith(f"{bits}-bit")]
        done = [r for r in mine if r["converts"]]
        refused = [f"{scheme} ({err.key or 'unexplained'})" for (b, scheme), err in errors.items() if b == bits]
        text = f"{bits}-bit QAT: {len(done)} of {len(mine)} models converted"
        if done:
            text += f", their weight tensors use at most {max(r['weight_levels'] for r in done)} distinct values"
        if refused:
            text += "; refused: " + ", ".join(refused)
        if not done:
            text += "; its numbers are the Keras model's simulated accuracy only"
        notes.append(text + ".")
    return tuple(notes)


def _max_levels(model) -> int:
    """The most distinct values any weight tensor of a converted model uses."""
    return max((len(np.unique(litert.constant(model, t.index))) for t in model.info.tensors
                if t.producer is None and t.dtype in ("int8", "uint8") and len(t.shape) > 1), default=0)


# --- 11. keeping one layer float -----------------------------------------------------------------

def selective(data: Mnist, cfg: GalleryConfig = GalleryConfig(), layer: str | None = None) -> CaseResult:
    """Full int8 vs int8 with one layer kept float (the worst per the QuantizationDebugger when ``layer=None``)."""
    from .layer_error import debugger_statistics, suggest_float_layers

    model = trained_lenet(data, cfg.train())
    if layer is None:
        stats = debugger_statistics(model, data.train_images[: cfg.calibration_size])
        layer = suggest_float_layers(stats, model, count=1)[0]
    full = convert_case(model, "int8-ptq", data, cfg)
    kept = convert_case(model, "int8-ptq", data, cfg, keep_float=(layer,))
    rows = [keras_row("float Keras", model, data, cfg),
            measure("float32", convert_case(model, "float32", data, cfg), data, cfg),
            measure("int8 (all layers)", full, data, cfg),
            measure(f"int8, {layer} kept float", kept, data, cfg, kept_float=layer)]
    return CaseResult(11, "keeping one layer float", f"kept {layer} float", None, tuple(rows), (
        f"Keeping {layer} float adds {kept.size_kb - full.size_kb:+.1f} KB and "
        f"{rows[3]['float_activations'] - rows[2]['float_activations']} float activations.",))


CASES = ("lacking_min_max", "wrong_mean_std", "batchnorm", "no_quantized_kernel", "per_channel_on_uint8",
         "raw_outputs", "dynamic_shape", "dynamic_range_vs_integer", "lstm", "four_bit", "selective")
