"""The package's floors: ``core`` imports nothing above it; ``explore``, ``troubleshoot`` and ``cli`` use ``core``
and not each other. The README's architecture section names every subpackage and module that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
FLOORS = ("core", "explore", "troubleshoot", "cli")


def _imported_floors(path: Path) -> set[str]:
    """The subpackages a module imports from (relative and absolute imports, at any depth in the file)."""
    floor = path.relative_to(PACKAGE).parts[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # the module's own floor (or, at the top, the named subpackage)
                found.add(floor if floor in FLOORS else (node.module or "").split(".")[0])
            elif node.level == 2:
                found.add((node.module or "").split(".")[0])
            elif node.module and node.module.startswith("workbench."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("workbench.")}
    return found & set(FLOORS)


def test_floors_import_only_downwards():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        floor = path.relative_to(PACKAGE).parts[0]
        if floor not in FLOORS:
            continue
        allowed = {"core"} if floor == "core" else {"core", floor}
        extra = _imported_floors(path) - allowed
        if extra:
            wrong.append(f"{path.relative_to(PACKAGE)} imports {sorted(extra)}")
    assert not wrong, "\n".join(wrong)


def test_readme_architecture_names_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent != PACKAGE:
            name = path.parent.name + "/"
        elif path.parent == PACKAGE:
            continue
        else:
            name = path.stem
        assert re.search(rf"`{re.escape(name)}`", section), f"README architecture section does not name {name}"


def test_every_module_says_what_it_owns():
    for path in PACKAGE.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc) > 20, f"{path.relative_to(PACKAGE)} has no module docstring"


def test_notebooks_use_the_public_face_only():
    """Notebooks import ``workbench`` (``wb.*``), never a subpackage path such as ``workbench.core.train``."""
    import json

    reaching = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                reaching += [f"{path.name}: {line.strip()}" for line in "".join(cell["source"]).splitlines()
                             if re.search(r"\bworkbench\.\w", line) and re.match(r"\s*(from|import)\s", line)]
    assert not reaching, reaching


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long


def _imports(path: Path) -> set[str]:
    """The absolute module names a file imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_litert_reads_every_tflite_and_keras_compat_imports_tensorflow():
    """Only ``core/litert`` parses a flatbuffer (the schema module, ``flatbuffers``), only ``core/keras_compat``
    imports TensorFlow or tf_keras (it sets ``TF_USE_LEGACY_KERAS`` first)."""
    readers, tensorflow = [], []
    for path in PACKAGE.rglob("*.py"):
        names = _imports(path)
        where = str(path.relative_to(PACKAGE))
        if where != "core/litert.py" and any(n.split(".")[0] == "flatbuffers" or n.endswith("schema_py_generated")
                                             for n in names):
            readers.append(where)
        if where != "core/keras_compat.py" and any(n.split(".")[0] in ("tensorflow", "tf_keras") for n in names):
            tensorflow.append(where)
    assert not readers, f"flatbuffers read outside core/litert: {readers}"
    assert not tensorflow, f"TensorFlow imported outside core/keras_compat: {tensorflow}"
