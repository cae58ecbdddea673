"""The workbench's own Netron server: one per process, loopback only, registered model bytes only.

It owns three things:

- **Netron's front end**, read from the installed ``netron`` package folder
  (never written): a fixed whitelist of the plain files directly in that
  folder, each resolved and checked to lie inside it. Two of them are
  rewritten in memory before they are served (``REWRITES``) so the page is
  private and does not expire: no telemetry, no consent notice, no request to
  ipinfo.io, no "Please update" after 180 days. Each rewrite must find its
  target text exactly as many times as expected, or the server refuses to
  start (``NetronChanged``): a netron upgrade that moves the text fails
  loudly instead of serving a page that phones home.
- **The registry**: model bytes held in memory, each at its own path
  ``/model/<token>/<file name>`` with a random, unguessable token.
- **The HTTP server** (``http.server.ThreadingHTTPServer`` in a daemon
  thread) on ``127.0.0.1`` and a free port. It answers ``GET``/``HEAD`` for
  the front end and registered models only; every other path is 404 (paths
  are matched as sent, never decoded or joined to a folder, so ``../`` and
  ``%2e%2e%2f`` reach nothing). Requests are refused (421) unless their
  ``Host`` is ``127.0.0.1:PORT`` or ``localhost:PORT``, or they come through
  jupyter-server-proxy (see ``host_allowed``). Every response carries a
  Content-Security-Policy that lets the page talk to its own origin only.

The notebook side (which model, which URL, iframes) lives in ``viewer``.
"""

from __future__ import annotations

import http.server
import importlib.util
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ..core import artifacts

LOOPBACK = "127.0.0.1"
MODEL_PREFIX = "/model/"
# What the page may load: its own origin only (scripts, styles, the model, Netron's worker).
# 'unsafe-inline' styles: index.html carries a <style> block and style attributes.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-src 'none'; object-src 'none'; "
       "base-uri 'none'; form-action 'none'")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png",
                 ".ico": "image/x-icon"}
_TOKEN = r"[A-Za-z0-9_-]{20,}"
_FILE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
_MODEL_PATH = re.compile(rf"{re.escape(MODEL_PREFIX)}(?P<token>{_TOKEN})/(?P<name>{_FILE_NAME})")


class NetronChanged(RuntimeError):
    """The installed netron's page no longer contains a text the viewer rewrites."""


@dataclass(frozen=True)
class Rewrite:
    """Replace ``pattern`` (a regex) in front-end file ``file``; it must match exactly ``count`` times."""

    file: str
    pattern: str
    replacement: str
    why: str
    count: int = 1

    def apply(self, text: str) -> str:
        found = len(re.findall(self.pattern, text))
        if found != self.count:
            raise NetronChanged(
                f"netron's {self.file} contains {self.pattern!r} {found} time(s), expected {self.count}: the "
                f"installed netron differs from the one this viewer was written for (9.3.3), so the page "
                f"cannot be made private ({self.why}). Pin netron==9.3.3 or update viewer_server.REWRITES.")
        return re.sub(self.pattern, lambda _: self.replacement, text)


# Measured on netron 9.3.3 in headless Chromium (DESIGN.md); each one was shown necessary by removing it.
REWRITES = (
    Rewrite("index.html", r'<meta name="version" content="\d+\.\d+\.\d+">', '<meta name="version" content="0.0.0">',
            "version 0.0.0: the page does not count as 'packaged', so it sends no Google Analytics"),
    Rewrite("browser.js", re.escape("packaged: this._meta.version && this._meta.version[0] !== '0.0.0',"),
            "packaged: false,", "never 'packaged': no telemetry, whatever the version meta says"),
    Rewrite("index.html", r'<meta name="date" content="[^"]*">\n?', "",
            "no build date: the age check counts from page load, so no 'Please update' after 180 days"),
    Rewrite("browser.js", re.escape("if (this._getCookie('consent') || this._getCookie('_ga')) {"), "if (true) {",
            "consent taken as given (safe only with telemetry off): no notice, no request to ipinfo.io"),
)


def netron_dir() -> Path:
    """The installed ``netron`` package folder (found without importing netron)."""
    spec = importlib.util.find_spec("netron")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the netron package is not installed; allowed: pip install netron==9.3.3")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


class FrontEnd:
    """Netron's static files: a whitelist fixed at start, read once, two of them rewritten in memory."""

    def __init__(self, folder: Path | None = None):
        self.folder = (folder or netron_dir()).resolve()
        self.names = frozenset(
            p.name for p in self.folder.iterdir()
            if p.suffix in CONTENT_TYPES and p.is_file() and p.resolve().parent == self.folder)
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        for name in {r.file for r in REWRITES}:  # fail at start, not in the browser
            self.read(name)

    def read(self, name: str) -> bytes | None:
        """The bytes served for front-end file ``name`` (rewritten if it is rewritten), or None if not served."""
        if name not in self.names:
            return None
        with self._lock:
            data = self._cache.get(name)
            if data is None:
                path = (self.folder / name).resolve()
                if path.parent != self.folder or not path.is_file():  # a symlink out of the folder
                    return None
                data = path.read_bytes()
                rewrites = [r for r in REWRITES if r.file == name]
                if rewrites:
                    text = data.decode("utf-8")
                    for rewrite in rewrites:
                        text = rewrite.apply(text)
                    data = text.encode("utf-8")
                self._cache[name] = data
            return data


@dataclass(frozen=True)
class Entry:
    """One registered model: its bytes, the file name Netron sees, and a title."""

    token: str
    file_name: str
    data: bytes
    sha256: str


class ViewerServer:
    """The HTTP server, its thread, the front end and the registry of models."""

    def __init__(self, front_end: FrontEnd | None = None):
        self.front_end = front_end or FrontEnd()
        self._models: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((LOOPBACK, 0), _Handler, self)
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"workbench-viewer-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The direct address, ``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    def alive(self) -> bool:
        return self._thread.is_alive()

    def register(self, data: bytes, file_name: str) -> Entry:
        """Serve ``data`` at ``/model/<new token>/<file_name>``; the same bytes and name keep their token."""
        if not re.fullmatch(_FILE_NAME, file_name):
            raise ValueError(f"file_name={file_name!r}; allowed: letters, digits, '.', '_', '-' (1-100 characters, "
                             "starting with a letter or digit)")
        digest = artifacts.digest(bytes(data), length=64)
        with self._lock:
            for entry in self._models.values():
                if entry.sha256 == digest and entry.file_name == file_name:
                    return entry
            entry = Entry(secrets.token_urlsafe(24), file_name, bytes(data), digest)
            self._models[entry.token] = entry
            return entry

    def unregister(self, token: str) -> bool:
        with self._lock:
            return self._models.pop(token, None) is not None

    def entries(self) -> tuple[Entry, ...]:
        with self._lock:
            return tuple(self._models.values())

    def model(self, token: str) -> Entry | None:
        with self._lock:
            return self._models.get(token)

    def host_allowed(self, host: str | None, forwarded_context: str | None) -> bool:
        """Whether a request with this ``Host`` (and ``X-Forwarded-Context``) header may be answered.

        A browser that talks to this server directly names this server's port in
        ``Host``; only the loopback names are accepted with it, so a page of
        another site that resolves its name to 127.0.0.1 (DNS rebinding) is
        refused. jupyter-server-proxy forwards the browser's ``Host`` of the
        *Jupyter* server (another port, or none) and adds
        ``X-Forwarded-Context: {base_url}proxy/{PORT}``: that combination is
        accepted. A browser cannot produce it, because it always names this
        server's port when it connects here.
        """
        if not host:
            return False
        host = host.strip().lower()
        if host in {f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"}:
            return True
        match = re.fullmatch(r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?", host)
        if match is None or match.group(2) == str(self.port):
            return False
        return bool(forwarded_context) and re.fullmatch(
            rf"(/[^?#\s]*)?/proxy/{self.port}", forwarded_context.strip()) is not None

    def close(self) -> None:
        """Stop serving and close the listening socket (the port refuses connections afterwards)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        with self._lock:
            self._models.clear()


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, owner: ViewerServer):
        self.owner = owner
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers from the owning ``ViewerServer`` only; it keeps no state of its own."""

    protocol_version = "HTTP/1.1"
    server_version = "workbench-viewer"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is dropped after this many seconds

    def do_GET(self):  # noqa: N802 - http.server's naming
        owner: ViewerServer = self.server.owner
        if not owner.host_allowed(self.headers.get("Host"), self.headers.get("X-Forwarded-Context")):
            return self._send(421, b"refused: this server answers to Host 127.0.0.1:PORT or localhost:PORT only\n",
                              "text/plain; charset=utf-8")
        if not self.path.startswith("/"):
            return self._send(400, b"bad request target\n", "text/plain; charset=utf-8")
        path = re.split(r"[?#]", self.path, maxsplit=1)[0]
        if path in ("/", "/index.html"):
            path = "/index.html"
        match = _MODEL_PATH.fullmatch(path)
        if match:
            entry = owner.model(match["token"])
            if entry is not None and secrets.compare_digest(entry.file_name, match["name"]):
                return self._send(200, entry.data, "application/octet-stream", cache="no-store")
        elif path.count("/") == 1:
            data = owner.front_end.read(path[1:])
            if data is not None:
                return self._send(200, data, CONTENT_TYPES[Path(path).suffix], cache="no-cache")
        return self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - a notebook's stderr is no place for access logs
        pass
