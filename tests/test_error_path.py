"""Where the error enters: each activation tensor of a quantized model against the float model's, in execution
order, on the uint8 path as well as int8."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest


@pytest.fixture(scope="module")
def models(float_model, mnist):
    import workbench as wb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wb.QuantizationWarning)
        return {"float": wb.convert(float_model, "float32"),
                "uint8": wb.convert(float_model, "legacy-uint8", default_ranges=(0, 6)),
                "int8": wb.convert(float_model, "int8-ptq", representative=mnist.train_images[:200])}


def test_the_path_follows_the_ops_and_each_snr_is_the_tensors_own(models, test_set):
    from workbench.core import fidelity, litert
    from workbench.core.error_path import entry, error_path
    from workbench.core.samples import Samples

    images = test_set[0][:100]
    for kind in ("uint8", "int8"):
        path = error_path(models["float"], models[kind], Samples.of(images))
        ops = [op.name for op in litert.read_model(models[kind]).op_details]
        assert [p.op for p in path] == [op for op in ops if op not in ("QUANTIZE", "DEQUANTIZE")], kind
        assert all(p.dtype == kind for p in path)
    # the legacy model's last tensor, checked against fidelity.snr_db on the two models' own outputs
    uint8 = error_path(models["float"], models["uint8"], Samples.of(images))
    f = litert.run(models["float"], images).outputs
    q = litert.run(models["uint8"], images).outputs
    assert uint8[-1].snr_db == pytest.approx(fidelity.snr_db(f, q), abs=1e-3)
    # (0, 6) holds the convolutions (over 30 dB) but not the logits: the error enters in the dense layers
    where = entry(uint8)
    assert all(p.snr_db > 30 for p in uint8[:5]) and where.op == "FULLY_CONNECTED" and where.snr_db < 20
    int8 = error_path(models["float"], models["int8"], Samples.of(images))
    assert all(p.snr_db > 30 and math.isfinite(p.snr_db) for p in int8)  # calibrated: no tensor under 30 dB
    assert entry(()) is None and np.isfinite([p.snr_db for p in uint8]).all()
