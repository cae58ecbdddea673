"""Every recipe of the registry tried on a model that reads float arrays (a sequence model), each failure explained.

``convert``'s calibrated recipes take uint8 images and normalise them for calibration; a model that
reads float sequences ``(N, T, F)`` has no images. ``probe_recipes`` tries each recipe through
``convert`` first; where a calibrated recipe refuses float data there, it calibrates the same
converter (TF2's with the recipe's options, or ai-edge-quantizer's) on the float arrays directly and
says so in the row's ``path``. Each model that converts is run with LiteRT, one input per invoke with
the state variables reset (a fused LSTM keeps its state between invokes), and scored against the
labels when there are labels. Every failure keeps its exact message and its catalogue entry
(``diagnose.explain``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import diagnose, litert, native_log
from .recipes import get as recipe_spec, names as recipe_names

# What each recipe is given beyond the model, where it needs more than its defaults.
PARAMS: dict[str, dict[str, Any]] = {"legacy-uint8": {"default_ranges": (-1.0, 1.0)}}


def probe_recipes(model: Any, inputs: np.ndarray, labels: np.ndarray | None = None,
                  recipes: tuple[str, ...] | None = None, calibration: int = 100) -> list[dict[str, Any]]:
    """One row per recipe: did it convert, does LiteRT run it, its ops, accuracy, and the exact message if not.

    Args:
        model: a tf_keras model reading float arrays (e.g. ``sequence_example``'s, batch 1).
        inputs: float32 ``(N, ...)`` as the model reads them.
        labels: integer classes ``(N,)`` (optional): adds ``accuracy``.
        recipes: which recipes (default: every registered one).
        calibration: inputs used to calibrate the calibrated recipes.

    Returns:
        Dicts with ``recipe``, ``path`` (``"convert"`` or how it was converted instead), ``converts``,
        ``runs``, ``ops``, ``float_ops`` (in a recipe meant to give integer activations: the ops that still
        write float ones, e.g. an LSTM a quantizer left float), ``accuracy``, ``message`` (the first
        failure's exact text) and ``key`` (its catalogue entry, ``None`` when the catalogue has none).
    """
    from .convert import Outcome
    from .recipes import Recipe

    inputs = np.asarray(inputs, np.float32)
    rows = []
    for name in recipes or recipe_names():
        row: dict[str, Any] = {"recipe": name, "path": "convert", "converts": False, "runs": False, "ops": "",
                               "float_ops": "", "accuracy": None, "message": "", "key": None}
        try:
            tflite = _converted(model, name, inputs[:calibration], row)
            row["converts"] = True
            info = litert.read_model(tflite)
            row["ops"] = " ".join(info.ops)
            row["float_ops"] = " ".join(Outcome.of(recipe_spec(name), Recipe(name), info, None).ops_left_float)
            outputs = run_float_inputs(tflite, inputs)
            row["runs"] = True
            if labels is not None:
                row["accuracy"] = float(np.mean(outputs.argmax(axis=1) == np.asarray(labels)[:len(outputs)]))
        except Exception as err:  # noqa: BLE001 - every failure is the finding, kept with its explanation
            text = str(err.diagnosis.original) if isinstance(err, diagnose.QuantizationError) else \
                f"{type(err).__name__}: {err}"
            entry = diagnose.explain(text).entry
            row["message"], row["key"] = text, entry.key if entry else None
        rows.append(row)
    return rows


def _converted(model: Any, name: str, calibration: np.ndarray, row: dict[str, Any]) -> bytes:
    from .convert import convert

    spec = recipe_spec(name)
    if spec.needs_qat:
        from .train import quantize_model

        row["path"] = "convert of tfmot's quantize_model copy (untrained QAT)"
        return convert(quantize_model(model), name).tflite
    if not spec.calibrated:
        return convert(model, name, **PARAMS.get(name, {})).tflite
    try:
        return convert(model, name, representative=calibration).tflite
    except ValueError as err:  # uint8 images only: calibrate on the float arrays instead
        row["path"] = f"calibrated on float inputs directly (convert: {str(err)[:80]}...)"
    return calibrated_on_floats(model, name, calibration)


def calibrated_on_floats(model: Any, name: str, calibration: np.ndarray) -> bytes:
    """A calibrated recipe's conversion with float ``calibration`` arrays fed as they are (no image normalising).

    Raises:
        QuantizationError: the converter refused (explained).
    """
    from .converters import Job, aeq_int8, tf2
    from .recipes import Recipe

    job = Job(model, Recipe(name), _AsGiven(), representative=np.asarray(calibration, np.float32))
    try:
        with warnings.catch_warnings(), native_log.native_stderr():  # as convert: no 'fully_quantize: ...'
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return (aeq_int8 if recipe_spec(name).adapter is aeq_int8 else tf2)(job)
    except diagnose.QuantizationError:
        raise
    except Exception as err:  # noqa: BLE001 - TensorFlow's or AEQ's refusal, explained
        raise diagnose.explain_error(err) from err


class _AsGiven:
    """The input "range" of float arrays fed as they are: the adapters' ``normalize`` hands them back unchanged."""

    def normalize(self, arrays: np.ndarray) -> np.ndarray:
        return np.asarray(arrays, np.float32)


def run_float_inputs(model: Any, inputs: np.ndarray) -> np.ndarray:
    """A ``.tflite``'s dequantized output for float ``inputs``, one per invoke, state variables reset each time.

    An integer input is quantized with its own scale and zero point.
    """
    detail = litert.interpreter(litert.model_bytes(model)).get_input_details()[0]
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    x = np.asarray(inputs, np.float32)
    if dtype != np.float32:
        info = np.iinfo(dtype)
        x = np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return litert.run(model, x, batch_size=1, reset_variables=True, prepared=True).outputs
