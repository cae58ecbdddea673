"""Netron inside the notebook, served on 127.0.0.1 only, plus a server-free fallback.

``show(model)`` accepts whatever the workbench produces (a ``ConvertedModel``, a
``.tflite`` path, a SavedModel folder, a Keras model), writes it to a file if it
is not one already, serves that file with the ``netron`` package on a free
loopback port and returns an inline ``IFrame``. Servers are kept in a registry:
showing the same file again reuses its server; ``stop_all()`` (also run at
interpreter exit) stops every one of them.

Where an iframe to ``127.0.0.1`` cannot work (a remote kernel, a static HTML
export) ``tensor_table`` and ``plot_op_chain`` show the same facts without a server.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import artifacts
from .graph_plot import DepthwiseCheck, bias_scales, depthwise_equivalence, op_graph, plot_op_chain, tensor_table

__all__ = ["LOOPBACK", "NetronServer", "model_file", "serve", "show", "compare", "running", "stop", "stop_all",
           "tensor_table", "bias_scales", "op_graph", "plot_op_chain", "depthwise_equivalence", "DepthwiseCheck"]

LOOPBACK = "127.0.0.1"
_SAVED_MODEL = "saved_model.pb"

# The servers this process started, keyed by the real path of the file they serve.
_servers: dict[str, NetronServer] = {}
_lock = threading.Lock()
_atexit_registered = False


@dataclass(frozen=True)
class NetronServer:
    """One running Netron server and the file it shows."""

    path: Path
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        """Whether netron still serves this address."""
        import netron

        return bool(netron.status(self.address))


def model_file(model: Any) -> Path:
    """The file Netron should open for ``model``, written to the cache if needed.

    Args:
        model: a ``ConvertedModel`` (its bytes are written once, named by recipe
            and content hash), ``.tflite`` bytes, the path of a model file, a
            SavedModel folder, or a Keras model.

    Returns:
        The path of an existing, readable model file.

    Raises:
        ValueError: the path does not exist, cannot be read, is empty, is a
            folder without ``saved_model.pb``, or is a ``.tflite`` that is not a
            TFLite flatbuffer; or ``model`` is of a kind Netron cannot show.

    Keras models and SavedModel folders are frozen into one GraphDef (``.pb``)
    of their inference function, so Netron draws every op, QAT's fake-quant
    nodes included (Netron would open a ``saved_model.pb`` on its init
    function); pass the ``saved_model.pb`` file itself to see it raw.
    """
    folder = artifacts.cache_dir() / "netron"
    if hasattr(model, "tflite") and hasattr(model, "recipe"):
        return _write_once(folder, _slug(model.recipe.label()), model.tflite)
    if isinstance(model, (bytes, bytearray)):
        _check_tflite("model", bytes(model[:8]))
        return _write_once(folder, "model", bytes(model))
    if isinstance(model, (str, os.PathLike)):
        path = _existing_file(Path(model))
        return _frozen_graph(path, folder) if path.is_dir() else path
    if hasattr(model, "layers") and hasattr(model, "get_weights"):
        return _frozen_graph(model, folder)
    raise ValueError(f"model={type(model).__name__}; allowed: a ConvertedModel, .tflite bytes, a model file path, "
                     "a SavedModel folder or a Keras model")


def serve(model: Any) -> NetronServer:
    """Serve ``model`` with Netron on 127.0.0.1 (a free port), reusing a running server for the same file.

    Args:
        model: anything ``model_file`` accepts.

    Returns:
        The ``NetronServer`` (its ``url`` opens the graph).

    Raises:
        ValueError: see ``model_file``.
        RuntimeError: netron did not bind the loopback address.
    """
    import netron

    path = model_file(model)
    key = str(path.resolve())
    with _lock:
        server = _servers.get(key)
        if server is not None and server.alive():
            return server
        _register_atexit()
        with _quiet_root_logger():
            host, port = netron.start(key, (LOOPBACK, 0), browse=False)
        server = NetronServer(path, host, int(port))
        if host != LOOPBACK:
            netron.stop(server.address)
            raise RuntimeError(f"netron bound {host!r}; only {LOOPBACK} is allowed")
        _servers[key] = server
        return server


def show(model: Any, height: int = 600):
    """An inline Netron view of ``model`` (an ``IPython.display.IFrame`` on 127.0.0.1).

    Args:
        model: anything ``model_file`` accepts.
        height: iframe height in pixels (100-4000).

    Returns:
        ``IPython.display.IFrame``; display it (or leave it last in a cell).

    Raises:
        ValueError: a bad ``height`` or model (see ``model_file``).
    """
    import netron

    from . import validate

    validate.number("height", height, low=100, high=4000, integer=True)
    return netron.widget(serve(model).address, height=int(height))


def compare(left: Any, right: Any, height: int = 600, titles: tuple[str, str] | None = None):
    """Two Netron views side by side (e.g. the float model and the uint8 one).

    Args:
        left, right: anything ``model_file`` accepts.
        height: iframe height in pixels (100-4000).
        titles: captions above the two views; default: the file names.

    Returns:
        ``IPython.display.HTML`` with the two iframes.

    Raises:
        ValueError: a bad ``height``, ``titles`` or model.
    """
    import html

    from IPython.display import HTML

    from . import validate

    validate.number("height", height, low=100, high=4000, integer=True)
    servers = (serve(left), serve(right))
    if titles is None:
        titles = tuple(s.path.name for s in servers)
    elif not (isinstance(titles, (tuple, list)) and len(titles) == 2 and all(isinstance(t, str) for t in titles)):
        raise ValueError(f"titles={titles!r}; allowed: None or two strings")
    cells = "".join(
        f'<div style="flex:1;min-width:0"><div style="font-weight:bold;margin:2px 0">{html.escape(title)}</div>'
        f'<iframe src="{s.url}" width="100%" height="{int(height)}" style="border:1px solid #ccc"></iframe></div>'
        for s, title in zip(servers, titles))
    return HTML(f'<div class="workbench-compare" style="display:flex;gap:8px">{cells}</div>')


def running() -> tuple[NetronServer, ...]:
    """The servers this process started that are still serving."""
    with _lock:
        return tuple(s for s in _servers.values() if s.alive())


def stop(server: NetronServer) -> None:
    """Stop one server (no error if it already stopped)."""
    with _lock:
        _stop_and_wait(server.address)
        _servers.pop(str(server.path.resolve()), None)


def stop_all() -> int:
    """Stop every server this process started; returns how many were running."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
        count = 0
        for server in servers:
            if server.alive():
                count += 1
            _stop_and_wait(server.address)
        return count


def _stop_and_wait(address: tuple[str, int], timeout: float = 2.0) -> None:
    """Stop netron's server and wait for its thread: until its ``select`` returns, the closed socket still accepts."""
    import netron

    threads = [t for t in threading.enumerate() if getattr(t, "address", None) == address]
    netron.stop(address)
    for thread in threads:
        thread.join(timeout)


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(stop_all)
        _atexit_registered = True


class _quiet_root_logger:
    """netron calls ``logging.basicConfig`` when the root logger has no handler; keep global logging untouched."""

    def __enter__(self):
        self._root = logging.getLogger()
        self._guard = logging.NullHandler()
        self._added = not self._root.handlers
        if self._added:
            self._root.addHandler(self._guard)
        return self

    def __exit__(self, *exc):
        if self._added:
            self._root.removeHandler(self._guard)
        return False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=,-]+", "_", text).strip("_")[:60] or "model"


def _write_once(folder: Path, stem: str, data: bytes) -> Path:
    path = folder / f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.tflite"
    if not path.is_file() or path.stat().st_size != len(data):
        artifacts.write_bytes_atomic(path, data)
    return path


def _check_tflite(name: str, head: bytes) -> None:
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ValueError(f"{name} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                         "allowed: a .tflite file written by the converter")


def _existing_file(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"model={str(path)!r} does not exist; allowed: a .tflite file, a model file Netron "
                         "reads, or a SavedModel folder")
    if path.is_dir():
        if not (path / _SAVED_MODEL).is_file():
            raise ValueError(f"model={str(path)!r} is a folder without {_SAVED_MODEL}; allowed: a SavedModel folder")
        return path
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as err:
        raise ValueError(f"model={str(path)!r} cannot be read ({err.strerror}); "
                         "allowed: a readable model file") from None
    if not head:
        raise ValueError(f"model={str(path)!r} is empty; allowed: a non-empty model file")
    if path.suffix == ".tflite":
        _check_tflite(f"model={str(path)!r}", head)
    return path


def _frozen_graph(model: Any, folder: Path) -> Path:
    """Freeze a Keras model or a SavedModel's serving function into one GraphDef Netron draws in full.

    Netron opens a ``saved_model.pb`` on its init function; the frozen graph
    shows the inference ops themselves, QAT's ``FakeQuantWithMinMaxVars`` included.
    """
    digest = hashlib.sha256()
    if isinstance(model, Path):
        for file in sorted(p for p in model.rglob("*") if p.is_file()):
            digest.update(file.relative_to(model).as_posix().encode())
            digest.update(file.read_bytes())
    else:
        for layer in model.layers:
            digest.update(type(layer).__name__.encode())
            for weight in layer.get_weights():
                digest.update(weight.tobytes())
    target = folder / f"{_slug(model.name)}-frozen-{digest.hexdigest()[:12]}.pb"
    if target.is_file():
        return target
    from .keras_compat import freeze_function, tf

    if isinstance(model, Path):
        loaded = tf.saved_model.load(str(model))
        if "serving_default" not in loaded.signatures:
            raise ValueError(f"model={str(model)!r} has no 'serving_default' signature; allowed: a SavedModel "
                             "written by export_saved_model (or pass its saved_model.pb to see the raw file)")
        function = loaded.signatures["serving_default"]
    else:
        spec = [tf.TensorSpec((1, *x.shape[1:]), x.dtype) for x in model.inputs]
        function = tf.function(lambda *x: model(x[0] if len(x) == 1 else list(x), training=False)
                               ).get_concrete_function(*spec)
    graph = freeze_function(function).graph.as_graph_def()
    # Control edges and NoOps only order variable reads; without them the data flow reads clearly.
    kept = [node for node in graph.node if node.op != "NoOp"]
    del graph.node[:]
    for node in kept:
        data_inputs = [i for i in node.input if not i.startswith("^")]
        del node.input[:]
        node.input.extend(data_inputs)
        graph.node.append(node)
    return artifacts.write_bytes_atomic(target, graph.SerializeToString())
