"""The per-tensor quantization error drawn on the model's graph: one box per op, coloured by its output's SNR.

``error_graph(model, errors)`` reads the ops of a ``.tflite`` in execution order, with the tensors that link them
(``litert.read_model``), lays them out top-down (an op one row below the deepest op it reads from) and colours
each op by the SNR (dB) of its output tensor against the float model: ``errors`` is a ``LayerReport`` from
``layer_errors``, an ``error_path`` or a plain ``{tensor name: snr_db}``. Ops whose output was not compared
(quantize/dequantize, ops fused into a later tensor of the same layer, float ops) are grey. The drawing is one
inline SVG with its legend (colour scale in dB): no script, style sheet or font is loaded from anywhere, so it
shows the same in JupyterLab, in a saved notebook and offline. Each measured op carries ``data-snr``; every op has
a ``<title>`` tooltip (op, tensor, dtype, SNR). Given the model's ``error_path`` (its ``PathPoint``s), the colour is
the cumulative SNR and the tooltip gives the local one too (the op alone, fed the float model's inputs), and says
whether the op makes the error or inherits it.

``error_graphs({"int8": (model, errors), "uint8": ...})`` draws several models side by side.

Why not ai-edge-model-explorer (0.1.34), which draws per-node data overlays: serving it as the Netron view is
served would mean patching its bundle and its server, not configuring them. Its ``index.html`` preconnects to and
loads Google Sans from fonts.gstatic.com (78 ``@font-face`` URLs) and its app calls ``gtag(...)``; it sets
``<base href="/">`` and its minified JavaScript calls absolute ``/api/v1/...`` paths, which miss Jupyter's
``{base_url}proxy/{port}/`` prefix; its Flask server has no secret paths or Host check, reads any local file for
anyone who asks (``/api/v1/read_text_file?path=``) and asks pypi.python.org and api.github.com for a newer
version; and the package requires ``ai-edge-model-explorer-adapter`` (a 128 MB wheel) even when a custom adapter
builds the graph.
The workbench's own reader and one SVG give the coloured graph with none of that.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..core import litert

# SNR (dB) -> colour: red where the error is as large as the signal (0 dB), dark green where its power is 100 000
# times smaller (50 dB; int8 layers of a well-calibrated model sit around 40-50 dB).
SCALE = ((0.0, (0xd7, 0x30, 0x27)), (10.0, (0xfc, 0x8d, 0x59)), (20.0, (0xfe, 0xe0, 0x8b)),
         (30.0, (0xd9, 0xef, 0x8b)), (40.0, (0x91, 0xcf, 0x60)), (50.0, (0x1a, 0x98, 0x50)))
NOT_MEASURED = "#d9d9d9"
_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN, _LEGEND_H = 176, 36, 14, 26, 10, 64


def snr_colour(snr_db: float | None) -> str:
    """The fill colour of an op whose output has ``snr_db`` (``#rrggbb``; clipped to the scale's 0..50 dB;
    grey for ``None`` or NaN)."""
    if snr_db is None or math.isnan(snr_db):
        return NOT_MEASURED
    x = min(max(snr_db, SCALE[0][0]), SCALE[-1][0])
    for (lo, c0), (hi, c1) in zip(SCALE, SCALE[1:]):
        if x <= hi:
            t = (x - lo) / (hi - lo)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1))
    return "#" + "".join(f"{c:02x}" for c in SCALE[-1][1])


@dataclass(frozen=True)
class GraphNode:
    """One op as drawn: its position in execution order, output tensor, SNR (``None`` if not compared) and fill."""

    index: int
    op: str
    tensor: str
    dtype: str
    snr_db: float | None
    colour: str
    row: int
    column: int
    local_snr_db: float | None = None  # the op alone, fed the float model's inputs (an ``error_path``'s)
    blame: str | None = None  # ``PathPoint.blame``: "op" (it makes the error), "upstream" (it inherits it)


@dataclass(frozen=True)
class ErrorGraph:
    """A model's graph coloured by per-op SNR; ``svg`` is the drawing, shown by a notebook cell."""

    title: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[int, int], ...]  # (producer op, consumer op), positions in ``nodes``
    svg: str

    def _repr_html_(self) -> str:
        return _figure(self)


@dataclass(frozen=True)
class ErrorGraphs:
    """Several ``ErrorGraph`` side by side (one notebook output)."""

    graphs: tuple[ErrorGraph, ...]

    def _repr_html_(self) -> str:
        inner = "".join(_figure(g) for g in self.graphs)
        return f'<div class="workbench-error-graphs" style="display:flex;gap:16px;align-items:flex-start">{inner}</div>'


def snr_by_tensor(errors: Any) -> dict[str, float]:
    """``{tensor name: snr_db}`` from a ``LayerReport`` (its matched tensors), an ``error_path`` (the cumulative SNR)
    or a mapping of that form."""
    if _points(errors):
        return {p.name: float(p.snr_db) for p in errors}
    if hasattr(errors, "layers"):
        return {e.tensor: float(e.snr_db) for e in errors.layers}
    if isinstance(errors, Mapping):
        return {str(k): float(v) for k, v in errors.items()}
    raise ValueError(f"errors={type(errors).__name__}; allowed: a LayerReport (layer_errors), an error_path or a "
                     "dict {tensor name: snr_db}")


def _points(errors: Any) -> bool:
    """Whether ``errors`` is an ``error_path`` (a non-empty sequence of ``PathPoint``)."""
    return isinstance(errors, (tuple, list)) and bool(errors) and all(hasattr(p, "local_snr_db") for p in errors)


def error_graph(model: Any, errors: Any, title: str = "") -> ErrorGraph:
    """Draw ``model``'s ops in execution order, each coloured by the SNR of its output tensor.

    Args:
        model: the converted model (``ConvertedModel``, bytes or path), uint8 or int8.
        errors: a ``LayerReport`` of the same model (``layer_errors``), its ``error_path`` (the tooltips give the
            local SNR too) or ``{tensor name: snr_db}``.
        title: shown above the drawing.

    Returns:
        ``ErrorGraph`` (a notebook cell shows it; ``.svg`` is the drawing, ``.nodes`` the ops as drawn).
    """
    snr = snr_by_tensor(errors)
    points = {p.name: p for p in errors} if _points(errors) else {}
    info = litert.read_model(model)
    tensors = {t.index: t for t in info.tensors}
    ops = info.op_details
    writer = {out: pos for pos, op in enumerate(ops) for out in op.outputs}
    edges, rows = [], []
    for pos, op in enumerate(ops):
        sources = sorted({writer[i] for i in op.inputs if i in writer})
        edges += [(src, pos) for src in sources]
        rows.append(1 + max((rows[s] for s in sources), default=-1))
    columns, used = [], {}
    for row in rows:
        columns.append(used.get(row, 0))
        used[row] = columns[-1] + 1
    nodes = []
    for pos, op in enumerate(ops):
        out = tensors.get(op.outputs[0]) if op.outputs else None
        value = snr.get(out.name) if out is not None else None
        point = points.get(out.name) if out is not None else None
        nodes.append(GraphNode(pos, op.name, out.name if out else "", out.dtype if out else "", value,
                               snr_colour(value), rows[pos], columns[pos], point and point.local_snr_db,
                               point and point.blame))
    svg = _svg(nodes, edges, max(used.values(), default=1), max(rows, default=0) + 1)
    return ErrorGraph(title, tuple(nodes), tuple(edges), svg)


def error_graphs(models: Mapping[str, tuple[Any, Any]]) -> ErrorGraphs:
    """``error_graph`` of each ``{label: (model, errors)}``, drawn side by side under their labels."""
    return ErrorGraphs(tuple(error_graph(model, errors, title=label) for label, (model, errors) in models.items()))


def _centre(node: GraphNode) -> tuple[float, float]:
    return (_MARGIN + node.column * (_BOX_W + _GAP_X) + _BOX_W / 2,
            _MARGIN + _LEGEND_H + node.row * (_BOX_H + _GAP_Y) + _BOX_H / 2)


def _svg(nodes: list[GraphNode], edges: list[tuple[int, int]], width_nodes: int, height_nodes: int) -> str:
    curves = [_edge(nodes[src], nodes[dst]) for src, dst in edges]
    reach = max((right for _, right in curves), default=0)  # edges that skip rows pass right of the boxes
    width = int(max(2 * _MARGIN + width_nodes * (_BOX_W + _GAP_X) - _GAP_X, reach + _MARGIN, 420))  # 420: legend
    height = 2 * _MARGIN + _LEGEND_H + height_nodes * (_BOX_H + _GAP_Y) - _GAP_Y
    parts = [f'<svg class="workbench-error-graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" style="font-family:sans-serif;font-size:11px">', _legend()]
    parts += [f'<path d="{d}" fill="none" stroke="#777" stroke-width="1.2"/>' for d, _ in curves]
    for node in nodes:
        x, y = _centre(node)
        x, y = x - _BOX_W / 2, y - _BOX_H / 2
        measured = node.snr_db is not None and not math.isnan(node.snr_db)
        value = f"{node.snr_db:.1f} dB" if measured else "not measured"
        tip = f"{node.op} (op {node.index})\ntensor: {node.tensor}\ndtype: {node.dtype}\nSNR: {value}"
        if node.local_snr_db is not None:
            tip += (f" (cumulative)\nlocal SNR: {node.local_snr_db:.1f} dB (the op alone, fed the float model's "
                    "inputs)" + {"op": "\nthe op itself makes the error",
                                 "upstream": "\nthe op inherits the error from the ops before it"}.get(node.blame, ""))
        tip = html.escape(tip)
        data = f' data-snr="{node.snr_db:.2f}"' if measured else ""
        parts.append(
            f'<g class="op" data-op="{html.escape(node.op)}" data-tensor="{html.escape(node.tensor)}"{data}>'
            f'<title>{tip}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="4" fill="{node.colour}" '
            'stroke="#444"/>'
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 14:.0f}" text-anchor="middle" font-weight="bold">'
            f'{html.escape(node.op)}</text>'
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 28:.0f}" text-anchor="middle">'
            f'{html.escape(node.dtype)} · {value}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _edge(src: GraphNode, dst: GraphNode) -> tuple[str, float]:
    """The SVG path of one edge and its rightmost x: bottom to top for adjacent rows, else an arc on the right side
    (wider the more rows it skips), so it does not run behind the boxes in between."""
    (x1, y1), (x2, y2) = _centre(src), _centre(dst)
    if dst.row - src.row == 1:
        y1, y2 = y1 + _BOX_H / 2, y2 - _BOX_H / 2
        bend = (y2 - y1) / 2
        return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}", max(x1, x2)
    x1, x2 = x1 + _BOX_W / 2, x2 + _BOX_W / 2
    side = max(x1, x2) + 24 + 8 * (dst.row - src.row)
    path = f"M{x1:.0f},{y1:.0f} C{side:.0f},{y1:.0f} {side:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    return path, 0.75 * side + 0.25 * max(x1, x2)  # a cubic's furthest point with both controls at ``side``


def _legend() -> str:
    """The colour scale (0..50 dB in 1 dB steps), its ticks and units, and the grey of ops not compared."""
    lo, hi = SCALE[0][0], SCALE[-1][0]
    step, x0, y0 = 4, _MARGIN + 16, _MARGIN + 18
    parts = [f'<g class="legend"><text x="{_MARGIN}" y="{_MARGIN + 10}">SNR of each op\'s output against the float '
             'model (dB, higher is better)</text>']
    for i in range(int(hi - lo)):
        parts.append(f'<rect x="{x0 + i * step}" y="{y0}" width="{step}" height="12" '
                     f'fill="{snr_colour(lo + i + 0.5)}"/>')
    for db in range(int(lo), int(hi) + 1, 10):
        x = x0 + (db - lo) * step
        label = f"≥{db}" if db == hi else (f"≤{db}" if db == lo else f"{db}")
        parts.append(f'<line x1="{x:.0f}" y1="{y0 + 12}" x2="{x:.0f}" y2="{y0 + 16}" stroke="#444"/>'
                     f'<text x="{x:.0f}" y="{y0 + 27}" text-anchor="middle">{label} dB</text>')
    gx = x0 + (hi - lo) * step + 24
    parts.append(f'<rect x="{gx:.0f}" y="{y0}" width="12" height="12" fill="{NOT_MEASURED}" stroke="#444"/>'
                 f'<text x="{gx + 16:.0f}" y="{y0 + 10}">not measured</text></g>')
    return "".join(parts)


def _figure(graph: ErrorGraph) -> str:
    caption = (f'<figcaption style="font-family:sans-serif;font-weight:bold">{html.escape(graph.title)}</figcaption>'
               if graph.title else "")
    return (f'<figure style="margin:0;overflow:auto;max-height:900px;max-width:100%">{caption}{graph.svg}'
            '</figure>')
