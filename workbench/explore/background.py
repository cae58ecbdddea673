"""Sweeps that run while the notebook stays interactive: a thread here, the evaluations in LiteRT-only workers.

``BackgroundSweep(run, pool)`` calls ``run()`` (a ``sweep.sweep`` or ``screening.sweep`` call, as a notebook
would make it) in a thread of this process. That thread converts (mean/std points patched into checked
bytes, ``core.stats_patch``, as in any sweep); every evaluation goes to ``pool``, a ``core.parallel.WorkerPool``
whose workers import LiteRT and numpy only and read the images from shared memory (``start_pool``; kept
warm by the caller across sweeps). The call that started it returns at once and the explorers' sliders
keep converting and evaluating meanwhile. The handle says how far it got (``points_done``: evaluations
finished), and ``result()`` / ``done()`` / ``exception()`` work as a future's; ``on_progress`` and
``on_done`` callbacks run in the background thread.

The pool has ``cores - 1`` workers (at least one) at a lower priority, so the slider's own conversion and
evaluation come first, and its workers start at once with the real stderr (``native_log.real_stderr``),
never holding a slider's redirection pipe. The legacy converter the thread shares with the sliders takes
one conversion at a time (``core.converters``); nothing else here takes a lock the sliders need.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import Future
from typing import Any, Callable

from ..core import parallel

NICE = 10


def default_workers() -> int:
    """Worker processes of a background sweep: every core but one (at least one)."""
    return max(1, (os.cpu_count() or 1) - 1)


def start_pool(workers: int) -> parallel.WorkerPool:
    """A LiteRT-only worker pool whose workers are all started now, with the real stderr, at a lower priority.

    The workers run at ``nice`` +``NICE``: when a slider's conversion wants a core, the operating system gives
    it before the background points.
    """
    pool = parallel.WorkerPool(workers, nice=NICE, eager=True)
    pool.executor()
    return pool


class BackgroundSweep:
    """A sweep running in a background thread, its evaluations on a LiteRT-only worker pool.

    Args:
        run: called in the thread with no argument, returns the result (a DataFrame); every evaluation it
            asks ``core.parallel.evaluator`` for (what ``sweep``/``screening.sweep`` with the default
            ``executor="auto"`` do) runs on ``pool``.
        pool: the ``parallel.WorkerPool`` to use (``start_pool``; left running); ``None`` starts one of
            ``default_workers()`` for this sweep alone.
        on_progress: called with this handle after each finished evaluation.
        on_done: called with this handle once the result is in (``value``) or the sweep failed (``error``),
            before ``result()`` returns. An error it raises is kept as ``callback_error`` and warned about; the
            sweep's own result (or error) stands.

    Raises:
        ValueError: ``run`` is not callable or ``pool`` is not a ``WorkerPool``, before the thread starts.
    """

    def __init__(self, run: Callable[[], Any], pool: parallel.WorkerPool | None = None,
                 on_progress: Callable[["BackgroundSweep"], None] | None = None,
                 on_done: Callable[["BackgroundSweep"], None] | None = None) -> None:
        if not callable(run):
            raise ValueError(f"run={run!r}; allowed: a function taking no argument and returning the result")
        if not (pool is None or isinstance(pool, parallel.WorkerPool)):
            raise ValueError(f"pool={pool!r}; allowed: None or a core.parallel.WorkerPool (start_pool)")
        self.pool = pool
        self.points_done = 0
        self.seconds: float | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.callback_error: BaseException | None = None
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
            with parallel.evaluations_on(pool, self._tick):
                value = self._run()
        except BaseException as err:  # handed to whoever asks for the result
            error = err
        finally:
            if own is not None:
                own.shutdown()
        self.seconds = time.perf_counter() - self._start
        self.value, self.error = value, error
        if self._on_done is not None:
            try:
                self._on_done(self)
            except BaseException as err:  # noqa: BLE001 - the sweep's outcome stands; the callback's error is told
                self.callback_error = err
                warnings.warn(f"on_done raised {type(err).__name__}: {err}; the sweep's "
                              f"{'error' if error is not None else 'result'} is kept (see callback_error)",
                              RuntimeWarning, stacklevel=1)
        # set last, so that once result() returns, on_done has run too
        if error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(value)
