"""Helpers for the real-browser tests: Debian's headless Chromium driven by Playwright, Netron pages, JupyterLab.

Playwright's own browser download needs the internet, so Chromium comes from
the system (``make browser`` installs Debian's package) and is launched through
``executable_path``. Every browser and server started here is stopped by the
context manager that started it, also when the test fails.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

# JupyterLab settings the workbench installs into the environment (make install): no news pop-up.
LAB_CONFIG = Path(__file__).resolve().parents[1] / "jupyter"
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass
class Session:
    """A fresh browser context and its page, with every request it (and its frames and workers) made."""

    context: object
    page: object
    requests: list = field(default_factory=list)
    console: list = field(default_factory=list)

    def outside_requests(self, allowed_hosts: tuple[str, ...] = ("127.0.0.1",)) -> list[str]:
        """The recorded request URLs that went to any host but ``allowed_hosts`` (``data:``/``blob:`` excepted)."""
        outside = []
        for url in self.requests:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname not in allowed_hosts:
                outside.append(url)
        return outside

    def wait_requests_settled(self, quiet: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until no new request has been recorded for ``quiet`` seconds (late ones, such as telemetry after a
        graph is drawn, are then in ``requests``).

        Raises:
            AssertionError: requests kept coming for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen, since = len(self.requests), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise AssertionError(f"requests still coming after {timeout:.0f} s: {self.requests[seen:][-5:]}")
            time.sleep(0.1)
            if len(self.requests) != seen:
                seen, since = len(self.requests), time.monotonic()


@contextlib.contextmanager
def browser_session(width: int = 1400, height: int = 1000, clock: datetime.datetime | None = None) -> Iterator[Session]:
    """A fresh headless Chromium context (no cookies, no storage) recording every request; closed on exit.

    Args:
        clock: if given, the pages' clock starts at this time (Playwright's clock).
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"no Chromium at {CHROMIUM}; install Debian's package (make browser) "
                           "or point WORKBENCH_CHROMIUM at a Chromium binary")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            if clock is not None:
                context.clock.install(time=clock)
            session = Session(context, None)
            context.on("request", lambda request: session.requests.append(request.url))
            session.page = context.new_page()
            session.page.on("console", lambda message: session.console.append(f"{message.type}: {message.text}"))
            yield session
        finally:
            browser.close()


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A fresh headless Chromium page; the browser is closed on exit."""
    with browser_session(width, height) as session:
        yield session.page


def display_names(op: str) -> set[str]:
    """The spellings an op can have on Netron's page: the schema's ``CONV_2D`` and the displayed ``Conv2D``."""
    camel = "".join(part if part[:1].isdigit() else part.capitalize() for part in op.split("_"))
    return {op, camel}


def svg_texts(frame) -> list[str]:
    """The text of every SVG ``<text>`` node in a page or frame.

    Read from the serialized DOM: Netron replaces ``window.eval``, which
    Playwright's element queries rely on.
    """
    return [html.unescape(t).strip() for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", frame.content())]


def svg_titles(frame) -> list[str]:
    """The tooltips Netron draws into its graph (``<title>`` in the SVG): tensor types such as ``uint8[6,5,5,1]``."""
    canvas = frame.locator("svg#canvas")
    return re.findall(r"<title>([^<]*)</title>", canvas.inner_html()) if canvas.count() else []


def tensor_types(frame) -> set[str]:
    """The element types of the tensors Netron's graph shows (``float32``, ``uint8``, ...)."""
    return {m.group(1) for t in svg_titles(frame) if (m := re.match(r"([a-z]+[0-9]*)\[", t))}


def netron_notice(frame) -> str:
    """The text of a notice Netron shows over its page (consent, "Please update", an error), or ``""``.

    The workbench's page must never show one: a graph that only appears after a
    click is a failure, so nothing here clicks.
    """
    text = frame.locator("#message-text")
    button = frame.locator("#message-button")
    if (text.count() and text.first.is_visible() and (text.first.text_content() or "").strip()) or \
            (button.count() and button.first.is_visible()):
        return " ".join(((text.first.text_content() or "") + " [" + (button.first.text_content() or "") + "]").split())
    return ""


def wait_for_ops(frame, ops: set[str], timeout: float = 30.0) -> list[str]:
    """Wait until Netron's SVG shows every op in ``ops`` (either spelling); return all SVG texts. Nothing is clicked.

    Raises:
        AssertionError: Netron shows a notice (consent, update, error), or some ops
            never appeared (the message lists what was drawn).
    """
    deadline = time.monotonic() + timeout
    texts: list[str] = []
    while time.monotonic() < deadline:
        notice = netron_notice(frame)
        if notice:
            raise AssertionError(f"Netron shows a notice instead of (or over) the graph: {notice!r}")
        texts = svg_texts(frame)
        missing = [op for op in ops if not display_names(op) & set(texts)]
        if not missing:
            return texts
        time.sleep(0.3)
    raise AssertionError(f"Netron never drew {sorted(missing)}; the SVG shows {sorted(set(texts))[:40]}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        # A workspace of its own, reset: a notebook opened earlier must not come back as the active tab.
        return f"{self.url}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={self.token}"


@contextlib.contextmanager
def jupyter_lab(root: Path, workdir: Path, timeout: float = 90.0) -> Iterator[Lab]:
    """Start JupyterLab on 127.0.0.1 (free port, random token) serving ``root``; stop it and its kernels on exit.

    Its settings, workspaces and runtime files live under ``workdir`` so the
    user's own JupyterLab state neither leaks in nor is touched; the
    repository's ``jupyter/`` config (what ``make install`` puts into the
    environment) is read first.
    """
    token = secrets.token_hex(16)
    port = free_port()
    # Without PYTEST_CURRENT_TEST, ipykernel forwards native stderr to the cells, as in a user's JupyterLab.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    for name in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR"):
        folder = workdir / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(LAB_CONFIG), env.get("JUPYTER_CONFIG_PATH")]))
    log = workdir / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--IdentityProvider.token={token}",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, token, process, log, timeout)
        yield Lab(url, token, root, log)
    finally:
        _stop_lab(url, token, process)


def copy_notebooks(source: Path, target: Path, names: list[str]) -> Path:
    """Copy the named notebooks into ``target`` (JupyterLab autosaves outputs; the repository stays clean)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, target / name)
    return target


def run_all_cells(page, lab: Lab, name: str, timeout: float = 150.0) -> None:
    """Open notebook ``name``, wait for its kernel, run all cells and wait until every cell has run.

    Raises:
        AssertionError: a cell raised (its error text is in the message) or the run timed out.
    """
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    wait_kernel_idle(page, 60.0)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    deadline = time.monotonic() + timeout
    # No pause before looking: a committed notebook's prompts are all blank ("[ ]"), so they are all numbered only
    # once this run has reached its last cell.
    while time.monotonic() < deadline:
        # text_content, not inner_text: cells scrolled out of view are not rendered but keep their text.
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
        if prompts and all(re.search(r"\[\d+\]", p) for p in prompts):
            break
        errors = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        if errors.count():
            raise AssertionError(f"{name} raised while running:\n" + "\n".join(errors.all_text_contents())[:3000])
        time.sleep(0.5)
    else:
        raise AssertionError(f"{name} did not finish within {timeout:.0f} s; prompts: {prompts}")
    error = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    if error.count():
        raise AssertionError(f"{name} raised:\n" + "\n".join(error.all_text_contents())[:3000])


def wait_kernel_idle(page, timeout: float) -> None:
    """Wait for the status bar's "<kernel> | Idle" (the toolbar indicator says idle before a kernel exists)."""
    status = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
    try:
        status.first.wait_for(state="visible", timeout=timeout * 1000)
    except Exception as err:  # playwright's TimeoutError
        raise AssertionError(f"the notebook's kernel never became idle ({err})") from None


def lab_page_config(lab: Lab) -> dict:
    """The page config JupyterLab hands its front end (``jupyter-config-data`` in ``/lab``)."""
    with urllib.request.urlopen(f"{lab.url}/lab?token={lab.token}", timeout=10) as response:
        page = response.read().decode()
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    if match is None:
        raise AssertionError("JupyterLab's /lab page has no jupyter-config-data")
    return json.loads(match.group(1))


def run_in_kernel(lab: Lab, name: str, code: str, timeout: float = 120.0) -> str:
    """Run ``code`` in the kernel that runs notebook ``name`` in ``lab`` (through the kernel's own connection
    file, with ``jupyter_client``); return what it printed.

    Raises:
        AssertionError: no single kernel runs ``name``, or ``code`` raised (its traceback is in the message).
    """
    from jupyter_client import BlockingKernelClient

    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}", timeout=10) as response:
        sessions = json.loads(response.read())
    kernels = [s["kernel"]["id"] for s in sessions if s.get("path") == name and s.get("kernel")]
    assert len(kernels) == 1, f"{name}: {len(kernels)} kernels in {[s.get('path') for s in sessions]}"
    client = BlockingKernelClient(connection_file=str(lab.log.parent / "jupyter_runtime_dir" /
                                                      f"kernel-{kernels[0]}.json"))
    client.load_connection_file()
    client.start_channels()
    printed: list[str] = []

    def keep(message: dict) -> None:
        if message["header"]["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["header"]["msg_type"] == "error":
            printed.append("\n".join(message["content"]["traceback"]))

    try:
        reply = client.execute_interactive(code, timeout=timeout, output_hook=keep, store_history=False)
    finally:
        client.stop_channels()
    text = "".join(printed)
    assert reply["content"]["status"] == "ok", f"{name}: the code raised:\n{text[-3000:]}"
    return text


def _wait_until_up(url: str, token: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop_lab(url: str, token: str, process: subprocess.Popen) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure its process group is gone."""
    with contextlib.suppress(Exception):
        request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=5).close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Kernels run in the server's process group; none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def widget_slider(page, description: str):
    """The ipywidgets slider whose label is ``description``."""
    return page.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile(
        rf"^\s*{re.escape(description)}\s*$"))).first


def set_slider(slider, value: float) -> None:
    """Type ``value`` into a slider's readout box, as a user would, and press Enter."""
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+a")
    readout.type(f"{value:g}")
    readout.press("Enter")


def output_text_with(page, word: str) -> str:
    """The text of the first rendered widget or output that mentions ``word`` (case-insensitive)."""
    pattern = re.compile(re.escape(word), re.IGNORECASE)
    for selector in (".jupyter-widgets.widget-html, .jupyter-widgets.widget-label, .widget-html-content",
                     ".jp-OutputArea-output"):
        items = page.locator(selector).filter(has_text=pattern)
        if items.count():
            return items.first.inner_text()
    return ""
