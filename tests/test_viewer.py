"""The Netron viewer (real netron, real sockets) and its server-free fallback (tensor table, op-chain drawing)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from workbench import viewer


@pytest.fixture(scope="module")
def int8(qat_int8):
    from workbench import convert

    return convert(qat_int8, "qat-int8")


@pytest.fixture(scope="module")
def uint8(qat_uint8):
    from workbench import convert

    return convert(qat_uint8, "legacy-uint8")


@pytest.fixture(autouse=True)
def no_servers_left():
    yield
    viewer.stop_all()


def _listening(port: int) -> set[str]:
    """Local addresses this process listens on at ``port`` (from the kernel's socket table)."""
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _accepts(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def test_serves_on_loopback_only_and_stop_all_leaves_nothing(float_tflite, uint8):
    a = viewer.serve(float_tflite)
    b = viewer.serve(uint8)
    assert a.port != b.port
    for server in (a, b):
        assert server.host == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}"
        assert _listening(server.port) == {"127.0.0.1"}  # not 0.0.0.0, not a public interface
        assert _accepts(server.port)
    assert set(viewer.running()) == {a, b}
    assert viewer.stop_all() == 2
    assert viewer.running() == ()
    for server in (a, b):
        assert not _listening(server.port)
        assert not _accepts(server.port)
        assert not server.alive()


def test_same_file_reuses_its_server_and_stop_restarts(float_tflite, tmp_path):
    first = viewer.serve(float_tflite)
    assert viewer.serve(float_tflite) is first
    path = float_tflite.save(tmp_path / "float.tflite")
    by_path = viewer.serve(path)
    assert by_path is viewer.serve(str(path)) and by_path.port != first.port
    viewer.stop(first)
    again = viewer.serve(float_tflite)
    assert again is not first and again.alive() and not first.alive()
    assert _listening(again.port) == {"127.0.0.1"}


def test_model_file_writes_converted_bytes_once(float_tflite):
    path = viewer.model_file(float_tflite)
    assert path.suffix == ".tflite" and path.read_bytes() == float_tflite.tflite
    assert path.name.startswith("float32-")
    mtime = path.stat().st_mtime_ns
    assert viewer.model_file(float_tflite) == path and path.stat().st_mtime_ns == mtime


def test_show_and_compare_return_loopback_iframes(float_tflite, uint8):
    frame = viewer.show(float_tflite, height=300)
    assert frame.src.startswith("http://127.0.0.1:") and frame.height == 300
    html = viewer.compare(float_tflite, uint8, titles=("float", "uint8")).data
    assert html.count("<iframe") == 2 and html.count('src="http://127.0.0.1:') == 2
    assert "float" in html and "uint8" in html
    with pytest.raises(ValueError, match="height"):
        viewer.show(float_tflite, height=10)
    with pytest.raises(ValueError, match="titles"):
        viewer.compare(float_tflite, uint8, titles=("only one",))


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "folder"])
def test_missing_or_unreadable_files_are_clear_errors(tmp_path, case):
    path = tmp_path / "model.tflite"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"this is not a flatbuffer")
    elif case == "folder":
        path = tmp_path / "not_a_saved_model"
        path.mkdir()
    message = {"missing": "does not exist", "empty": "is empty", "corrupt": "not a TFLite flatbuffer",
               "folder": "without saved_model.pb"}[case]
    with pytest.raises(ValueError, match=message):
        viewer.show(path)
    assert viewer.running() == ()
    with pytest.raises(ValueError, match="allowed"):
        viewer.model_file(42)


def test_keras_qat_model_is_shown_with_its_fake_quant_nodes(qat_int8):
    from workbench.keras_compat import tf

    path = viewer.model_file(qat_int8)
    graph = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    ops = {node.op for node in graph.node}
    assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "Conv2D", "MatMul"} <= ops
    assert "VarHandleOp" not in ops and "ReadVariableOp" not in ops  # frozen: weights are constants
    assert viewer.model_file(qat_int8) == path


def test_saved_model_folder_is_frozen_from_its_serving_signature(float_model, tmp_path):
    from workbench import export_saved_model
    from workbench.keras_compat import tf

    folder = export_saved_model(float_model, tmp_path / "saved")
    path = viewer.model_file(folder)
    ops = {node.op for node in tf.compat.v1.GraphDef.FromString(path.read_bytes()).node}
    assert {"Conv2D", "MaxPool", "MatMul", "Softmax"} <= ops
    raw = viewer.model_file(folder / "saved_model.pb")  # the file itself is served as it is
    assert raw == folder / "saved_model.pb"


def test_tensor_table_int8_quantize_dequantize_biases_and_per_channel(int8):
    table = viewer.tensor_table(int8)
    assert len(table) == len(int8.info.tensors)
    assert list(table.columns[:9]) == ["index", "name", "role", "op", "dtype", "shape", "scale", "zero_point",
                                       "channels"]
    by_index = table.set_index("index")
    assert by_index.loc[int8.input.index, "dtype"] == "float32"
    assert by_index.loc[int8.input.index, "op"] == "QUANTIZE"  # the op reading the float input
    assert by_index.loc[int8.output.index, "op"] == "DEQUANTIZE"
    quantized_input = table[(table.op == "QUANTIZE") & (table.role == "activation")].iloc[0]
    assert quantized_input["dtype"] == "int8" and quantized_input["zero_point"] == -128
    assert quantized_input["scale"] == pytest.approx(1 / 255, rel=1e-3)
    biases = table[table.role == "bias"]
    assert len(biases) == int8.ops.count("CONV_2D") + int8.ops.count("FULLY_CONNECTED")
    assert set(biases.dtype) == {"int32"}
    conv_weights = table[(table.role == "weight") & (table.op == "CONV_2D")]
    assert sorted(conv_weights.channels) == [6, 16] and conv_weights.scale.isna().all()


def test_tensor_table_uint8_matches_the_model_io(uint8):
    table = viewer.tensor_table(uint8).set_index("index")
    row = table.loc[uint8.input.index]
    assert row["role"] == "input" and row["dtype"] == "uint8"
    assert row["scale"] == pytest.approx(uint8.input.scale) and row["zero_point"] == uint8.input.zero_point
    weights = table[table.role == "weight"]
    assert set(weights.dtype) == {"uint8"} and (weights.channels == 1).all()
    assert set(table[table.role == "bias"].dtype) == {"int32"}
    assert not ({"QUANTIZE", "DEQUANTIZE"} & set(table.op))  # integer end to end


def test_bias_scale_is_input_scale_times_weight_scale(int8, uint8):
    for model in (int8, uint8):
        checks = viewer.bias_scales(model)
        assert len(checks) == model.ops.count("CONV_2D") + model.ops.count("FULLY_CONNECTED")
        assert (checks.bias_dtype == "int32").all()
        assert (checks.max_rel_error < 1e-5).all()
        np.testing.assert_allclose(checks.bias_scale, checks.input_scale * checks.weight_scale, rtol=1e-5)


def test_bias_scales_of_a_float_model_is_empty(float_tflite):
    assert viewer.bias_scales(float_tflite).empty


def test_plot_op_chain_draws_one_box_per_op_colored_by_dtype(int8, float_tflite):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert viewer.plot_op_chain(int8, ax=ax) is ax
    texts = [t.get_text() for t in ax.texts]
    for op in set(int8.ops):
        assert op in texts
    colors = {p.get_facecolor()[:3] for p in ax.patches}
    assert len(ax.patches) == len(int8.ops) + 1 and len(colors) == 2  # float edges, int8 inside
    assert ax.get_title() == int8.recipe.label()
    plt.close(fig)
    own = viewer.plot_op_chain(float_tflite)
    assert len({p.get_facecolor()[:3] for p in own.patches}) == 1
    plt.close(own.figure)


def test_depthwise_equivalence_of_the_first_conv(float_model, qat_int8, mnist):
    images = mnist.test_images[:20]
    for model in (float_model, qat_int8):
        check = viewer.depthwise_equivalence(model, images)
        assert check.depth_multiplier == 6 and check.equivalent and check.max_abs_output > 0
    with pytest.raises(ValueError, match="reads 6 channels"):
        viewer.depthwise_equivalence(float_model, images, layer="conv2")
    with pytest.raises(ValueError, match="not in the model"):
        viewer.depthwise_equivalence(float_model, images, layer="nope")
