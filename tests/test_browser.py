"""Real-browser tests: headless Chromium (Debian's) driven by Playwright, against real Netron and JupyterLab.

Screenshots go to ``test-output/``. ``pytest -m "not browser"`` skips this module for a quick run;
``make test`` and CI run it.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import time
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from conftest import NATIVE_NOISE
from test_notebooks import NOTEBOOKS as NOTEBOOK_CASES, parse_results, results_source
from browser_support import (browser_session, chromium, copy_notebooks, jupyter_lab, lab_page_config, netron_notice,
                             output_text_with, run_all_cells, run_in_kernel, set_slider, svg_texts, tensor_types,
                             wait_for_ops, wait_kernel_idle, widget_slider)

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MEAN_STD = "04_mean_std.ipynb"
GRAPHS = "06_graphs.ipynb"
YOUR_MODEL = "08_your_model.ipynb"
# Each notebook runs with its test parameters (its ``Case`` in test_notebooks.py, injected after its parameters
# cell as papermill does; the session fixtures' training config, so trained weights come from the cache) and with
# its widgets and Netron views shown. Its lesson check runs on the values of this run: in a session that selects
# these tests, test_notebooks.py does not run the three notebooks again (tests/conftest.py deselects its runs); in
# one without them (``-m "not browser"``) test_notebooks.py runs them with nbclient and checks the same lessons.
CASES = {case.name: case for case in NOTEBOOK_CASES}
UI = {MEAN_STD: {"show_widgets": True}, GRAPHS: {"show_netron": True},
      YOUR_MODEL: {"show_widgets": True, "show_netron": True, "netron_height": 400}}
PARAMETERS = {name: {**CASES[name].parameters, **ui} for name, ui in UI.items()}


def _teaches(lab, name: str) -> None:
    """The notebook's lesson (its ``Case.check``) on what the kernel of the browser's run computed."""
    case = CASES[name]
    assert case.browser_test.startswith("tests/test_browser.py::"), (name, case.browser_test)
    case.check(parse_results(run_in_kernel(lab, name, results_source(case.results)), name))


def _listening_addresses(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


@pytest.fixture(scope="module")
def int8(qat_int8):
    from workbench import convert

    return convert(qat_int8, "qat-int8")


def _no_csp_violations(session) -> None:
    refused = [m for m in session.console if "Content Security Policy" in m or "Refused to" in m]
    assert not refused, refused


def test_netron_renders_converted_model_graph(float_tflite, output_dir):
    from workbench import viewer

    served = viewer.serve(float_tflite)
    try:
        assert _listening_addresses(served.port) == {"127.0.0.1"}
        with browser_session() as session:
            session.page.goto(served.url)
            texts = wait_for_ops(session.page, set(float_tflite.ops))  # no click: a notice fails the wait
            session.page.screenshot(path=str(output_dir / "netron_float32.png"))
            _wait_title(session.page, served.name)
        # The operators are drawn as graph nodes, not only named in the title.
        assert sum(t in ("Conv2D", "CONV_2D") for t in texts) == float_tflite.ops.count("CONV_2D")
        assert sum(t in ("FullyConnected", "FULLY_CONNECTED") for t in texts) == float_tflite.ops.count(
            "FULLY_CONNECTED")
    finally:
        assert viewer.stop_all() == 1
    assert not _listening_addresses(served.port)


# Netron 9.3.3's page says "Please update to the newest version." from ~2027-04-21 (180 days after its build).
AFTER_NETRON_EXPIRY = datetime.datetime(2028, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


def test_page_is_private_durable_and_draws_each_model_without_a_click(float_tflite, int8, output_dir):
    """A fresh context (no cookies) in June 2028: both graphs drawn, no notice, every request to our server only."""
    from workbench import viewer

    float_frame, int8_frame = viewer.serve(float_tflite), viewer.serve(int8)
    with browser_session(clock=AFTER_NETRON_EXPIRY) as session:
        page = session.page
        for served, model in ((float_frame, float_tflite), (int8_frame, int8)):
            page.goto(served.url)
            wait_for_ops(page, set(model.ops))
            _wait_title(page, served.name)
            assert "Please update" not in page.content() and not netron_notice(page)
        # Two frames on one page, as compare() shows them: each draws its own model. (A new tab: an about:blank
        # opened from Netron's page would inherit its CSP, frame-src 'none'.)
        page = session.context.new_page()
        page.on("console", lambda message: session.console.append(f"{message.type}: {message.text}"))
        page.set_content(viewer.compare(float_tflite, int8, titles=("float", "int8"), url_mode="direct").data)
        frames = [page.locator("iframe").nth(i).element_handle().content_frame() for i in range(2)]
        left = set(wait_for_ops(frames[0], {"CONV_2D", "FULLY_CONNECTED"}))
        right = set(wait_for_ops(frames[1], {"QUANTIZE", "CONV_2D", "DEQUANTIZE"}))
        assert not left & {"Quantize", "Dequantize", "QUANTIZE", "DEQUANTIZE"}, left
        _wait_title(frames[0], float_frame.name)
        _wait_title(frames[1], int8_frame.name)
        page.screenshot(path=str(output_dir / "netron_compare_2028.png"))
        session.wait_requests_settled()  # late requests (telemetry would come after the graph) are recorded
        assert session.requests and not session.outside_requests(), session.outside_requests()
        assert {urllib.parse.urlsplit(u).port for u in session.requests if u.startswith("http")} == {
            float_frame.port}
        assert session.context.cookies() == []  # no consent cookie, no _ga
        _no_csp_violations(session)
    viewer.stop_all()


def test_recorder_catches_what_the_unmodified_page_does(float_tflite, monkeypatch):
    """Control: netron's page as installed prompts, expires and reaches out, and the checks above would see it.

    Outside requests are aborted by the browser (nothing leaves the machine), but still recorded.
    """
    from workbench.explore import viewer_server

    monkeypatch.setattr(viewer_server, "REWRITES", ())
    monkeypatch.setattr(viewer_server, "CSP", "default-src * data: blob: 'unsafe-inline'")
    server = viewer_server.ViewerServer()
    try:
        entry = server.register(float_tflite.tflite, "float32.tflite")
        url = f"{server.url}?url=model/{entry.token}/{entry.file_name}"
        loopback = re.compile(r"^(https?://127\.0\.0\.1[:/]|data:|blob:)")
        with browser_session() as session:
            session.context.route(lambda u: not loopback.match(u), lambda route: route.abort())
            session.page.goto(url)
            notice = _wait_for_notice(session.page)
            assert "cookies" in notice and "Accept" in notice
            assert any(u.startswith("https://ipinfo.io/") for u in session.outside_requests())
            session.page.locator("#message-button").click()
            wait_for_ops(session.page, {"CONV_2D"})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any("google" in u for u in session.outside_requests()):
                time.sleep(0.2)
            assert any(u.startswith("https://analytics.google.com/") for u in session.outside_requests())
        with browser_session(clock=AFTER_NETRON_EXPIRY) as session:
            session.context.route(lambda u: not loopback.match(u), lambda route: route.abort())
            session.page.goto(url)
            assert "Please update" in _wait_for_notice(session.page)
    finally:
        server.close()


def _wait_title(frame, title: str, timeout: float = 10.0) -> None:
    """Netron names the page after the model it opened (a moment after drawing it)."""
    deadline = time.monotonic() + timeout
    while frame.title() != title and time.monotonic() < deadline:
        time.sleep(0.1)
    assert frame.title() == title


def _wait_for_notice(page, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notice = netron_notice(page)
        if notice:
            return notice
        time.sleep(0.2)
    raise AssertionError("netron's unmodified page showed no notice")


def _with_parameters(path: Path, values: dict) -> None:
    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Parameters injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, serving copies of the notebooks under test."""
    root = tmp_path_factory.mktemp("lab-notebooks")
    names = [name for name in PARAMETERS if (NOTEBOOKS / name).is_file()]
    copy_notebooks(NOTEBOOKS, root, names)
    for name in names:
        _with_parameters(root / name, PARAMETERS[name])
    with jupyter_lab(root, tmp_path_factory.mktemp("lab-state")) as server:
        yield server


def _outputs_text(page) -> str:
    return "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())


def test_mean_std_sliders_render_and_move_accuracy(lab, output_dir):
    assert (lab.root / MEAN_STD).is_file(), f"notebooks/{MEAN_STD} is missing"
    with chromium() as page:
        run_all_cells(page, lab, MEAN_STD)
        _teaches(lab, MEAN_STD)
        slider = widget_slider(page, "mean")
        slider.wait_for(state="visible", timeout=60_000)
        slider.scroll_into_view_if_needed()
        text = _outputs_text(page)
        assert "Loading widget" not in text
        assert not re.search(r"\b(FloatSlider|IntSlider|VBox|HBox|Tab)\(", text), "a widget shows as its raw repr"
        before, deadline = "", time.monotonic() + 60
        while not before and time.monotonic() < deadline:  # the readout renders just after the sliders
            before = output_text_with(page, "accuracy")
            if not before:
                time.sleep(0.3)
        assert before, "no accuracy readout next to the sliders"
        page.screenshot(path=str(output_dir / "jupyterlab_04_mean_std_before.png"))
        current = float(slider.locator(".widget-readout").inner_text())
        set_slider(slider, 128 if current < 64 else 0)
        after = before
        deadline = time.monotonic() + 60
        while after == before and time.monotonic() < deadline:
            time.sleep(0.3)
            after = output_text_with(page, "accuracy")
        with contextlib.suppress(AssertionError):  # let the plots redraw before the picture
            wait_kernel_idle(page, 30.0)
        page.screenshot(path=str(output_dir / "jupyterlab_04_mean_std_after.png"))
        # the notebook's background sweep reported into the explorer itself: its status line and heatmap
        swept = output_text_with(page, "swept ")
        heatmap = page.locator(".widget-output img")
        images = heatmap.count()
        if images:
            heatmap.first.scroll_into_view_if_needed()
            page.screenshot(path=str(output_dir / "jupyterlab_04_mean_std_background_sweep.png"))
    assert after != before, f"accuracy text did not change after moving mean: {before!r}"
    assert re.search(r"swept \d+ points in [0-9.]+ s; best mean=", swept), swept
    assert images == 1, "the background sweep's heatmap is not in the explorer's output area"
    numbers = [re.findall(r"accuracy[^0-9]*([0-9.]+)", t, re.IGNORECASE) for t in (before, after)]
    assert numbers[0] and numbers[1] and numbers[0][0] != numbers[1][0], (before, after)


def test_lab_shows_no_news_pop_up(lab):
    """The environment's JupyterLab config turns the news/update announcements off (nothing fetched, no toast)."""
    config = lab_page_config(lab)
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"], config["disabledExtensions"]


def _frame(iframe):
    iframe.scroll_into_view_if_needed()
    return iframe.element_handle().content_frame()


def test_graphs_notebook_shows_netron_iframe(lab, output_dir):
    assert (lab.root / GRAPHS).is_file(), f"notebooks/{GRAPHS} is missing"
    with browser_session() as session:
        page = session.page
        run_all_cells(page, lab, GRAPHS)
        _teaches(lab, GRAPHS)
        iframes = page.locator(".jp-OutputArea-output iframe")
        iframes.first.wait_for(state="attached", timeout=30_000)
        sources = [iframes.nth(i).get_attribute("src") for i in range(iframes.count())]
        assert len(sources) == 4, sources  # QAT graph, float and uint8 side by side, int8
        # The kernel runs under this JupyterLab, which has jupyter-server-proxy: frames go through
        # {base_url}proxy/PORT/ (same origin as Lab), one server, one path per model.
        assert all(re.fullmatch(r"/proxy/(\d+)/\?url=model/[A-Za-z0-9_-]{32}/[A-Za-z0-9._-]+", s) for s in sources), \
            sources
        assert len({s.split("/")[2] for s in sources}) == 1 and len(set(sources)) == 4

        frame = _frame(iframes.first)
        texts = wait_for_ops(frame, {"Conv2D", "MatMul", "Relu"})  # TensorFlow op names; no click, no notice
        page.screenshot(path=str(output_dir / "jupyterlab_06_graphs_netron_qat.png"))
        assert any(t.startswith("FakeQuant") for t in texts), "the QAT graph shows no fake-quant nodes"

        # compare(float, uint8): two frames, each under its title, each with its own graph.
        figures = page.locator(".workbench-compare figure")
        assert figures.count() == 2
        assert [c.strip() for c in figures.locator("figcaption").all_text_contents()] == ["float32", "legacy uint8"]
        left, right = (_frame(figures.nth(i).locator("iframe")) for i in range(2))
        for side in (left, right):
            wait_for_ops(side, {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"})
        page.screenshot(path=str(output_dir / "jupyterlab_06_graphs_compare.png"))
        left_types, right_types = tensor_types(left), tensor_types(right)
        assert "float32" in left_types and "uint8" not in left_types, left_types
        assert "uint8" in right_types and "float32" not in right_types, right_types  # integer end to end
        _wait_title(left, "float32.tflite")
        _wait_title(right, next(s for s in sources if "legacy-uint8" in s).rsplit("/", 1)[1])

        frame = _frame(iframes.last)
        wait_for_ops(frame, {"QUANTIZE", "CONV_2D", "FULLY_CONNECTED", "DEQUANTIZE"})
        page.screenshot(path=str(output_dir / "jupyterlab_06_graphs_netron_int8.png"))
        assert svg_texts(frame)
        session.wait_requests_settled()
        assert not session.outside_requests(), session.outside_requests()
        assert not page.locator(".Toastify__toast", has_text=re.compile("news", re.IGNORECASE)).count()
        stderr = "\n".join(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                           .all_text_contents())
        assert not NATIVE_NOISE.search(stderr), stderr[:2000]  # no red TensorFlow / LiteRT text in the cells


def test_your_model_notebook_sliders_and_graphs_in_lab(lab, output_dir):
    """08 on the digits stand-in, as a user runs it: both explorers respond, the float and uint8 graphs draw, the
    int8 and uint8 graphs coloured by per-layer SNR show, and nothing is requested outside the machine."""
    assert (lab.root / YOUR_MODEL).is_file(), f"notebooks/{YOUR_MODEL} is missing"
    with browser_session() as session:
        page = session.page
        run_all_cells(page, lab, YOUR_MODEL, timeout=300.0)
        _teaches(lab, YOUR_MODEL)
        text = _outputs_text(page)
        assert "Loading widget" not in text
        assert not re.search(r"\b(FloatSlider|IntSlider|FloatRangeSlider|VBox|HBox|Tab)\(", text), \
            "a widget shows as its raw repr"
        slider = widget_slider(page, "mean")
        slider.wait_for(state="visible", timeout=60_000)
        slider.scroll_into_view_if_needed()
        before, deadline = "", time.monotonic() + 60
        while not before and time.monotonic() < deadline:  # the graphs below load meanwhile and may scroll the page
            slider.scroll_into_view_if_needed()
            before = output_text_with(page, "accuracy now")
            if not before:
                time.sleep(0.3)
        page.screenshot(path=str(output_dir / "jupyterlab_08_your_model_before.png"))
        assert before, "no accuracy readout next to the sliders"
        slider.scroll_into_view_if_needed()
        set_slider(slider, 128)  # from the correct mean, 0 for a model trained on [0, 1]
        after, deadline = before, time.monotonic() + 60
        while after == before and time.monotonic() < deadline:
            time.sleep(0.3)
            slider.scroll_into_view_if_needed()
            after = output_text_with(page, "accuracy now")
        page.screenshot(path=str(output_dir / "jupyterlab_08_your_model_sliders.png"))
        assert after != before, f"accuracy text did not change after moving mean: {before!r}"

        figures = page.locator(".workbench-compare figure")
        figures.first.wait_for(state="attached", timeout=30_000)
        assert figures.count() == 2
        left, right = (_frame(figures.nth(i).locator("iframe")) for i in range(2))
        for side in (left, right):  # the MobileNet-style net: depthwise-separable convolutions
            wait_for_ops(side, {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
        page.screenshot(path=str(output_dir / "jupyterlab_08_your_model_compare.png"))
        left_types, right_types = tensor_types(left), tensor_types(right)
        assert "float32" in left_types and "uint8" not in left_types, left_types
        assert "uint8" in right_types, right_types
        measured = page.locator(".workbench-error-graphs svg [data-snr]")  # the per-layer SNR on both graphs
        measured.first.wait_for(state="attached", timeout=30_000)
        assert page.locator(".workbench-error-graphs svg").count() == 2
        fills = measured.evaluate_all("nodes => nodes.map(n => n.querySelector('rect').getAttribute('fill'))")
        assert len(fills) > 1 and len(set(fills)) > 1, fills
        page.locator(".workbench-error-graphs").first.screenshot(path=str(output_dir / "jupyterlab_08_error_graph.png"))
        session.wait_requests_settled()
        assert not session.outside_requests(), session.outside_requests()
        stderr = "\n".join(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                           .all_text_contents())
        assert not NATIVE_NOISE.search(stderr), stderr[:2000]
