"""Helpers for the command-line tests: the digits models and data files they run on, and running the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

DIGITS_CONFIG = {"epochs": 5, "batch_size": 32}  # LeNet on digits: ~92 % in seconds (cached after the first run)
MOBILENET_CONFIG = {"epochs": 30, "batch_size": 32}  # the MobileNet-style net needs ~20 epochs for its BatchNorms


def digits():
    from workbench.core.data import load_digits

    return load_digits()


def save_npz(path: Path, data, **extra) -> Path:
    """Every digits image and label in one ``images``/``labels`` pair (what ``evaluate`` and ``report`` read)."""
    images = np.concatenate([data.train_images, data.test_images])
    labels = np.concatenate([data.train_labels, data.test_labels])
    np.savez(path, images=images, labels=labels, **extra)
    return path


def all_images(data) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([data.train_images, data.test_images]),
            np.concatenate([data.train_labels, data.test_labels]))


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m workbench ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def python_call(stdout: str) -> str:
    """The lines the convert command prints under 'the same in Python:'."""
    lines = stdout.split("the same in Python:\n", 1)[1].splitlines()
    return "\n".join(line[4:] for line in lines if line.startswith("    "))
