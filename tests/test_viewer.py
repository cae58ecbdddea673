"""The viewer server (real netron front end, real sockets) and the server-free fallback (tensor table, op chain)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from workbench import viewer
from workbench.explore import viewer_server


@pytest.fixture(scope="module")
def int8(qat_int8):
    from workbench import convert

    return convert(qat_int8, "qat-int8")


@pytest.fixture(scope="module")
def uint8(qat_uint8):
    from workbench import convert

    return convert(qat_uint8, "legacy-uint8")


@pytest.fixture(autouse=True)
def no_servers_left(monkeypatch):
    for name in (viewer.URL_ENV, "JUPYTERHUB_SERVICE_PREFIX", "JPY_PARENT_PID"):  # frames go direct unless a test says
        monkeypatch.delenv(name, raising=False)
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


def _raw_get(port: int, target: str, host: str | None = None, headers: dict[str, str] | None = None,
             version: str = "HTTP/1.1", omit_host: bool = False) -> tuple[int, bytes]:
    """Send exactly ``GET <target> <version>`` with Host ``host`` (default ``127.0.0.1:PORT``) unless ``omit_host``.

    Returns the status code and the body. Raw bytes on a socket: nothing
    normalizes the path or the headers on the way.
    """
    lines = [f"GET {target} {version}"]
    if not omit_host:
        lines.append(f"Host: {f'127.0.0.1:{port}' if host is None else host}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()] + ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_one_loopback_server_for_every_model_and_stop_all_leaves_nothing(float_tflite, uint8):
    a = viewer.serve(float_tflite)
    b = viewer.serve(uint8)
    assert a.port == b.port and a.token != b.token  # one server, one origin, a path per model
    assert a.host == "127.0.0.1" and a.url.startswith(f"http://127.0.0.1:{a.port}/?url=model/{a.token}/")
    assert _listening(a.port) == {"127.0.0.1"}  # not 0.0.0.0, not a public interface
    assert _accepts(a.port)
    assert set(viewer.running()) == {a, b} and a.alive() and b.alive()
    assert viewer.stop_all() == 2
    assert viewer.running() == ()
    assert not _listening(a.port)
    assert not _accepts(a.port)
    assert not a.alive() and not b.alive()
    assert viewer.stop_all() == 0


def test_two_models_are_served_at_their_own_tokens_with_their_own_bytes(float_tflite, uint8, int8):
    """The wrong-model bug: netron's own server showed the last model in every frame."""
    served = [viewer.serve(m) for m in (float_tflite, uint8, int8)]
    assert len({s.token for s in served}) == 3
    assert all(len(s.token) >= 32 for s in served)  # secrets.token_urlsafe(24): 192 random bits
    for s, model in zip(served, (float_tflite, uint8, int8)):
        with urllib.request.urlopen(s.model_url) as response:
            assert response.status == 200 and response.read() == model.tflite
        assert s.size == len(model.tflite) and s.name.endswith(".tflite")
    assert viewer.serve(uint8) == served[1]  # the same bytes keep their token (re-running a cell)
    viewer.stop(served[0])
    assert _raw_get(served[0].port, "/" + served[0].path)[0] == 404
    assert _raw_get(served[1].port, "/" + served[1].path) == (200, uint8.tflite)


def test_unknown_tokens_and_paths_are_404(float_tflite):
    s = viewer.serve(float_tflite)
    other = secrets.token_urlsafe(24)
    for target in (f"/model/{other}/{s.name}", f"/model/{s.token}/other.tflite", f"/model/{s.token[:-1]}/{s.name}",
                   f"/model/{s.token}/", f"/model/{s.token}", "/model/", "/nope.js", "/data/" + s.name,
                   "/" + s.name):
        assert _raw_get(s.port, target)[0] == 404, target
    assert _raw_get(s.port, "/" + s.path)[0] == 200
    assert _raw_get(s.port, f"/{s.path}?cb=123")[0] == 200  # netron's cache-busting query


def test_files_beside_the_model_and_etc_passwd_cannot_be_fetched(float_tflite, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model = float_tflite.save(folder / "float.tflite")
    (folder / "secret.txt").write_text("TOP-SECRET-beside-the-model")
    s = viewer.serve(model)
    t = s.token
    targets = [
        "/data/secret.txt", "/data/float.tflite", "/secret.txt", f"/model/{t}/secret.txt",
        f"/model/{t}/../secret.txt", f"/model/{t}/%2e%2e/secret.txt", f"/model/{t}/..%2fsecret.txt",
        f"/model/{t}/{s.name}/../secret.txt", f"/model/{t}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        str(folder / "secret.txt"), "/" + str(folder / "secret.txt"), f"file://{folder}/secret.txt",
        "/etc/passwd", "//etc/passwd", "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%252e%252e%252fetc%252fpasswd", "/..\\..\\..\\etc\\passwd", "/index.html/../../../etc/passwd",
        "/./../../etc/passwd", "/data/../../../../etc/passwd", "/data/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/server.py", "/__init__.py", "/../__init__.py", "/netron/server.py", "/onnx.py",
        f"http://127.0.0.1:{s.port}/../../etc/passwd", f"http://127.0.0.1:{s.port}/data/secret.txt",
    ]
    for target in targets:
        status, body = _raw_get(s.port, target)
        assert status in (400, 404), (target, status)
        assert b"TOP-SECRET" not in body and b"root:" not in body and b"import " not in body, target
    assert _raw_get(s.port, "/" + s.path) == (200, model.read_bytes())


def test_a_foreign_host_header_is_refused(float_tflite):
    s = viewer.serve(float_tflite)
    port, page = s.port, "/" + s.path
    assert _raw_get(port, page, host=f"127.0.0.1:{port}")[0] == 200
    assert _raw_get(port, page, host=f"localhost:{port}")[0] == 200
    assert _raw_get(port, page, host=f"LOCALHOST:{port}")[0] == 200
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"10.0.0.5:{port}",
                 f"127.0.0.1:{port + 1}", "127.0.0.1", f"[::1]:{port}", ""):
        status, body = _raw_get(port, page, host=host)
        assert status == 421 and not body.startswith(b"\x1c"), host
    assert _raw_get(port, page, omit_host=True)[0] == 421  # no Host at all
    assert _raw_get(port, page, omit_host=True, version="HTTP/1.0")[0] == 421
    # Through jupyter-server-proxy: the browser's Host of the *Jupyter* server, plus the proxy's context header.
    proxied = {"X-Forwarded-Context": f"/user/alice/proxy/{port}"}
    assert _raw_get(port, page, host="hub.example.org", headers=proxied)[0] == 200
    assert _raw_get(port, page, host="127.0.0.1:8888", headers={"X-Forwarded-Context": f"/proxy/{port}"})[0] == 200
    # A page of another site resolved to 127.0.0.1 names *this* port in Host: forged proxy headers do not help it.
    assert _raw_get(port, page, host=f"evil.example:{port}", headers=proxied)[0] == 421
    assert _raw_get(port, page, host="hub.example.org", headers={"X-Forwarded-Context": "/proxy/1"})[0] == 421


def test_page_rewrites_make_it_private_and_durable(float_tflite):
    """Each rewrite found its target exactly once, and the served page carries the result."""
    s = viewer.serve(float_tflite)
    folder = viewer_server.netron_dir()
    original_index = (folder / "index.html").read_text()
    original_browser = (folder / "browser.js").read_text()
    for rewrite in viewer_server.REWRITES:
        original = (folder / rewrite.file).read_text()
        assert len(re.findall(rewrite.pattern, original)) == rewrite.count == 1, rewrite
    status, index = _raw_get(s.port, "/")
    assert status == 200 and _raw_get(s.port, "/index.html")[1] == index
    index = index.decode()
    assert '<meta name="version" content="0.0.0">' in index and '<meta name="date"' not in index
    assert '<meta name="version" content="9.3.3">' in original_index and '<meta name="date"' in original_index
    browser = _raw_get(s.port, "/browser.js")[1].decode()
    assert "if (true) {" in browser and "packaged: false," in browser
    assert "this._getCookie('consent') || this._getCookie('_ga')" not in browser
    assert browser.count("\n") == original_browser.count("\n")  # a line-for-line edit, nothing else moved
    # Everything else is served as installed.
    assert _raw_get(s.port, "/tflite.js")[1] == (folder / "tflite.js").read_bytes()


def test_rewrite_fails_loudly_when_netron_moves_its_text(tmp_path):
    rewrite = next(r for r in viewer_server.REWRITES if r.file == "browser.js" and "consent" in r.pattern)
    original = (viewer_server.netron_dir() / "browser.js").read_text()
    moved = original.replace("this._getCookie('consent') || this._getCookie('_ga')",
                             "this._getCookie('_ga') || this._getCookie('consent')")
    with pytest.raises(viewer_server.NetronChanged, match="0 time"):
        rewrite.apply(moved)
    with pytest.raises(viewer_server.NetronChanged, match="2 time"):
        rewrite.apply(original + original)
    # A netron folder whose page moved that text: the server refuses to start instead of serving it.
    copy = tmp_path / "netron"
    shutil.copytree(viewer_server.netron_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "browser.js").write_text(moved)
    with pytest.raises(viewer_server.NetronChanged, match="browser.js"):
        viewer_server.FrontEnd(copy)
    (copy / "browser.js").write_text(original)
    (copy / "index.html").write_text((copy / "index.html").read_text().replace('<meta name="date"', '<meta name="built"'))
    with pytest.raises(viewer_server.NetronChanged, match="index.html"):
        viewer_server.FrontEnd(copy)


def test_front_end_whitelist_stays_inside_the_netron_folder(tmp_path):
    copy = tmp_path / "netron"
    shutil.copytree(viewer_server.netron_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "outside.js").write_text("outside")
    (copy / "link.js").symlink_to(tmp_path / "outside.js")
    (copy / "sub").mkdir()
    (copy / "sub" / "inner.js").write_text("inner")
    front = viewer_server.FrontEnd(copy)
    assert "link.js" not in front.names and front.read("link.js") is None
    assert front.read("sub/inner.js") is None and front.read("../outside.js") is None
    assert not {n for n in front.names if not n.endswith(tuple(viewer_server.CONTENT_TYPES))}
    assert {"index.html", "index.js", "browser.js", "view.js", "tflite.js", "worker.js"} <= front.names
    assert "server.py" not in front.names and "__init__.py" not in front.names


def _record_hashes() -> dict[str, str]:
    """sha256 (urlsafe base64, as in the wheel's RECORD) of every installed netron file RECORD lists."""
    import importlib.metadata

    return {str(f): f.hash.value for f in importlib.metadata.distribution("netron").files
            if f.hash is not None and str(f).startswith("netron/") and "__pycache__" not in str(f)}


def _installed_hashes(names) -> dict[str, str]:
    folder = viewer_server.netron_dir().parent
    return {name: base64.urlsafe_b64encode(hashlib.sha256((folder / name).read_bytes()).digest()).rstrip(b"=").decode()
            for name in names}


def test_installed_netron_files_are_unchanged(float_tflite):
    """Served rewrites happen in memory: every installed file still matches the wheel's RECORD, also after serving."""
    record = _record_hashes()
    assert "netron/index.html" in record and "netron/browser.js" in record
    assert _installed_hashes(record) == record
    s = viewer.serve(float_tflite)
    for name in viewer_server.FrontEnd().names:
        assert _raw_get(s.port, f"/{name}")[0] == 200
    assert _installed_hashes(record) == record


def test_server_is_gone_when_the_process_exits(tmp_path, float_tflite):
    path = float_tflite.save(tmp_path / "float.tflite")
    script = ("import sys, urllib.request; from workbench import viewer; "
              f"s = viewer.serve({str(path)!r}); urllib.request.urlopen(s.model_url).read(); print(s.port)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(viewer.__file__).parents[1])
    assert done.returncode == 0, done.stderr
    port = int(done.stdout.split()[-1])
    assert not _accepts(port)


def test_frame_addresses_direct_proxy_and_forced(float_tflite, monkeypatch):
    s = viewer.serve(float_tflite)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    assert viewer.frame_base(s.port) == f"http://127.0.0.1:{s.port}/"  # no Jupyter server: direct
    assert s.frame_url() == s.url
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    assert viewer.frame_base(s.port) == f"/user/alice/proxy/{s.port}/"  # trailing slash: Netron's relative URLs
    assert s.frame_url() == f"/user/alice/proxy/{s.port}/?url=model/{s.token}/{s.name}"
    assert viewer.frame_base(s.port, "direct") == f"http://127.0.0.1:{s.port}/"
    monkeypatch.setenv(viewer.URL_ENV, "direct")
    assert viewer.frame_base(s.port) == f"http://127.0.0.1:{s.port}/"
    assert viewer.frame_base(s.port, "proxy") == f"/user/alice/proxy/{s.port}/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "user/bob")
    monkeypatch.setenv(viewer.URL_ENV, "proxy")
    assert viewer.frame_base(s.port) == f"/user/bob/proxy/{s.port}/"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    monkeypatch.setenv("JPY_PARENT_PID", "1")  # not a Jupyter server's pid
    assert viewer.frame_base(s.port) == f"/proxy/{s.port}/"  # forced proxy, base unknown: Jupyter's default '/'
    monkeypatch.delenv(viewer.URL_ENV)
    assert viewer.frame_base(s.port) == f"http://127.0.0.1:{s.port}/"
    monkeypatch.setenv(viewer.URL_ENV, "tunnel")
    with pytest.raises(ValueError, match="WORKBENCH_VIEWER_URL='tunnel'.*allowed.*'direct'"):
        viewer.show(float_tflite)
    with pytest.raises(ValueError, match="url_mode='web'.*allowed.*'proxy'"):
        viewer.frame_base(s.port, "web")


def test_show_and_compare_frame_the_right_models(float_tflite, uint8, monkeypatch):
    frame = viewer.show(float_tflite, height=300, url_mode="direct")
    assert frame.height == 300 and frame.width == "100%"
    served = {s.token: s for s in viewer.running()}
    assert len(served) == 1 and frame.src == next(iter(served.values())).url
    page = viewer.compare(float_tflite, uint8, titles=("float", "uint8 <legacy>"), url_mode="direct").data
    sources = re.findall(r'<iframe src="([^"]+)"', page)
    assert len(sources) == 2 and len(set(sources)) == 2
    by_url = {s.url: s for s in viewer.running()}
    assert by_url[sources[0]].size == len(float_tflite.tflite) and by_url[sources[1]].size == len(uint8.tflite)
    assert "<figcaption" in page and "float</figcaption>" in page and "uint8 &lt;legacy&gt;</figcaption>" in page
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    proxied = re.findall(r'<iframe src="([^"]+)"', viewer.compare(float_tflite, uint8, url_mode="proxy").data)
    port = by_url[sources[0]].port
    assert proxied == [u.replace(f"http://127.0.0.1:{port}/", f"/user/alice/proxy/{port}/") for u in sources]
    with pytest.raises(ValueError, match="height=10.*allowed"):
        viewer.show(float_tflite, height=10)
    with pytest.raises(ValueError, match="titles=.*allowed: None or two strings"):
        viewer.compare(float_tflite, uint8, titles=("only one",))
    with pytest.raises(ValueError, match="url_mode=.*allowed"):
        viewer.compare(float_tflite, uint8, url_mode="https")
    with pytest.raises(ValueError, match="name='no extension'.*allowed"):
        viewer.serve(float_tflite, name="no extension")


def test_model_file_writes_converted_bytes_once(float_tflite):
    path = viewer.model_file(float_tflite)
    assert path.suffix == ".tflite" and path.read_bytes() == float_tflite.tflite
    assert path.name.startswith("float32-")
    mtime = path.stat().st_mtime_ns
    assert viewer.model_file(float_tflite) == path and path.stat().st_mtime_ns == mtime


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
    from workbench.core.keras_compat import tf

    path = viewer.model_file(qat_int8)
    graph = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    ops = {node.op for node in graph.node}
    assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "Conv2D", "MatMul"} <= ops
    assert "VarHandleOp" not in ops and "ReadVariableOp" not in ops  # frozen: weights are constants
    assert viewer.model_file(qat_int8) == path


def test_saved_model_folder_is_frozen_from_its_serving_signature(float_model, tmp_path):
    from workbench import export_saved_model
    from workbench.core.keras_compat import tf

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
