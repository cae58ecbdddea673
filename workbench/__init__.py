"""Quantization Workbench: see what TFLite quantization does to a model, and why.

The public API, grouped by what it is for. Heavy libraries (TensorFlow,
ipywidgets, netron) are imported only by the functions that need them.

>>> import workbench as wb
>>> data = wb.load_mnist()
>>> model = wb.trained_lenet(data)                                  # doctest: +SKIP
>>> uint8 = wb.convert(model, "legacy-uint8", default_ranges=(0, 6))  # doctest: +SKIP
>>> wb.evaluate(uint8, data.test_images, data.test_labels).accuracy   # doctest: +SKIP
"""

from __future__ import annotations

import importlib

# Data and the input-stats arithmetic
from .data import InputSpec, Mnist, load_mnist
from .stats import InputStats, stats_for_range

# Conversion records and evaluation (no TensorFlow import needed)
from .convert import ConvertedModel, Outcome, QuantizationWarning, convert, export_saved_model
from .recipes import Recipe, RecipeSpec, register_recipe
from .evaluate import EvalResult, evaluate, evaluate_keras, predict
from .litert import ModelInfo, read_model

# Failures explained
from .diagnose import QuantizationError, explain

# Training (imports TensorFlow on first use)
_LAZY = {
    "TrainConfig": "train", "QatConfig": "train", "train_qat": "train",
    "quantize_model": "train", "trained_lenet": "train", "lenet": "models",
}

# Notebook tools: sweeps, plots, widgets, input-code analysis, Netron;
# troubleshooting: the gallery of classic failures and per-layer error
_SUBMODULES = ("sweep", "plots", "widgets", "bits", "viewer", "gallery", "gallery_choices", "layers", "diagnose")


def __getattr__(name: str):
    if name == "RECIPES":  # the registry's names, including recipes registered later
        from .recipes import names

        return names()
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:  # wb.sweep, wb.plots, ...: imported on first use
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "InputSpec", "Mnist", "load_mnist", "InputStats", "stats_for_range",
    "RECIPES", "Recipe", "RecipeSpec", "register_recipe", "Outcome", "ConvertedModel", "QuantizationWarning", "convert", "export_saved_model",
    "EvalResult", "evaluate", "evaluate_keras", "predict", "ModelInfo", "read_model",
    "QuantizationError", "explain", *_LAZY, *_SUBMODULES,
]
