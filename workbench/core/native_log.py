"""What native libraries (TensorFlow, absl, the TFLite converter, LiteRT) may print: known, irrelevant notices are dropped.

TensorFlow 2.21 logs through absl from its libraries' start-up code, before it
reads ``TF_CPP_MIN_LOG_LEVEL``; the MLIR quantizer prints ``fully_quantize: ...``
unconditionally; LiteRT announces its XNNPACK delegate with no switch to turn
it off. All of them write to file descriptor 2 directly, so no Python logging
setting reaches them, and a notebook shows each line as red text in the cell.

``native_stderr()`` points fd 2 at a pipe for the duration of one call (a TF
import, a conversion, an interpreter's first allocation). A thread forwards
every line to the real stderr as it arrives, except the lines matching
``IRRELEVANT``: an unexpected message, a real error, still shows. ``real_stderr()``
puts the real stderr back for a moment, to start processes that outlive a redirection. Python's own
warnings (the workbench's included) are not touched: in a notebook they do not
go through fd 2, and elsewhere they are forwarded like any other line. Set
``WORKBENCH_NATIVE_LOGS=all`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Iterator

ENV = "WORKBENCH_NATIVE_LOGS"
# Each pattern matches one whole line.
IRRELEVANT = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    # absl's prefix: severity+MMDD, time, thread id, file:line]
    re.compile(r"[IW]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] .*"),
    re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."),
    re.compile(r"E\d{4} [\d:.]+\s+\d+ cuda_(platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit: .*"),
    re.compile(r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"),
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
    # The MLIR converter's diagnostics of a refused conversion: the ConverterError it raises carries the same lines,
    # and the workbench explains that error (a row's outcome, a QuantizationError).
    re.compile(r"loc\(.*\): error: .*"),
    re.compile(r"error: .*"),
    re.compile(r""),
)

_lock = threading.Lock()
_users = 0
_state: tuple[int, threading.Thread] | None = None
_done: set[str] = set()


def done(step: str) -> bool:
    """Whether ``step`` (a one-time native notice, e.g. LiteRT's first allocation) already happened quietly."""
    return step in _done


def mark_done(step: str) -> None:
    _done.add(step)


@contextlib.contextmanager
def native_stderr() -> Iterator[None]:
    """Drop the ``IRRELEVANT`` lines native code writes to fd 2 inside this block; forward all others.

    Threads share one redirection (the first one in installs it, the last one
    out removes it), so concurrent conversions are not serialized.
    """
    if os.environ.get(ENV, "").strip().lower() == "all":
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()


@contextlib.contextmanager
def real_stderr() -> Iterator[None]:
    """Inside this block fd 2 is the real stderr, even while another thread is inside ``native_stderr()``.

    For starting child processes that outlive the block (a background sweep's worker pool): a child
    inherits fd 2, and one holding a redirection's pipe would keep that redirection's forwarder waiting
    (and the thread leaving it with it) for as long as the child lives. Other threads' redirections
    wait for the block's end, so keep it short (process start-up only).
    """
    with _lock:
        if _state is None:
            yield
            return
        current = os.dup(2)  # the pipe's write end (not inherited: os.dup makes non-inheritable descriptors)
        os.dup2(_state[0], 2)
        try:
            yield
        finally:
            os.dup2(current, 2)
            os.close(current)


def _enter() -> None:
    global _users, _state
    with _lock:
        _users += 1
        if _users > 1 or _state is not None:
            return
        try:
            _flush_python_stderr()
            saved = os.dup(2)
            read_end, write_end = os.pipe()
        except OSError:  # no fd 2 to redirect (embedded interpreters): leave everything as it is
            return
        thread = threading.Thread(target=_forward, args=(read_end, saved), name="workbench-native-stderr",
                                  daemon=True)
        thread.start()
        os.dup2(write_end, 2)
        os.close(write_end)
        _state = (saved, thread)


def _leave() -> None:
    global _users, _state
    with _lock:
        _users -= 1
        if _users > 0 or _state is None:
            return
        saved, thread = _state
        _state = None
        _flush_python_stderr()
        os.dup2(saved, 2)  # the pipe's last write end closes: the forwarder reads to the end and stops
    # A child process started inside the block may still hold the pipe; then the forwarder keeps serving it.
    thread.join(2.0)
    if not thread.is_alive():
        os.close(saved)


def _forward(read_end: int, target: int) -> None:
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            _write(target, lines, complete=True)
    if pending:
        _write(target, [pending], complete=False)


def _write(target: int, lines: list[bytes], complete: bool) -> None:
    out = []
    for line in lines:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if not any(p.fullmatch(text) for p in IRRELEVANT):
            out.append(line + (b"\n" if complete else b""))
    data = b"".join(out)
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(target, data):]


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()
