"""What every troubleshooting case is made of: its size, its result record, and the measuring helpers.

The gallery's cases (``gallery``, ``model_choices``, ``legacy_graphs``) share these: how a case
converts and measures a model, how a refused conversion becomes an explained failure, and how a
converted model's kernels and float islands are read off its tensors.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import checks, diagnose
from ..core.convert import ConvertedModel, convert
from ..core.data import InputSpec, Mnist
from ..core.diagnose import Diagnosis, QuantizationError
from ..core.evaluate import evaluate, evaluate_keras
from ..core.train import TrainConfig


@dataclass(frozen=True)
class GalleryConfig:
    """How big each case's experiments are (small by default: a case takes seconds once cached).

    Args:
        train_size: training images for the LeNet-sized models.
        epochs: training epochs for them.
        eval_size: test images each model is measured on.
        calibration_size: representative images for int8 post-training quantization.
        lstm_train_size, lstm_epochs: training for the LSTM (case 9).
        lstm_eval_size: test images for the LSTM (it runs one image per invoke).
    """

    train_size: int = 12000
    epochs: int = 1
    eval_size: int = 2000
    calibration_size: int = 200
    lstm_train_size: int = 12000
    lstm_epochs: int = 2
    lstm_eval_size: int = 500

    def __post_init__(self) -> None:
        for name in ("train_size", "epochs", "eval_size", "calibration_size", "lstm_train_size",
                     "lstm_epochs", "lstm_eval_size"):
            checks.number(name, getattr(self, name), low=1, integer=True)

    def train(self, spec: InputSpec = InputSpec()) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, train_size=self.train_size, spec=spec)


@dataclass(frozen=True)
class CaseResult:
    """One gallery case: what failed, why, and what each variant measured."""

    number: int
    title: str
    failure: str  # the message or symptom, as observed
    diagnosis: Diagnosis | None
    rows: tuple[dict[str, Any], ...] = field(repr=False)
    notes: tuple[str, ...] = ()

    def row(self, variant: str) -> dict[str, Any]:
        """The measured row named ``variant``."""
        for r in self.rows:
            if r["variant"] == variant:
                return r
        raise ValueError(f"variant={variant!r}; allowed: {', '.join(r['variant'] for r in self.rows)}")

    def table(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(list(self.rows)).set_index("variant")

    def report(self) -> str:
        """The failure, its explanation and the notes as plain text."""
        parts = [f"Case {self.number}: {self.title}", f"Observed: {self.failure}"]
        if self.diagnosis is not None and self.diagnosis.entry is not None:
            e = self.diagnosis.entry
            parts += [f"Cause: {e.cause}", f"Fix: {e.fix}"]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts)


def short_message(message: str, limit: int = 400) -> str:
    """The informative part of a converter message: its ``error:`` lines without MLIR locations."""
    errors = list(dict.fromkeys(m.strip() for m in re.findall(r"error: ([^\n]+)", message)))
    text = " | ".join(errors) if errors else message.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_text(error: QuantizationError | None, otherwise: str) -> str:
    return short_message(error.diagnosis.original) if error else otherwise


def attempt(action: Callable[[], Any]) -> tuple[Any, QuantizationError | None]:
    """Run ``action``; return ``(result, None)`` or ``(None, explained error)`` if TF or LiteRT refused."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return action(), None
    except ValueError:
        raise  # bad arguments are the caller's bug, not a gallery failure
    except Exception as err:  # noqa: BLE001 - every TF/tfmot/LiteRT failure is explained
        return None, diagnose.explain_error(err)


def measure(variant: str, model: ConvertedModel, data: Mnist, cfg: GalleryConfig,
            spec: InputSpec = InputSpec(), **extra: Any) -> dict[str, Any]:
    """One row: accuracy, size, speed and activation dtypes of a converted model."""
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    result = evaluate(model, images, labels, spec)
    acts = model.activation_dtypes
    return {"variant": variant, "accuracy": result.accuracy, "size_kb": round(model.size_kb, 1),
            "images_per_s": round(result.images_per_second), "float_activations": acts.get("float32", 0),
            "activations": ", ".join(f"{k}:{v}" for k, v in sorted(acts.items())), **extra}


def keras_row(variant: str, model: Any, data: Mnist, cfg: GalleryConfig,
              spec: InputSpec = InputSpec(), **extra: Any) -> dict[str, Any]:
    """One row for a Keras model (the float or fake-quant reference)."""
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    return {"variant": variant, "accuracy": evaluate_keras(model, images, labels, spec).accuracy, **extra}


def convert_case(model: Any, recipe: str, data: Mnist, cfg: GalleryConfig, **params: Any) -> ConvertedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(model, recipe, representative=data.train_images[: cfg.calibration_size],
                       spec=params.pop("spec", InputSpec()), **params)


def tf_version() -> str:
    """The installed TensorFlow's major.minor, for notes that say which converter behaved so."""
    from ..core.keras_compat import tf

    return ".".join(tf.__version__.split(".")[:2])


def refused(error: QuantizationError | None, what: str) -> str:
    return f"refused {what} ({error.key or 'unexplained error'})" if error else f"accepted {what}"


def written_dtypes(model: ConvertedModel, *ops: str) -> str:
    """The dtypes of the tensors the named ops write (``"no such op"`` when there is none)."""
    dtypes = {model.info.tensor(o).dtype for op in model.info.op_details if op.name in ops for o in op.outputs}
    return " and ".join(sorted(dtypes)) or "no such op"


def float_islands(model: ConvertedModel) -> list[tuple[str, ...]]:
    """The runs of ops between a DEQUANTIZE and the next QUANTIZE (execution order): float math in an integer model."""
    islands, current = [], None
    for op in model.ops:
        if op == "DEQUANTIZE":
            current = []
        elif op == "QUANTIZE" and current is not None:
            islands.append(tuple(current))
            current = None
        elif current is not None:
            current.append(op)
    return islands


def islands_text(model: ConvertedModel) -> str:
    islands = float_islands(model)
    if not islands:
        return "no op runs in float between a DEQUANTIZE and a QUANTIZE"
    return "ops run in float between DEQUANTIZE and QUANTIZE: " + "; ".join(" ".join(i) for i in islands)


def kernel_table(model) -> list[dict]:
    """Per op: the dtype its activations arrive in and the dtype of its weights (hybrid = float + int8)."""
    info = model.info
    details = {t.index: t for t in info.tensors}
    model_inputs = {io.index for io in info.inputs}
    rows = []
    for op in info.op_details:
        ins = [details[i] for i in op.inputs if i >= 0]
        acts = [t.dtype for t in ins if t.is_activation or t.index in model_inputs]
        weights = [t.dtype for t in ins if len(t.shape) > 1 and not t.is_activation and t.index not in model_inputs]
        act = acts[0] if acts else "-"
        kind = ("conversion" if op.name in ("QUANTIZE", "DEQUANTIZE")
                else "hybrid (float math, int8 weights)" if act == "float32" and "int8" in weights
                else "float" if act == "float32" else "integer")
        rows.append({"op": op.name, "activation": act, "weights": weights[0] if weights else "-", "kernel": kind})
    return rows


def ops_by_input_dtype(model) -> dict[str, list[str]]:
    """Which ops (by name, first seen first) read activations of each dtype; QUANTIZE/DEQUANTIZE left out."""
    found: dict[str, list[str]] = {}
    for row in kernel_table(model):
        if row["kernel"] != "conversion" and row["op"] not in found.setdefault(row["activation"], []):
            found[row["activation"]].append(row["op"])
    return found


def count_ops(model: ConvertedModel, *ops: str) -> int:
    return sum(1 for op in model.ops if op in ops)
