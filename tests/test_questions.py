"""The question index: 21 questions, every link leads to a cell, every cell's result is asserted by a test.

Static checks (no TensorFlow, no kernel): the anchors are read from the committed
notebooks, the tests from their source. For a ``check_*`` function of
``test_notebooks.py`` the chain is followed through its ``Case``: the answering
cell's name appears in one of the expressions the test reads back, and the check
reads that result. For any other test, the test's own source uses what the cell computes (calls the same
function, or reads the notebook's variable back, as ``test_gallery.py`` reads ``r1`` ... ``r11``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from workbench.core import diagnose
from workbench.troubleshoot import questions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
START = NOTEBOOK_DIR / "00_start_here.ipynb"


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _source_with_helpers(path: Path, name: str) -> str:
    """A function's source plus the source of the module's functions it calls (one level deep)."""
    functions, text = _functions(path), path.read_text()
    node = functions[name]
    called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return "\n".join(ast.get_source_segment(text, functions[f]) for f in [name, *sorted(called & set(functions))])


def test_nineteen_questions_with_unique_anchors():
    keys = [q.key for q in questions.QUESTIONS]
    assert len(keys) == 21 and len(set(keys)) == 21, keys
    every = [q.key for q in questions.ANSWERS]
    assert len(set(every)) == len(every) and {m.question for m in questions.MESSAGES} <= set(every)
    # every error-message answer is reached from a message
    assert {q.key for q in questions.ERROR_ANSWERS} <= {m.question for m in questions.MESSAGES}


@pytest.mark.parametrize("q", questions.ANSWERS, ids=lambda q: q.key)
def test_link_leads_to_a_cell_whose_result_a_test_asserts(q):
    cell = questions.answering_cell(NOTEBOOK_DIR / q.notebook, q.anchor)
    assert cell is not None, f"{q.link}: no markdown cell with <a id=\"{q.anchor}\"></a> followed by a code cell"
    name = re.compile(rf"\b{re.escape(q.computes)}\b")
    assert name.search(cell), f"{q.link}: the answering cell does not compute {q.computes!r}:\n{cell}"
    file, function = q.test.split("::")
    path = ROOT / file
    assert function in _functions(path), f"{q.test} does not exist"
    source = _source_with_helpers(path, function)
    if file.endswith("test_notebooks.py") and function.startswith("check_"):
        import test_notebooks

        (case,) = [c for c in test_notebooks.NOTEBOOKS if c.name == q.notebook]
        assert case.check is not None and case.check.__name__ == function, (case.name, function)
        keys = [k for k, expression in case.results.items() if name.search(expression)]
        assert keys, f"{q.notebook}: no result read back from the kernel uses {q.computes!r}"
        reads = [k for k in keys if re.search(rf"""r\[["']{re.escape(k)}["']\]""", source)]
        assert reads, f"{function} reads none of {keys}"
    else:
        assert name.search(source), f"{q.test} does not use {q.computes!r}"
    if q.explain is not None:
        diagnose.entry(q.explain)  # a catalog key that exists


@pytest.mark.parametrize("m", questions.MESSAGES, ids=lambda m: m.explain)
def test_classic_message_is_explained_by_its_entry(m):
    found = diagnose.explain(m.text).entry
    assert found is not None and found.key == m.explain, (m.text, found)


def test_start_notebook_shows_the_index_and_every_link_resolves():
    nb = nbformat.read(START, as_version=4)
    (index,) = [c for c in nb.cells if "question-index" in c.metadata.get("tags", [])]
    assert index.source.endswith(questions.markdown()), "00_start_here's index differs from questions.markdown()"
    links = re.findall(r"\]\(([^)#]+\.ipynb)#([^)]+)\)", index.source)
    assert len({(n, a) for n, a in links}) == len(questions.ANSWERS), links
    for notebook, anchor in links:
        assert questions.answering_cell(NOTEBOOK_DIR / notebook, anchor) is not None, (notebook, anchor)


def test_index_refuses_unknown_names(tmp_path):
    with pytest.raises(ValueError, match=r"key='nope' is not a question; allowed: lacking-min-max"):
        questions.question("nope")
    with pytest.raises(ValueError, match=r"notebook=.*missing.ipynb' does not exist"):
        questions.answering_cell(tmp_path / "missing.ipynb", "q-x")
