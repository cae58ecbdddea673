"""The per-tensor error drawn on the graph: one box per op, coloured by its output's SNR, a legend, nothing external."""

from __future__ import annotations

import re

import pytest

from workbench import convert, read_model
from workbench.troubleshoot.error_graph import NOT_MEASURED, error_graph, error_graphs, snr_colour
from workbench.troubleshoot.layer_error import layer_errors


@pytest.fixture(scope="module")
def int8_model(float_model, mnist):
    return convert(float_model, "int8-ptq", representative=mnist.train_images[:200])


def test_colour_scale_ends_and_middle():
    assert snr_colour(-5.0) == snr_colour(0.0) == "#d73027"
    assert snr_colour(20.0) == "#fee08b"
    assert snr_colour(50.0) == snr_colour(float("inf")) == "#1a9850"
    assert snr_colour(None) == snr_colour(float("nan")) == NOT_MEASURED


def test_one_node_per_op_coloured_by_a_known_snr(int8_model):
    info = read_model(int8_model)
    conv = next(op for op in info.op_details if op.name == "CONV_2D")
    tensor = next(t.name for t in info.tensors if t.index == conv.outputs[0])
    graph = error_graph(int8_model, {tensor: 20.0}, title="int8")
    html = graph._repr_html_()
    assert len(graph.nodes) == len(info.ops) == html.count('<g class="op"')
    assert [n.op for n in graph.nodes] == list(info.ops)
    assert len(re.findall(r"data-snr=", html)) == 1
    node = re.search(r'<g class="op" data-op="CONV_2D" data-tensor="[^"]*" data-snr="20.00">(.*?)</g>', html,
                     re.S).group(1)
    assert 'fill="#fee08b"' in node and "<title>CONV_2D" in node and "SNR: 20.0 dB" in node and "dtype: int8" in node
    assert sum(n.colour == NOT_MEASURED for n in graph.nodes) == len(info.ops) - 1
    assert graph.edges and all(a < b for a, b in graph.edges)  # ops read what earlier ops wrote
    assert "SNR of each op" in html and "≥50 dB" in html and "≤0 dB" in html and "not measured" in html
    assert "http" not in html.lower() and "<script" not in html and "<link" not in html and "@import" not in html


def test_layer_report_colours_each_measured_op(int8_model, float_model, mnist):
    report = layer_errors(int8_model, float_model, mnist.test_images[:100])
    both = error_graphs({"int8": (int8_model, report), "int8 again": (int8_model, {})})
    measured = [n for n in both.graphs[0].nodes if n.snr_db is not None]
    assert {n.tensor for n in measured} == {e.tensor for e in report.layers}
    assert all(n.colour == snr_colour(n.snr_db) for n in measured)
    assert len({n.colour for n in measured}) > 1
    html = both._repr_html_()
    assert html.count("<svg") == 2 and "http" not in html.lower()


def test_errors_of_another_form_are_refused(int8_model):
    with pytest.raises(ValueError, match="allowed: a LayerReport"):
        error_graph(int8_model, [1.0, 2.0])


def test_a_skip_connection_arcs_beside_the_ops_it_skips():
    from workbench.core.keras_compat import keras
    from workbench.troubleshoot import error_graph as eg

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = keras.layers.Conv2D(4, 3, padding="same")(y)
    graph = error_graph(convert(keras.Model(inp, keras.layers.Add()([x, y])), "float32"), {})
    assert [(n.op, n.row) for n in graph.nodes] == [("CONV_2D", 0), ("CONV_2D", 1), ("CONV_2D", 2), ("ADD", 3)]
    assert set(graph.edges) == {(0, 1), (1, 2), (2, 3), (0, 3)}
    controls = [float(c) for c in re.findall(r'<path d="M[\d.]+,[\d.]+ C([\d.]+),', graph.svg)]
    right = eg._MARGIN + eg._BOX_W  # the boxes' right side
    assert sum(c > right for c in controls) == 1  # only the skip edge leaves the column
    assert "data-snr" not in graph.svg and "http" not in graph.svg
