"""One live progress line per recipe: its phase (export, convert, calibrate, evaluate, ...) and an ETA.

A MobileNet-size conversion takes tens of seconds; without a moving line the screen looks stuck. ``line(label)``
opens the line of one recipe (or one verdict) for the code inside it; deep in that code, ``phase(name, total)`` says
what starts (``total``: how many items it will count, e.g. images) and ``advance(n)`` counts them. The calls reach
the open line through a context variable, so the converter adapters and the runtime report without a parameter
threaded through every signature, and outside a line they do nothing.

A line is also redrawn every second by a small thread, so a phase without counts (a conversion) shows its time
moving. The line says ``label: phase done/total · 12 s · ETA 8 s``. With a count the ETA is the phase's own rate;
without one it is the time the same phase took last in this process (``about``), none the first time. Where it shows:

- a terminal (stderr is a TTY): one line rewritten in place, a few times a second at most, erased when the recipe
  ends (the caller then prints its result line);
- Jupyter (an IPython kernel): a text output updated in place, left with the recipe's phases and their times;
- anywhere else (a pipe, a log, a test, a background thread), or with ``WORKBENCH_PROGRESS=0``: nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator

ENV = "WORKBENCH_PROGRESS"
EVERY = 0.25  # seconds between two redraws of a line
TICK = 1.0  # seconds between two redraws when nothing is counted
_open: contextvars.ContextVar["Line | None"] = contextvars.ContextVar("progress_line", default=None)
_sink: contextvars.ContextVar["Callable[[str, bool], None] | None"] = contextvars.ContextVar("progress_sink",
                                                                                          default=None)
_last: dict[str, float] = {}  # phase name -> seconds it took last time (the ETA of a phase without a count)


class Line:
    """The progress of one recipe; ``show(text, final)`` draws it (see the module)."""

    def __init__(self, label: str, show: Callable[[str, bool], None], clock: Callable[[], float] = time.monotonic):
        self.label, self.show, self.clock = label, show, clock
        self.start = clock()
        self.name: str | None = None
        self.total: int | None = None
        self.done = 0
        self.unit = ""
        self.began = self.start
        self.drawn = 0.0
        self.took: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.closed = False

    def phase(self, name: str, total: int | None = None, unit: str = "images") -> None:
        self._end_phase()
        self.name, self.total, self.done, self.unit, self.began = name, total, 0, unit, self.clock()
        self.draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.draw()

    def eta(self) -> str:
        elapsed = self.clock() - self.began
        if self.total and self.done:
            return f"ETA {max(0.0, elapsed / self.done * (self.total - self.done)):.0f} s"
        before = _last.get(self.name or "")
        return f"ETA about {max(0.0, before - elapsed):.0f} s" if before is not None else ""

    def text(self) -> str:
        count = f" {self.done}/{self.total} {self.unit}" if self.total else ""
        parts = [f"{self.label}: {self.name or 'measuring'}{count}", f"{self.clock() - self.start:.0f} s", self.eta()]
        return " · ".join(p for p in parts if p)

    def draw(self, force: bool = False) -> None:
        with self.lock:
            now = self.clock()
            if not self.closed and (force or now - self.drawn >= EVERY):
                self.drawn = now
                self.show(self.text(), False)

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self._end_phase()
        took = ", ".join(f"{n} {s:.1f} s" for n, s in self.took)
        self.show(f"{self.label}: {took}" if took else self.label, True)

    def _end_phase(self) -> None:
        if self.name is not None:
            seconds = self.clock() - self.began
            _last[self.name] = seconds
            self.took.append((self.name, seconds))


def phase(name: str, total: int | None = None, unit: str = "images") -> None:
    """The open line's recipe starts ``name`` (``total`` items to count); nothing outside a line."""
    current = _open.get()
    if current is not None:
        current.phase(name, total, unit)


def advance(n: int = 1) -> None:
    """``n`` more items of the open line's phase are done; nothing outside a line."""
    current = _open.get()
    if current is not None:
        current.advance(n)


@contextlib.contextmanager
def line(label: str, show: Callable[[str, bool], None] | None = None) -> Iterator[Line | None]:
    """The progress line of one recipe for the code inside (see the module); ``show`` in place of the automatic
    terminal/Jupyter one. Inside another line, the outer one keeps reporting (no nested lines)."""
    if _open.get() is not None:
        yield _open.get()
        return
    show = show or _sink.get() or automatic()
    if show is None:
        yield None
        return
    current = Line(label, show)
    token = _open.set(current)
    stop = threading.Event()
    ticker = threading.Thread(target=_tick, args=(current, stop), daemon=True, name="progress-line")
    ticker.start()
    try:
        yield current
    finally:
        stop.set()
        ticker.join()
        _open.reset(token)
        current.close()


def _tick(current: Line, stop: threading.Event) -> None:
    """Redraw the line every second while a phase without counts runs (a conversion): its time moves."""
    while not stop.wait(TICK):
        current.draw()


@contextlib.contextmanager
def showing(show: Callable[[str, bool], None]) -> Iterator[None]:
    """Every line opened inside draws with ``show(text, final)`` (e.g. ``terminal(stream)``, or a list's append in a
    test) in place of the automatic choice."""
    token = _sink.set(show)
    try:
        yield
    finally:
        _sink.reset(token)


def automatic() -> Callable[[str, bool], None] | None:
    """Where a line shows here: an updated Jupyter output, a rewritten terminal line, else nowhere (``None``)."""
    if os.environ.get(ENV, "1") == "0" or threading.current_thread() is not threading.main_thread():
        return None  # a background thread (a sweep behind a widget) draws nothing in whatever cell runs now
    kernel = _ipython_kernel()
    if kernel:
        return jupyter()
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return terminal(stream)
    return None


def terminal(stream: Any) -> Callable[[str, bool], None]:
    """A line rewritten in place on ``stream`` (``\\r``), erased when final."""
    width = [0]

    def show(text: str, final: bool) -> None:
        columns = _columns() - 1
        text = text if len(text) <= columns else text[:columns - 1] + "…"
        pad = max(0, width[0] - len(text))
        stream.write("\r" + (" " * width[0] + "\r" if final else text + " " * pad))
        stream.flush()
        width[0] = 0 if final else len(text)

    return show


def jupyter() -> Callable[[str, bool], None]:
    """A text output of the running cell, updated in place; the last text stays."""
    from IPython.display import display

    handle = [None]

    def show(text: str, final: bool) -> None:
        bundle = {"text/plain": text}
        if handle[0] is None:
            handle[0] = display(bundle, raw=True, display_id=True)
        else:
            handle[0].update(bundle, raw=True)

    return show


def _ipython_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - no IPython running
        return False
    return ip is not None and getattr(ip, "kernel", None) is not None


def _columns() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns >= 40 else 120  # a terminal that does not say its width
