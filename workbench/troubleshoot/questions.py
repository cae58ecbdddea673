"""The forum questions and classic error messages, each mapped to the notebook cell that answers it.

``QUESTIONS`` (the 19 forum questions) is the index behind ``notebooks/00_start_here.ipynb``: every
question in the words people search for, the notebook and the anchor of the
markdown cell (``<a id="q-..."></a>``) whose next code cell computes the
answer, the test that asserts that cell's result, and the ``workbench explain``
catalog entry when the question is an error message. ``MESSAGES`` lists the
classic error messages, each with the question that answers it (or, for a message
that is not one of the questions, its entry in ``ERROR_ANSWERS``).
``tests/test_questions.py`` checks that every anchor exists, that the answering
cell computes what the test asserts, and that each message is explained by
its entry; ``markdown()`` writes the index the start notebook shows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import checks, diagnose


@dataclass(frozen=True)
class Question:
    """One forum question and where it is answered.

    Attributes:
        key: short name; the notebook anchor is ``q-<key>``.
        question: the question, in the words people search for.
        notebook: the notebook file that answers it.
        section: the heading of the answering section, for the link text.
        test: ``tests/<file>.py::<function>``: the test that asserts the answer.
        computes: a name the answering code cell uses and the test reads (a function the
            test calls, or a variable the notebook test reads back).
        explain: the ``workbench explain`` catalog key, when the question is an error message.
    """

    key: str
    question: str
    notebook: str
    section: str
    test: str
    computes: str
    explain: str | None = None

    @property
    def anchor(self) -> str:
        return f"q-{self.key}"

    @property
    def link(self) -> str:
        return f"{self.notebook}#{self.anchor}"


@dataclass(frozen=True)
class Message:
    """A classic error message (as people paste it) and the question that answers it."""

    text: str
    question: str  # a Question key
    explain: str  # the catalog key ``workbench explain`` finds for ``text``


TROUBLE = "07_troubleshooting.ipynb"
GALLERY_TEST = "tests/test_gallery.py"
NOTEBOOK_TEST = "tests/test_notebooks.py"

QUESTIONS: tuple[Question, ...] = (
    Question("lacking-min-max", '"Array ... is lacking min/max data": why, and why does my uint8 model come out float?',
             TROUBLE, "1 · lacking min/max data", f"{GALLERY_TEST}::test_1_lacking_min_max", "r1",
             "lacking-min-max"),
    Question("mean-std", "What are mean_values and std_dev_values (quantized_input_stats), and which do I use?",
             "04_mean_std.ipynb", "The whole landscape", f"{NOTEBOOK_TEST}::check_mean_std", "grid_table",
             "input-stats-required"),
    Question("same-class", "Why does my uint8 model predict the same class for everything (or lose all accuracy)?",
             TROUBLE, "2 · Wrong mean/std", f"{GALLERY_TEST}::test_2_wrong_mean_std", "r2"),
    Question("default-ranges", "What do default_ranges_min / default_ranges_max do, and what do they cost?",
             "05_default_ranges.ipynb", "Sweep: accuracy vs the default range",
             f"{NOTEBOOK_TEST}::check_default_ranges", "ranges"),
    Question("batchnorm", "Why is BatchNorm (FusedBatchNorm) not quantized?", TROUBLE, "3 · BatchNorm in QAT",
             f"{GALLERY_TEST}::test_3_batchnorm", "r3", "qat-layer-unsupported"),
    Question("no-quantized-kernel", '"Square / Div / Cast: the quantized form is not yet implemented"', TROUBLE,
             "4 · Ops with no quantized kernel", f"{GALLERY_TEST}::test_4_no_quantized_kernel",
             "r4", "no-quantized-kernel"),
    Question("per-channel", '"Node number 0 (CONV_2D) failed to prepare" on the uint8 path', TROUBLE,
             "5 · Per-channel QAT weights on the uint8 path", f"{GALLERY_TEST}::test_5_per_channel_on_uint8",
             "r5", "per-channel-on-uint8"),
    Question("uint8-outputs", "How do I read uint8 outputs that look like [15 0 0 0]?", TROUBLE,
             "6 · uint8 outputs", f"{GALLERY_TEST}::test_6_raw_outputs", "r6"),
    Question("dynamic-shape", '"None is only supported in the 1st dimension": dynamic input shapes', TROUBLE,
             "7 · Dynamic shapes", f"{GALLERY_TEST}::test_7_dynamic_shape", "r7", "dynamic-shape"),
    Question("dynamic-range", "post_training_quantize (dynamic range): how much smaller, what stays float?",
             TROUBLE, "8 · Dynamic range vs full integer", f"{NOTEBOOK_TEST}::check_troubleshooting", "r8"),
    Question("lstm", "Why does my LSTM / RNN lose its accuracy when quantized?", TROUBLE, "9 · LSTM",
             f"{NOTEBOOK_TEST}::check_troubleshooting", "r9", "lstm-dynamic-batch"),
    Question("four-bit", "Can I quantize to 4 bits?", TROUBLE, "10 · 4-bit", f"{GALLERY_TEST}::test_10_four_bit",
             "r10", "low-bit-qat"),
    Question("keep-float", "Which layer loses the accuracy, and can I keep that one layer float?", TROUBLE,
             "11 · Keeping one layer float", f"{GALLERY_TEST}::test_11_selective", "r11"),
    Question("depthwise", "Why did my Conv2D become a DepthwiseConv2D?", "06_graphs.ipynb",
             "7. Why Conv2D can appear as DepthwiseConv2D", f"{NOTEBOOK_TEST}::check_graphs", "check"),
    Question("which-recipe", "float16, dynamic range, int8, 16x8, QAT: what does each cost in size and accuracy?",
             "03_convert_and_compare.ipynb", "Train, convert every recipe, evaluate, compare",
             f"{NOTEBOOK_TEST}::check_compare", "table"),
    Question("estimator", "I have an Estimator, a TF1 SavedModel or a frozen graph: how do I convert it?", TROUBLE,
             "12 · Estimator, TF1 SavedModel, frozen graph", f"{NOTEBOOK_TEST}::check_troubleshooting", "r12"),
    Question("optimize-for-inference", "Do I need optimize_for_inference before converting?", TROUBLE,
             "13 · optimize_for_inference", f"{NOTEBOOK_TEST}::check_troubleshooting", "r13"),
    Question("training-eval-graph", "create_training_graph vs create_eval_graph: which graph do I export?", TROUBLE,
             "14 · Training graph vs eval graph", f"{NOTEBOOK_TEST}::check_troubleshooting", "r14"),
    Question("quant-delay", "What does quant_delay do: start fake quantization after N steps?", TROUBLE,
             "15 · Quant delay", f"{NOTEBOOK_TEST}::check_troubleshooting", "r15"),
    Question("no-labels", "I have no labelled test set: how close does my quantized model stay to the float one?",
             "09_any_model.ipynb", "Without labels", f"{NOTEBOOK_TEST}::check_any_model", "unlabelled"),
    Question("detector", "How do I measure a quantized detector (SSD), an image-to-image net or an LSTM?",
             "09_any_model.ipynb", "2. When the fidelity figure and the task figure disagree",
             f"{NOTEBOOK_TEST}::check_any_model", "frames"),
)

# Error messages whose answer is not one of the questions above: each answered the same way, by a cell and a test.
ERROR_ANSWERS: tuple[Question, ...] = (
    Question("op-version", "\"Didn't find op for builtin opcode\": are you using an old TFLite binary with a newer "
             "model?", TROUBLE, "16 · Didn't find op for builtin opcode", f"{NOTEBOOK_TEST}::check_troubleshooting",
             "r16", "op-version"),
)

ANSWERS: tuple[Question, ...] = QUESTIONS + ERROR_ANSWERS

MESSAGES: tuple[Message, ...] = (
    Message("Array conv1/Relu, which is an input to the MaxPool operator producing the output array pool1/MaxPool, "
            "is lacking min/max data, which is necessary for quantization.", "lacking-min-max", "lacking-min-max"),
    Message("std_dev and mean must be defined when inference_type or inference_input_type is QUANTIZED_UINT8 "
            "or INT8.", "mean-std", "input-stats-required"),
    Message("input->type == kTfLiteInt8 || input->type == kTfLiteInt16 was not true. Node number 0 (CONV_2D) "
            "failed to prepare.", "per-channel", "per-channel-on-uint8"),
    Message("Unimplemented: this graph contains an operator of type SquaredDifference for which the quantized "
            "form is not yet implemented.", "no-quantized-kernel", "no-quantized-kernel"),
    Message("Layer bn1 is not supported. You can quantize this layer by passing a "
            "`tfmot.quantization.keras.QuantizeConfig` instance to the `quantize_annotate_layer` API.",
            "batchnorm", "qat-layer-unsupported"),
    Message("None is only supported in the 1st dimension. Tensor 'input' has invalid shape '[1, None, None, 3]'.",
            "dynamic-shape", "dynamic-shape"),
    Message("'tf.TensorListReserve' op requires element_shape to be static during TF Lite transformation pass",
            "lstm", "lstm-dynamic-batch"),
    Message("'tfl.softmax' op failed to verify that input and output must have same element type", "four-bit",
            "low-bit-qat"),
    Message("Didn't find op for builtin opcode 'CONV_2D' version '5'. An older version of this builtin might be "
            "supported. Are you using an old TFLite binary with a newer model?", "op-version", "op-version"),
)


def question(key: str) -> Question:
    """The question (or error-message answer) named ``key``."""
    return checks.keyed("key", key, ANSWERS, "a question")


def explain_rows() -> list[dict[str, str]]:
    """Each classic message with the catalog entry ``workbench explain`` finds for it and the answering cell."""
    rows = []
    for m in MESSAGES:
        found = diagnose.explain(m.text).entry
        rows.append({"message": m.text[:90] + ("..." if len(m.text) > 90 else ""),
                     "explain": found.key if found else "(not recognised)", "title": found.title if found else "",
                     "answered in": question(m.question).link})
    return rows


def answering_cell(notebook: str | Path, anchor: str) -> str | None:
    """The source of the code cell after the markdown cell holding ``<a id="anchor">``; ``None`` if there is none.

    Raises:
        ValueError: the notebook does not exist, or the anchor is in more than one cell.
    """
    path = Path(notebook)
    if not path.is_file():
        raise ValueError(f"notebook={str(path)!r} does not exist; allowed: a notebook of notebooks/")
    cells = json.loads(path.read_text())["cells"]
    source = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    marked = [i for i, (c, text) in enumerate(zip(cells, source))
              if c["cell_type"] == "markdown" and f'<a id="{anchor}"></a>' in text]
    if len(marked) > 1:
        raise ValueError(f"anchor={anchor!r} is in cells {marked} of {path.name}; allowed: one cell")
    if not marked:
        return None
    return next((text for c, text in zip(cells[marked[0] + 1:], source[marked[0] + 1:]) if c["cell_type"] == "code"),
                None)


def resolve(notebook_dir: str | Path) -> list[dict[str, Any]]:
    """Each answer's link followed into ``notebook_dir``: found or not, and what the answering cell computes."""
    rows = []
    for q in ANSWERS:
        cell = answering_cell(Path(notebook_dir) / q.notebook, q.anchor)
        rows.append({"question": q.key, "link": q.link, "found": cell is not None,
                     "computes": q.computes, "uses_it": bool(cell and re.search(rf"\b{re.escape(q.computes)}\b", cell)),
                     "cell": (cell or "").splitlines()[0] if cell else "", "asserted by": q.test})
    return rows


def markdown() -> str:
    """The index as the start notebook shows it: questions, then error messages, each linked to its cell."""
    lines = ["| # | question | answered in | asserted by |", "|---|---|---|---|"]
    for i, q in enumerate(QUESTIONS, start=1):
        name = q.notebook.removesuffix(".ipynb")
        lines.append(f"| {i} | {q.question.replace('|', chr(92) + '|')} | [{name} · {q.section}]({q.link}) | "
                     f"`{q.test}` |")
    lines += ["", "| error message (search words) | `workbench explain` finds | answered in |", "|---|---|---|"]
    for m in MESSAGES:
        q = question(m.question)
        text = m.text.replace("`", "")
        lines.append(f"| {text[:70].replace('|', chr(92) + '|')}{'...' if len(text) > 70 else ''} | `{m.explain}` | "
                     f"[{q.notebook.removesuffix('.ipynb')} · {q.section}]({q.link}) |")
    return "\n".join(lines)
