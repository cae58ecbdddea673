"""Real-browser tests: headless Chromium (Debian's) driven by Playwright, against real Netron and JupyterLab.

Screenshots go to ``test-output/``. ``pytest -m "not browser"`` skips this module for a quick run;
``make test`` and CI run it.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import nbformat
import pytest

from conftest import TRAIN_EPOCHS, TRAIN_SIZE
from browser_support import (chromium, copy_notebooks, jupyter_lab, output_text_with, run_all_cells, set_slider,
                             svg_texts, wait_for_ops, wait_kernel_idle, widget_slider)

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MEAN_STD = "04_mean_std.ipynb"
GRAPHS = "06_graphs.ipynb"
# Small values injected after each notebook's parameters cell, as papermill does (same training config as the
# session fixtures, so trained weights come from the cache).
PARAMETERS = {
    MEAN_STD: {"epochs": TRAIN_EPOCHS, "train_size": TRAIN_SIZE, "eval_size": 1000, "live_size": 500, "grid_size": 3,
               "show_widgets": True},
    GRAPHS: {"epochs": TRAIN_EPOCHS, "train_size": TRAIN_SIZE, "show_netron": True},
}


def _listening_addresses(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_netron_renders_converted_model_graph(float_tflite, output_dir):
    from workbench import viewer

    server = viewer.serve(float_tflite)
    try:
        assert _listening_addresses(server.port) == {"127.0.0.1"}
        with chromium() as page:
            page.goto(server.url)
            texts = wait_for_ops(page, set(float_tflite.ops))
            page.screenshot(path=str(output_dir / "netron_float32.png"))
        # The operators are drawn as graph nodes, not only named in the title.
        assert sum(t in ("Conv2D", "CONV_2D") for t in texts) == float_tflite.ops.count("CONV_2D")
        assert sum(t in ("FullyConnected", "FULLY_CONNECTED") for t in texts) == float_tflite.ops.count(
            "FULLY_CONNECTED")
    finally:
        viewer.stop(server)
    assert not _listening_addresses(server.port)


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
        slider = widget_slider(page, "mean")
        slider.wait_for(state="visible", timeout=60_000)
        slider.scroll_into_view_if_needed()
        text = _outputs_text(page)
        assert "Loading widget" not in text
        assert not re.search(r"\b(FloatSlider|IntSlider|VBox|HBox|Tab)\(", text), "a widget shows as its raw repr"
        before = output_text_with(page, "accuracy")
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
    assert after != before, f"accuracy text did not change after moving mean: {before!r}"
    numbers = [re.findall(r"accuracy[^0-9]*([0-9.]+)", t, re.IGNORECASE) for t in (before, after)]
    assert numbers[0] and numbers[1] and numbers[0][0] != numbers[1][0], (before, after)


def test_graphs_notebook_shows_netron_iframe(lab, output_dir):
    assert (lab.root / GRAPHS).is_file(), f"notebooks/{GRAPHS} is missing"
    with chromium() as page:
        run_all_cells(page, lab, GRAPHS)
        iframes = page.locator('.jp-OutputArea-output iframe[src^="http://127.0.0.1:"]')
        iframes.first.wait_for(state="attached", timeout=30_000)
        assert iframes.count() >= 3  # QAT graph, float vs uint8 side by side, int8
        first = iframes.first
        first.scroll_into_view_if_needed()
        frame = first.element_handle().content_frame()
        texts = wait_for_ops(frame, {"Conv2D", "MatMul", "Relu"})  # TensorFlow op names
        page.screenshot(path=str(output_dir / "jupyterlab_06_graphs_netron_qat.png"))
        assert any(t.startswith("FakeQuant") for t in texts), "the QAT graph shows no fake-quant nodes"
        last = iframes.last
        last.scroll_into_view_if_needed()
        frame = last.element_handle().content_frame()
        texts = wait_for_ops(frame, {"QUANTIZE", "CONV_2D", "FULLY_CONNECTED", "DEQUANTIZE"})
        page.screenshot(path=str(output_dir / "jupyterlab_06_graphs_netron_int8.png"))
        assert svg_texts(frame)
