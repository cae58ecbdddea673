"""Converter and interpreter messages, explained: cause and fix in plain words.

A catalog of known failures keyed by message patterns. ``convert`` and
``evaluate`` pass every failure through ``explain`` and raise
``QuantizationError``, whose text is the explanation with the original
message beneath it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One known failure: how to recognise it, why it happens, what to do."""

    key: str
    title: str
    patterns: tuple[str, ...]  # regular expressions, searched case-insensitively
    cause: str
    fix: str

    def matches(self, message: str) -> bool:
        return any(re.search(p, message, re.IGNORECASE | re.DOTALL) for p in self.patterns)


@dataclass(frozen=True)
class Diagnosis:
    """An explained message: the catalog entry (``None`` if unknown) and the original text."""

    entry: Entry | None
    original: str

    def __str__(self) -> str:
        if self.entry is None:
            return (f"Unrecognised TFLite failure (no explanation in workbench.diagnose yet).\n\n"
                    f"Original message:\n{self.original}")
        e = self.entry
        return f"{e.title}\nCause: {e.cause}\nFix: {e.fix}\n\nOriginal message:\n{self.original}"


class QuantizationError(RuntimeError):
    """A conversion or interpreter failure, explained (see ``.diagnosis``)."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(str(diagnosis))
        self.diagnosis = diagnosis

    @property
    def key(self) -> str | None:
        return self.diagnosis.entry.key if self.diagnosis.entry else None


CATALOG: tuple[Entry, ...] = (
    Entry(
        key="per-channel-on-uint8",
        title="Per-channel weights cannot run in a uint8 model.",
        patterns=(r"input->type == kTfLiteInt8 \|\| input->type == kTfLiteInt16 was not true",
                  r"per-channel weights in a uint8 model"),
        cause=("The model was trained with tfmot's default QAT scheme, which quantizes Conv2D weights per "
               "output channel. TFLite's per-channel kernels exist only for int8 (and int16) tensors; the "
               "legacy uint8 path converts the model but the CONV_2D kernel refuses it when it is prepared."),
        fix=("Either convert to int8 with the TF2 converter (recipe 'qat-int8'), or train with a per-tensor "
             "scheme for the uint8 path (QatConfig(scheme='uint8-legacy'))."),
    ),
    Entry(
        key="lacking-min-max",
        title="Some tensors have no quantization range (min/max).",
        patterns=(r"lacking min/?max data", r"Quantization not yet supported for op",
                  r"missing min/?max", r"has no min/max"),
        cause=("A fully quantized model needs a (min, max) range for every activation. QAT records them "
               "with fake-quant nodes; a float model has none, so the uint8 converter stops or falls back."),
        fix=("Train with QAT (train_qat) so every layer learns its range, or give default_ranges=(min, max) "
             "to fill the gaps (costs accuracy, see notebook 05), or use int8 PTQ with a representative set."),
    ),
    Entry(
        key="came-out-float",
        title="The uint8 conversion came out float.",
        patterns=(r"came out float",),
        cause=("The legacy converter was asked for uint8 but the model has no min/max ranges for its "
               "activations and no default_ranges were given; instead of failing it silently emits a "
               "float32 model."),
        fix="Use a QAT model, or pass default_ranges=(min, max) (e.g. (0, 6) for ReLU6-like activations).",
    ),
    Entry(
        key="stats-ignored",
        title="The mean/std you passed were ignored.",
        patterns=(r"mean/std .* ignored",),
        cause=("The QAT model learned its own input range (tfmot's input QuantizeLayer). The converter "
               "takes the input quantization from that learned range and ignores quantized_input_stats."),
        fix=("Feed bytes the way the effective stats say, or train with QatConfig(scheme='uint8-legacy') "
             "without a learned input range so the stats define the input quantization."),
    ),
)


def explain(message: str) -> Diagnosis:
    """Match ``message`` against the catalog; the first matching entry wins."""
    text = str(message)
    for entry in CATALOG:
        if entry.matches(text):
            return Diagnosis(entry, text)
    return Diagnosis(None, text)


def entry(key: str) -> Entry:
    """The catalog entry named ``key``."""
    for e in CATALOG:
        if e.key == key:
            return e
    raise ValueError(f"key={key!r} is not in the catalog; allowed: {', '.join(e.key for e in CATALOG)}")
