"""Sweeps that run while the notebook stays interactive: a thread here, the points in worker processes.

``BackgroundSweep(run, pool)`` calls ``run(executor)`` (a ``sweep.sweep`` or ``screening.sweep`` call that
takes the executor) in a thread of this process, its points running in the worker processes of ``pool``
(``start_pool``; kept warm by the caller across sweeps, since each worker imports TensorFlow once), so the
call that started it returns at once and the explorers' sliders keep converting and evaluating meanwhile.
The handle says how far it got (``points_done``), and ``result()`` / ``done()`` / ``exception()`` work as a
future's; ``on_progress`` and ``on_done`` callbacks run in the background thread.

Why worker processes and not a thread pool: the legacy converter keeps one loaded converter per
SavedModel folder (``core.converters``) and changes its settings for each call, so two threads converting
the same folder at once would mix their settings; and points in other processes leave this process's
interpreter lock to the sliders. The pool has ``cores - 1`` workers (at least one) at a lower priority, so
the slider's own conversion and evaluation come first, and its workers start with the real stderr
(``native_log.real_stderr``), never holding a slider's redirection pipe. Nothing here takes a lock the
sliders need.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable

from ..core import checks, native_log

NICE = 10


def default_workers() -> int:
    """Worker processes of a background sweep: every core but one (at least one)."""
    return max(1, (os.cpu_count() or 1) - 1)


def start_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context process pool whose workers are all started now, with the real stderr, at a lower priority.

    The workers run at ``nice`` +``NICE``: when a slider's conversion wants a core, the operating system gives
    it before the background points.
    """
    workers = checks.number("workers", workers, low=1, high=256, integer=True)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority)
    with native_log.real_stderr():
        for _ in range(workers):  # each submit starts one more worker while none is idle
            pool.submit(os.getpid)
    return pool


def _lower_priority() -> None:
    try:
        os.nice(NICE)
    except (AttributeError, OSError):  # no nice (Windows) or not allowed: the workers run at normal priority
        pass


class _Counting(Executor):
    """An executor that hands work to another and counts every finished task (the sweep's points)."""

    def __init__(self, inner: Executor, tick: Callable[[], None]) -> None:
        self._inner, self._tick = inner, tick

    def submit(self, fn, /, *args, **kwargs):
        future = self._inner.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda f: None if f.cancelled() else self._tick())
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)


class BackgroundSweep:
    """A sweep running in a background thread on its own worker processes.

    Args:
        run: called in the thread with the executor to use, returns the result (a DataFrame).
        pool: the worker processes to use (``start_pool``; left running); ``None`` starts a pool of
            ``default_workers()`` for this sweep alone.
        on_progress: called with this handle after each finished point.
        on_done: called with this handle once the result is in (``value``) or the sweep failed (``error``),
            before ``result()`` returns.

    Raises:
        ValueError: ``run`` is not callable or ``pool`` is not an executor, before the thread starts.
    """

    def __init__(self, run: Callable[[Executor], Any], pool: Executor | None = None,
                 on_progress: Callable[["BackgroundSweep"], None] | None = None,
                 on_done: Callable[["BackgroundSweep"], None] | None = None) -> None:
        if not callable(run):
            raise ValueError(f"run={run!r}; allowed: a function taking the executor and returning the result")
        if not (pool is None or isinstance(pool, Executor)):
            raise ValueError(f"pool={pool!r}; allowed: None or a concurrent.futures.Executor (start_pool)")
        self.pool = pool
        self.points_done = 0
        self.seconds: float | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self._run, self._on_progress, self._on_done = run, on_progress, on_done
        self._future: Future = Future()
        self._future.set_running_or_notify_cancel()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name="workbench-background-sweep", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        """The sweep finished (or failed)."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """The sweep's result, waiting up to ``timeout`` seconds; re-raises its error."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The sweep's error, or ``None``."""
        return self._future.exception(timeout)

    @property
    def elapsed(self) -> float:
        """Seconds since the start (the total once done)."""
        return self.seconds if self.seconds is not None else time.perf_counter() - self._start

    def _tick(self) -> None:
        self.points_done += 1
        if self._on_progress is not None:
            self._on_progress(self)

    def _main(self) -> None:
        own = value = error = None
        try:
            pool = self.pool if self.pool is not None else (own := start_pool(default_workers()))
            value = self._run(_Counting(pool, self._tick))
        except BaseException as err:  # handed to whoever asks for the result
            error = err
        finally:
            if own is not None:
                own.shutdown(wait=True, cancel_futures=True)
        self.seconds = time.perf_counter() - self._start
        self.value, self.error = value, error
        if self._on_done is not None:
            try:
                self._on_done(self)
            except BaseException as err:
                error = error or err
        # set last, so that once result() returns, on_done has run too
        if error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(value)
