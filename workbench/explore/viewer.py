"""Netron inside the notebook through the workbench's private viewer server, plus a server-free fallback.

``show(model)`` accepts whatever the workbench produces (a ``ConvertedModel``,
``.tflite`` bytes, a model file, a SavedModel folder, a Keras model), registers
its bytes with the one viewer server of this process (``viewer_server``: 127.0.0.1,
a free port, an unguessable path per model, Netron's page made private) and
returns an inline ``IFrame``; ``compare(a, b)`` puts two of them side by side,
each titled. Every frame has the same origin, so no notice or prompt appears in
any of them. ``stop_all()`` (also run at interpreter exit) stops the server.

Which address the frames use (``frame_base``): the server itself,
``http://127.0.0.1:PORT/``, when the browser runs on the kernel's machine; or
Jupyter's ``{base_url}proxy/PORT/`` (jupyter-server-proxy) when the kernel runs
under a Jupyter server that the browser may reach from elsewhere (JupyterHub,
Binder). ``WORKBENCH_VIEWER_URL=direct|proxy`` or ``url_mode=`` forces it.

Where no frame can work (a static HTML export) ``tensor_table`` and
``plot_op_chain`` show the same facts without a server.
"""

from __future__ import annotations

import atexit
import html
import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core import artifacts
from ..core.litert import check_identifier
from ..core.sources import FrozenGraph, SavedModel
from .graph_tables import DepthwiseCheck, bias_scales, depthwise_equivalence, op_graph, plot_op_chain, tensor_table
from .viewer_server import LOOPBACK, MODEL_PREFIX, NetronChanged, ViewerServer

__all__ = ["LOOPBACK", "URL_ENV", "URL_MODES", "ServedModel", "NetronChanged", "model_file", "serve", "show",
           "compare", "frame_base", "running", "stop", "stop_all", "tensor_table", "bias_scales", "op_graph",
           "plot_op_chain", "depthwise_equivalence", "DepthwiseCheck"]

URL_ENV = "WORKBENCH_VIEWER_URL"
URL_MODES = ("auto", "direct", "proxy")
_SAVED_MODEL = "saved_model.pb"

_server: ViewerServer | None = None
_lock = threading.Lock()
_atexit_registered = False


@dataclass(frozen=True)
class ServedModel:
    """One model registered with the viewer server: where its page and its bytes are."""

    name: str
    token: str
    port: int
    size: int
    host: str = LOOPBACK

    @property
    def path(self) -> str:
        """The path of the model's bytes on the server, ``model/<token>/<name>`` (relative to its root)."""
        return f"{MODEL_PREFIX[1:]}{self.token}/{self.name}"

    @property
    def url(self) -> str:
        """The page showing this model, straight from the server (``http://127.0.0.1:PORT/?url=...``)."""
        return f"http://{self.host}:{self.port}/?url={quote(self.path)}"

    @property
    def model_url(self) -> str:
        """The model's bytes, straight from the server."""
        return f"http://{self.host}:{self.port}/{self.path}"

    def frame_url(self, url_mode: str | None = None) -> str:
        """The page's address as a notebook frame should load it (see ``frame_base``)."""
        return f"{frame_base(self.port, url_mode)}?url={quote(self.path)}"

    def alive(self) -> bool:
        """Whether the server still serves this model."""
        with _lock:
            server = _server
        return server is not None and server.port == self.port and server.alive() and \
            server.model(self.token) is not None


def model_file(model: Any) -> Path:
    """The file Netron should open for ``model``, written to the cache if needed.

    Args:
        model: a ``ConvertedModel`` (its bytes are written once, named by recipe
            and content hash), ``.tflite`` bytes, the path of a model file (``.tflite``,
            ``.keras``, ``.h5``, a frozen ``.pb``: Netron reads them as they are), a
            SavedModel folder, a Keras model, or what ``sources.load_source`` returns
            (a ``SavedModel`` is frozen from its own signature, a ``FrozenGraph`` is its ``.pb``).

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
    if isinstance(model, FrozenGraph):
        return _existing_file(Path(model.path))
    if isinstance(model, SavedModel):
        return _frozen_graph(_existing_file(Path(model.path)), folder, model.signature)
    if _is_converted(model):
        return _write_once(folder, _slug(model.recipe.label()), model.tflite)
    if isinstance(model, (bytes, bytearray)):
        check_identifier(bytes(model[:8]), "model is")
        return _write_once(folder, "model", bytes(model))
    if isinstance(model, (str, os.PathLike)):
        path = _existing_file(Path(model))
        return _frozen_graph(path, folder) if path.is_dir() else path
    if _is_keras(model):
        return _frozen_graph(model, folder)
    raise ValueError(f"model={type(model).__name__}; allowed: a ConvertedModel, .tflite bytes, a model file path, "
                     "a SavedModel folder, a Keras model or sources.load_source(...)")


def serve(model: Any, name: str | None = None) -> ServedModel:
    """Register ``model``'s bytes with this process's viewer server (started on first use).

    Args:
        model: anything ``model_file`` accepts. ``ConvertedModel`` and bytes are
            served from memory (nothing is written); files are read once.
        name: the file name Netron shows (its extension tells Netron the format);
            default: from the recipe or the file.

    Returns:
        The ``ServedModel``: ``url`` opens its page, ``frame_url()`` is the
        address for a notebook frame. Serving the same bytes under the same name
        again returns the same token.

    Raises:
        ValueError: see ``model_file``; a bad ``name``.
        NetronChanged: the installed netron's page cannot be made private.
    """
    default_name, data = _payload(model)
    if name is None:
        name = default_name
    elif not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) \
            or "." not in name:
        raise ValueError(f"name={name!r}; allowed: a file name with an extension (e.g. 'uint8.tflite'), of "
                         "letters, digits, '.', '_' and '-'")
    server = _running_server()
    entry = server.register(data, name)
    return ServedModel(entry.file_name, entry.token, server.port, len(entry.data))


def show(model: Any, height: int = 600, url_mode: str | None = None):
    """An inline Netron view of ``model`` (an ``IPython.display.IFrame`` on the viewer server).

    Args:
        model: anything ``model_file`` accepts.
        height: iframe height in pixels (100-4000).
        url_mode: ``"direct"``, ``"proxy"`` or ``"auto"``; default ``$WORKBENCH_VIEWER_URL`` or auto
            (see ``frame_base``).

    Returns:
        ``IPython.display.IFrame``; display it (or leave it last in a cell).

    Raises:
        ValueError: a bad ``height``, ``url_mode`` or model (see ``model_file``).
    """
    from IPython.display import IFrame

    from ..core import checks

    checks.number("height", height, low=100, high=4000, integer=True)
    _url_mode(url_mode)
    return IFrame(serve(model).frame_url(url_mode), width="100%", height=int(height))


def compare(left: Any, right: Any, height: int = 600, titles: tuple[str, str] | None = None,
            url_mode: str | None = None):
    """Two Netron views side by side (e.g. the float model and the uint8 one), each under its title.

    Args:
        left, right: anything ``model_file`` accepts.
        height: iframe height in pixels (100-4000).
        titles: captions above the two views; default: the served file names.
        url_mode: as for ``show``.

    Returns:
        ``IPython.display.HTML`` with the two iframes.

    Raises:
        ValueError: a bad ``height``, ``titles``, ``url_mode`` or model.
    """
    from IPython.display import HTML

    from ..core import checks

    checks.number("height", height, low=100, high=4000, integer=True)
    if titles is not None and not (isinstance(titles, (tuple, list)) and len(titles) == 2
                                   and all(isinstance(t, str) for t in titles)):
        raise ValueError(f"titles={titles!r}; allowed: None or two strings")
    _url_mode(url_mode)
    served = (serve(left), serve(right))
    if titles is None:
        titles = tuple(s.name for s in served)
    cells = "".join(
        f'<figure style="flex:1;min-width:0;margin:0"><figcaption style="font-weight:bold;margin:2px 0">'
        f'{html.escape(title)}</figcaption><iframe src="{html.escape(s.frame_url(url_mode))}" '
        f'title="{html.escape(title)}" width="100%" height="{int(height)}" style="border:1px solid #ccc">'
        f'</iframe></figure>'
        for s, title in zip(served, titles))
    return HTML(f'<div class="workbench-compare" style="display:flex;gap:8px">{cells}</div>')


def frame_base(port: int, url_mode: str | None = None) -> str:
    """The address a notebook frame uses to reach the viewer server on ``port`` (ends with ``/``).

    ``direct``: ``http://127.0.0.1:PORT/``, for a browser on the kernel's machine.
    ``proxy``: ``{base_url}proxy/PORT/`` (a path, same origin as Jupyter, through
    jupyter-server-proxy), for a browser that reaches the kernel only through its
    Jupyter server. ``base_url`` is ``$JUPYTERHUB_SERVICE_PREFIX`` if set, else the
    ``base_url`` of the running Jupyter server whose pid is ``$JPY_PARENT_PID``,
    else ``/``. ``auto`` (the default) picks ``proxy`` when jupyter-server-proxy is
    installed and such a Jupyter server is found, ``direct`` otherwise.

    Args:
        port: the viewer server's port.
        url_mode: ``"auto"``, ``"direct"`` or ``"proxy"``; default ``$WORKBENCH_VIEWER_URL`` or ``"auto"``.

    Raises:
        ValueError: an unknown ``url_mode`` or ``$WORKBENCH_VIEWER_URL``.
    """
    mode = _url_mode(url_mode)
    base = _jupyter_base_url() if mode != "direct" else None
    if mode == "auto":
        mode = "proxy" if base is not None and importlib.util.find_spec("jupyter_server_proxy") else "direct"
    if mode == "proxy":
        return f"{base or '/'}proxy/{int(port)}/"
    return f"http://{LOOPBACK}:{int(port)}/"


def running() -> tuple[ServedModel, ...]:
    """The models the viewer server serves now (empty when it is not running)."""
    with _lock:
        server = _server
        if server is None or not server.alive():
            return ()
        return tuple(ServedModel(e.file_name, e.token, server.port, len(e.data)) for e in server.entries())


def stop(served: ServedModel) -> None:
    """Stop serving one model: its path answers 404 from now on (no error if it was already gone)."""
    with _lock:
        if _server is not None and _server.port == served.port:
            _server.unregister(served.token)


def stop_all() -> int:
    """Stop the viewer server (its port closes) and forget every model; returns how many were served."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is None:
        return 0
    count = len(server.entries())
    server.close()
    return count


def _running_server() -> ViewerServer:
    global _server, _atexit_registered
    with _lock:
        if _server is None or not _server.alive():
            if not _atexit_registered:
                atexit.register(stop_all)
                _atexit_registered = True
            _server = ViewerServer()
        return _server


def _url_mode(url_mode: str | None) -> str:
    if url_mode is None:
        value = os.environ.get(URL_ENV, "").strip().lower() or "auto"
        if value not in URL_MODES:
            raise ValueError(f"{URL_ENV}={os.environ[URL_ENV]!r} is not supported; allowed: "
                             f"{', '.join(map(repr, URL_MODES))}")
        return value
    if url_mode not in URL_MODES:
        raise ValueError(f"url_mode={url_mode!r} is not supported; allowed: None, {', '.join(map(repr, URL_MODES))}")
    return url_mode


def _jupyter_base_url() -> str | None:
    """The base URL of the Jupyter server this kernel runs under (``/user/alice/``), or None if there is none."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if prefix:
        return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    parent = os.environ.get("JPY_PARENT_PID", "").strip()
    if not parent.isdigit():
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for info in list_running_servers():
        if str(info.get("pid")) == parent:
            base = str(info.get("base_url") or "/")
            return "/" + base.strip("/") + "/" if base.strip("/") else "/"
    return None


def _payload(model: Any) -> tuple[str, bytes]:
    """``(file name, bytes)`` to serve for ``model``: converted models and bytes straight from memory."""
    if _is_converted(model):
        return f"{_url_name(model.recipe.label())}.tflite", bytes(model.tflite)
    if isinstance(model, (bytes, bytearray)):
        check_identifier(bytes(model[:8]), "model is")
        return "model.tflite", bytes(model)
    path = model_file(model)
    suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,12}", path.suffix) else ".bin"
    return f"{_url_name(path.stem)}{suffix}", path.read_bytes()


def _is_converted(model: Any) -> bool:
    return hasattr(model, "tflite") and hasattr(model, "recipe")


def _is_keras(model: Any) -> bool:
    return hasattr(model, "layers") and hasattr(model, "get_weights")


def _url_name(text: str) -> str:
    """A file-name stem safe in a URL path without escaping."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:80] or "model"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=,-]+", "_", text).strip("_")[:60] or "model"


def _write_once(folder: Path, stem: str, data: bytes) -> Path:
    digest = artifacts.digest(data, length=12)
    return artifacts.entry(folder / f"{stem}-{digest}.tflite", lambda tmp: tmp.write_bytes(data), key=digest)


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
        check_identifier(head, f"model={str(path)!r} is")
    return path


def _frozen_graph(model: Any, folder: Path, signature: str = "serving_default") -> Path:
    """Freeze a Keras model or a SavedModel's ``signature`` function into one GraphDef Netron draws in full.

    Netron opens a ``saved_model.pb`` on its init function; the frozen graph
    shows the inference ops themselves, QAT's ``FakeQuantWithMinMaxVars`` included.
    """
    default = signature == "serving_default"
    tag, digest = ("", artifacts.digest(model, length=12)) if default else \
        (f"-{_slug(signature)}", artifacts.digest(model, signature, length=12))
    target = folder / f"{_slug(model.name)}{tag}-frozen-{digest}.pb"
    if artifacts.valid_entry(target, digest):
        return target
    from ..core.keras_compat import freeze_function, tf

    if isinstance(model, Path):
        loaded = tf.saved_model.load(str(model))
        if signature not in loaded.signatures:
            raise ValueError(f"model={str(model)!r} has no {signature!r} signature; allowed: a SavedModel with it, "
                             f"e.g. sources.load_source(path, signature=...) of one of {sorted(loaded.signatures)} "
                             "(or pass its saved_model.pb to see the raw file)")
        function = loaded.signatures[signature]
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
    return artifacts.entry(target, lambda tmp: tmp.write_bytes(graph.SerializeToString()), key=digest)
