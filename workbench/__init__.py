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
from .core.data import Dataset, InputSpec, Mnist, load_digits, load_image_folder, load_mnist, load_npz
from .core.sources import keras_origin, load_source
from .core.fixed_input import fixed_input
from .core.stats import InputStats, stats_for_range

# Conversion records and evaluation (no TensorFlow import needed)
from .core.convert import ConvertedModel, Outcome, QuantizationWarning, convert, export_saved_model
from .core.recipes import Recipe, RecipeSpec, register_recipe
from .core.evaluate import EvalResult, evaluate, evaluate_keras, predict
from .core.litert import ModelInfo, read_model

# Failures explained
from .core.diagnose import QuantizationError, explain

# Training (imports TensorFlow on first use)
_LAZY = {
    "TrainConfig": "core.train", "QatConfig": "core.train", "train_qat": "core.train",
    "quantize_model": "core.train", "trained_lenet": "core.train", "lenet": "core.models",
    "trained_mobilenet": "core.train", "mobilenet_style": "core.models",
    "fine_tuned_lenet": "core.train", "explain_loss": "core.verdicts",
}

# Modules reachable as ``wb.<name>``, imported on first use: the notebook tools (sweeps,
# plots, widgets, input codes, Netron, graph tables), the troubleshooting gallery and
# per-layer error, and the core modules a notebook may want by name.
_SUBMODULES = {
    "sweep": "explore.sweep", "screening": "explore.screening", "plots": "explore.plots", "widgets": "explore.widgets",
    "input_codes": "explore.input_codes", "viewer": "explore.viewer", "graph_tables": "explore.graph_tables",
    "gallery": "troubleshoot.gallery", "model_choices": "troubleshoot.model_choices",
    "error_graph": "troubleshoot.error_graph",
    "layer_error": "troubleshoot.layer_error", "legacy_graphs": "troubleshoot.legacy_graphs",
    "questions": "troubleshoot.questions", "diagnose": "core.diagnose", "recipes": "core.recipes",
    "litert": "core.litert", "aeq": "core.aeq", "demo": "core.demo", "recipe_table": "core.recipe_table",
    "compare": "core.compare", "examples": "core.examples", "model_facts": "core.model_facts",
    "standins": "core.standins", "samples": "core.samples", "measure": "core.measure", "tasks": "core.tasks",
    "fidelity": "core.fidelity", "detection": "core.detection", "any_model": "explore.any_model",
    "error_path": "core.error_path",
}


def __getattr__(name: str):
    if name == "RECIPES":  # the registry's names, including recipes registered later
        from .core.recipes import names

        return names()
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:  # wb.sweep, wb.plots, ...: imported on first use
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "Dataset", "InputSpec", "Mnist", "load_mnist", "load_digits", "load_npz", "load_image_folder", "load_source",
    "keras_origin",
    "fixed_input",
    "InputStats", "stats_for_range",
    "RECIPES", "Recipe", "RecipeSpec", "register_recipe", "Outcome", "ConvertedModel", "QuantizationWarning",
    "convert", "export_saved_model",
    "EvalResult", "evaluate", "evaluate_keras", "predict", "ModelInfo", "read_model",
    "QuantizationError", "explain", *_LAZY, *_SUBMODULES,
]
