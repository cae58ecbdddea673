"""Where the error enters: each activation tensor of a quantized model against the float model's, in execution
order, on the uint8 path as well as int8: cumulative (the model as it is) and local (each op alone, fed the float
model's inputs)."""

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
                # stats of [-1, 1] for a model trained on [0, 1]: the first convolution reads its input wrong
                "stats": wb.convert(float_model, "legacy-uint8", default_ranges=(0, 6), mean=127.5, std=127.5),
                "int8": wb.convert(float_model, "int8-ptq", representative=mnist.train_images[:200]),
                # ai-edge-quantizer writes its constant buffers after the flatbuffer (offsets)
                "aeq": wb.convert(float_model, "aeq-int8", representative=mnist.train_images[:50])}


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


def test_the_local_snr_is_each_op_alone_fed_the_float_models_inputs(models, test_set):
    from workbench.core.error_path import entry, entry_sentence, error_path
    from workbench.core.samples import Samples
    from workbench.troubleshoot.error_graph import error_graph

    samples = Samples.of(test_set[0][:100])
    for kind in ("uint8", "int8", "aeq"):
        path = error_path(models["float"], models[kind], samples)
        assert all(p.local_snr_db is not None and math.isfinite(p.local_snr_db) and not p.no_local for p in path)
        # the first op reads the model's own input: alone, it is the model as it is
        assert path[0].local_snr_db == pytest.approx(path[0].snr_db, abs=0.01), kind
    path = error_path(models["float"], models["stats"], samples)
    conv, pool = path[0], path[1]
    # the convolution that reads the input with the wrong stats makes the error (measured: 3.3 dB alone) ...
    assert conv.op == "CONV_2D" and conv.local_snr_db < 10 and conv.blame == "op"
    # ... the pooling after it, fed the float model's convolution output, is fine alone (measured: 38.6 dB) although
    # the error it inherits keeps its cumulative SNR low: fed the quantized model's own values, it would be low too
    assert pool.op == "MAX_POOL_2D" and pool.snr_db < 10 and pool.local_snr_db > 30 and pool.blame == "upstream"
    assert entry(path) is conv and "the op itself makes the error" in entry_sentence(conv)
    assert f"{pool.snr_db:.1f} dB SNR" in entry_sentence(pool) and "inherits the error" in entry_sentence(pool)
    assert entry(path).record()["blame"] == "op"
    # the graph's tooltips give both figures
    node = next(n for n in error_graph(models["stats"], path).nodes if n.op == "MAX_POOL_2D")
    assert node.snr_db == pool.snr_db and node.local_snr_db == pool.local_snr_db and node.blame == "upstream"
    svg = error_graph(models["stats"], path).svg
    assert f"SNR: {pool.snr_db:.1f} dB (cumulative)" in svg and f"local SNR: {pool.local_snr_db:.1f} dB" in svg


def test_ops_that_cannot_run_alone_keep_their_cumulative_snr_and_say_why(models, test_set, monkeypatch):
    from workbench.core import litert
    from workbench.core.error_path import entry_sentence, error_path
    from workbench.core.samples import Samples

    def refused(model):
        raise ValueError("no such op")

    samples = Samples.of(test_set[0][:20])
    before = error_path(models["float"], models["uint8"], samples)
    monkeypatch.setattr(litert, "disconnected", refused)
    path = error_path(models["float"], models["uint8"], samples)
    assert [p.snr_db for p in path] == pytest.approx([p.snr_db for p in before])
    assert all(p.local_snr_db is None and "could not run alone (ValueError: no such op)" in p.no_local for p in path)
    assert "the op was not run alone" in entry_sentence(path[-1])


def _buffers_after_the_flatbuffer(model) -> bytes:
    """The same model with its constant data stored after the flatbuffer (buffer offset and size), as
    ai-edge-quantizer and the converter write large models."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from workbench.core import litert

    tree = schema.ModelT.InitFromPackedBuf(bytearray(litert.model_bytes(model)), 0)
    moved = [(b, bytes(np.asarray(b.data, np.uint8))) for b in tree.buffers if b.data is not None and len(b.data)]
    for b, data in moved:
        b.data, b.offset, b.size = None, 1, len(data)  # placeholders of the final width

    def pack() -> bytes:
        (builder := flatbuffers.Builder(1024)).Finish(tree.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    head = pack()
    at, tail = (len(head) + 15) // 16 * 16, b""
    for b, data in moved:
        b.offset = at + len(tail)
        tail += data + b"\0" * (-len(data) % 16)
    packed = pack()
    assert len(packed) == len(head)
    return packed + b"\0" * (at - len(packed)) + tail


def test_a_model_whose_data_follow_the_flatbuffer_runs_alone_op_by_op(models, test_set):
    from workbench.core import litert
    from workbench.core.error_path import error_path
    from workbench.core.samples import Samples

    samples = Samples.of(test_set[0][:50])
    moved = _buffers_after_the_flatbuffer(models["int8"])
    assert np.array_equal(litert.run(moved, samples.images).outputs, litert.run(models["int8"], samples.images).outputs)
    inline, after = error_path(models["float"], models["int8"], samples), error_path(models["float"], moved, samples)
    assert [p.local_snr_db for p in after] == pytest.approx([p.local_snr_db for p in inline])
    assert all(p.local_snr_db is not None for p in after)
