"""Grids over recipe and training parameters, one DataFrame row per point.

Two kinds of sweep:

* ``sweep`` — conversion parameters (``mean``, ``std``, ``default_ranges``,
  ``calibration_size``, ``io_type``): each point converts the model (a Keras
  model exported once to a SavedModel folder, a SavedModel with its signature, a
  frozen ``.pb`` with its arrays: any image shape and class count) and evaluates
  it with LiteRT. This process converts (mean/std points of a legacy uint8 model
  are patched into checked bytes, ``core.stats_patch``) while evaluators run the
  bytes (``core.parallel``): a warm pool of LiteRT-only processes by default, or a
  ``dask.distributed`` cluster (``client=``), the images sent once.
* ``sweep_training`` — training parameters (``bits``, ``qat_epochs``): each
  point trains (or loads from the cache) a QAT model (LeNet, the MobileNet-style
  net, or any model a build function returns) and evaluates its fake-quant
  simulation; these run one after another in this process, or as tasks on a
  ``dask.distributed`` cluster (``client=``: the data scattered once, each task
  trains in its worker and returns predictions).

Every finished point is cached with its predictions (``point_cache``), so an
interrupted sweep picks up where it stopped and every row can be compared with a
reference point on the same images: ``against="best"`` (the default) adds the
paired test of ``core.compare`` (``delta_pts``, ``ci_low_pts``, ``ci_high_pts``,
``p_value``, ``significant``, ``verdict``) against the most accurate point
(``paired_columns``).

Without labels (``labels=None``) a conversion sweep, a screening sweep and the explorers measure every
point against the float model (``float_reference``: the reference recipe's conversion, run once per image
set and cached): ``agreement`` with its exact interval and ``snr_db`` in place of the accuracy, the float
model's classes in place of the labels in the paired test.

This module is the one name notebooks use (``wb.sweep``); the work lives in
``grid`` (points), ``conversion_sweep``, ``training_sweep``, ``fingerprints``
(what a point converts and the hashes that key the cache), ``point_cache``,
``paired_columns`` and ``side_by_side`` (``compare``: converted models side by side).
"""

from __future__ import annotations

from ..core.convert import Recipe
from ..core.data import InputSpec
from .conversion_sweep import _CONVERTERS, PointTask, point_row, run_point, sweep
from .fingerprints import array_fingerprint, folder_fingerprint, saved_model_folder, source_fingerprint, sweep_source
from .grid import CONVERT_KEYS, TRAIN_KEYS, Points, as_points, best_point, grid, stats_grid
from .point_cache import decode_predictions, encode_predictions
from .side_by_side import Comparison
from .side_by_side import compare_models as compare
from .training_sweep import ARCHITECTURES, sweep_training, train_point

__all__ = [
    "ARCHITECTURES", "CONVERT_KEYS", "TRAIN_KEYS", "Comparison", "InputSpec", "PointTask", "Points", "Recipe",
    "array_fingerprint", "as_points", "best_point", "compare", "decode_predictions", "encode_predictions",
    "folder_fingerprint", "grid", "point_row", "run_point", "saved_model_folder", "source_fingerprint",
    "stats_grid", "sweep", "sweep_source", "sweep_training", "train_point", "_CONVERTERS",
]
