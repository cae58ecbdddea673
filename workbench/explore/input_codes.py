"""Where the bits go: the ranges QAT learns, and how the 256 input codes land on the training range.

``fake_quant_table`` lists what quantization-aware training inserted: one row
per fake-quant (weights, activations, the input) with the range it learned;
values outside a range are clipped, and ``2**bits`` levels are spread over it.

A uint8 input reads byte ``q`` as ``(q - mean) / std``. The model learned
its weights for values in the training range ``[lo, hi]``. Three things can
go wrong when the stats do not match that range:

* **clipped**: pixels whose value lands outside ``[lo, hi]``; the model never
  saw such values, and the fixed activation ranges after the first layer
  saturate on them;
* **wasted codes**: codes that stand for values outside ``[lo, hi]``, i.e.
  precision spent on values training never produced;
* **unreachable range**: the part of ``[lo, hi]`` no code can express (the
  input is squashed into a corner of what the model expects).

With the right stats all 256 codes span ``[lo, hi]`` exactly: nothing is
clipped, wasted or unreachable (``code_usage``, measured in ``core.stats`` and used here). Pixels of any image shape count alike (grayscale or
colour, every channel read with the same stats), and ``fake_quant_table`` reads any
tfmot QAT model (LeNet, the MobileNet-style net's per-channel ``kernel`` and
``depthwise_kernel`` quantizers, a user's own).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.stats import CODES, CodeUsage, InputStats, code_usage, pixel_counts  # noqa: F401 - measured in core


def fake_quant_table(model: Any):
    """The fake-quant ranges of a QAT Keras model, one row per quantizer.

    Args:
        model: a QAT model (``train_qat`` / ``quantize_model`` / ``trained_lenet`` or ``trained_mobilenet``
            with ``qat=...``, or a user's tfmot model loaded with ``load_source``).

    Returns:
        A pandas DataFrame with ``layer``, ``quantizer`` (``kernel``,
        ``post_activation``, ``pre_activation`` or ``input``), ``min``, ``max``
        (over channels for per-channel weights) and ``channels``.

    Raises:
        ValueError: ``model`` has no fake-quant variables (a float model).
    """
    import pandas as pd

    rows = []
    for layer in getattr(model, "layers", []):
        found: dict[str, dict[str, np.ndarray]] = {}
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            for end in ("_min", "_max"):
                if name.endswith(end):
                    found.setdefault(name[: -len(end)], {})[end[1:]] = np.asarray(weight.numpy()).reshape(-1)
        for quantizer, pair in found.items():
            if set(pair) != {"min", "max"}:
                continue
            label = "input" if quantizer == layer.name else quantizer
            rows.append({"layer": layer.name.removeprefix("quant_"), "quantizer": label,
                         "min": float(pair["min"].min()), "max": float(pair["max"].max()),
                         "channels": int(pair["min"].size)})
    if not rows:
        raise ValueError(f"model {getattr(model, 'name', type(model).__name__)!r} has no fake-quant ranges; "
                         "allowed: a QAT model (train_qat / quantize_model)")
    return pd.DataFrame(rows)
