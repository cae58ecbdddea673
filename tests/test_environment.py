"""The two dependency lists (pip and conda) agree, and the CI entry point runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_requirements_and_environment_yml_pin_the_same_versions():
    pip_pins = _pins(ROOT / "requirements.txt")
    conda_pins = _pins(ROOT / "environment.yml")
    assert pip_pins, "requirements.txt has no pins"
    assert pip_pins == conda_pins


def test_tensorflow_stack_is_pinned_together():
    pins = _pins(ROOT / "requirements.txt")
    for name in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"):
        assert name in pins, f"{name} is not pinned"
    assert pins["tensorflow"].rsplit(".", 1)[0] == pins["tf-keras"].rsplit(".", 1)[0]


def test_installed_versions_match_the_pins():
    import importlib.metadata as md

    for name, version in _pins(ROOT / "requirements.txt").items():
        assert md.version(name) == version, f"{name}: installed {md.version(name)}, pinned {version}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w[\w-]*)\s*$", readme, re.MULTILINE)
    assert commands[:2] == ["make demo", "make test"], commands
    assert "make test" in (ROOT / ".ci" / "run").read_text()
