"""Where many ``.tflite`` models are evaluated on one image set: here, on warm local workers, or on a Dask cluster.

This module owns the evaluation half of a sweep (the caller converts; workers
only run bytes), so it imports no TensorFlow, and neither do its workers:

* ``"serial"``: in this process, one model after another (LiteRT's default threads);
* ``"pool"``: a module-level pool of spawned processes that import only LiteRT and
  numpy (~0.3 s, not TensorFlow's ~8 s). It starts on first use and stays warm for
  every later sweep of the session (``shutdown_pool()`` or interpreter exit stops
  it). The images go into shared memory once per image set, never per task; a task
  carries the model bytes (tens of KB) and gets back one class per image. Each
  worker runs one single-threaded interpreter, so ``cores`` workers run at
  ``cores x`` single-thread LiteRT speed. A worker that dies makes the pool start
  afresh and the lost models are submitted again, once. A ``WorkerPool`` of one's own
  (a background sweep keeps one at a lower priority) takes the same tasks:
  ``evaluations_on(pool)`` routes one thread's evaluations to it.
* a ``dask.distributed.Client``: the images are scattered to every worker once
  (``broadcast=True``); each task carries model bytes and the scattered images'
  future, never a local path, so a worker on another machine needs only the
  ``workbench`` package. Tasks are retried (``retries``) and Dask recomputes the
  tasks of a worker that dies.

``Evaluator`` is the one interface (``submit(model_bytes)``, ``as_completed``), so a
sweep, a screening pass over an image subset, or a report run the same way;
``evaluate_models`` is the one-call form: a list of model bytes -> predictions.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as _cf_as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import checks
from .data import InputSpec

MODES = ("auto", "serial", "pool")
DASK_RETRIES = 2


@dataclass(frozen=True, eq=False)
class Prediction:
    """What a worker returns for one model: a class per image (``None`` on error), seconds, the error line."""

    predictions: np.ndarray | None = field(repr=False)
    seconds: float
    error: str = ""
    outputs: tuple[np.ndarray, ...] = field(default=(), repr=False)  # every output, dequantized (keep_outputs)
    names: tuple[str, ...] = ()


def predict_task(model_bytes: bytes, images: np.ndarray, spec: InputSpec = InputSpec(),
                 num_threads: int | None = 1, keep_outputs: bool = False) -> Prediction:
    """Run one model on ``images`` (the worker function of every mode); LiteRT's refusals become ``error``.
    ``keep_outputs``: return every output too, for the fidelity to the float model (``measure``)."""
    from . import litert
    from .diagnose import QuantizationError

    start = time.perf_counter()
    try:
        run = litert.run(model_bytes, images, spec, num_threads=num_threads)
    except (QuantizationError, ValueError) as err:
        return Prediction(None, time.perf_counter() - start, checks.first_line(err))
    kept = (run.all_outputs, run.output_names) if keep_outputs else ((), ())
    return Prediction(run.raw.argmax(axis=1).astype(np.int64), time.perf_counter() - start, "", *kept)


class Evaluator:
    """Runs ``predict_task`` for model bytes on one image set; ``submit`` returns a future of a ``Prediction``.

    Use as a context manager (``with evaluator(...) as ev``); ``close`` releases what the session holds (the
    local pool itself stays warm).
    """

    workers: int = 1
    kind: str = "serial"

    def submit(self, model_bytes: bytes) -> Any:
        raise NotImplementedError

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return _cf_as_completed(list(futures))

    def result(self, future: Any) -> Prediction:
        return future.result()

    def cancel(self, futures: Iterable[Any]) -> None:
        for fut in futures:
            fut.cancel()

    def close(self) -> None:
        pass

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialEvaluator(Evaluator):
    """In this process, at once (``submit`` returns a finished future), with ``evaluate``'s default threads."""

    def __init__(self, images: np.ndarray, spec: InputSpec, num_threads: int | None = None,
                 keep_outputs: bool = False) -> None:
        from .evaluate import default_threads

        self.images, self.spec, self.keep_outputs = images, spec, keep_outputs
        self.num_threads = default_threads() if num_threads is None else num_threads

    def submit(self, model_bytes: bytes) -> Future:
        fut: Future = Future()
        fut.set_result(predict_task(model_bytes, self.images, self.spec, self.num_threads, self.keep_outputs))
        return fut


class PoolEvaluator(Evaluator):
    """A warm local pool (see module doc; ``pool``: a ``WorkerPool``, default the module's); the image set is
    shared once per set."""

    kind = "pool"

    def __init__(self, images: np.ndarray, spec: InputSpec, workers: int | None = None,
                 pool: "WorkerPool | None" = None, on_result: Callable[[], None] | None = None,
                 keep_outputs: bool = False) -> None:
        self.keep_outputs = keep_outputs
        self.on_result = on_result  # called after each result handed out (a background sweep's progress)
        self.workers_pool = default_pool(workers) if pool is None else pool
        self.pool = self.workers_pool.executor()
        self.workers = self.workers_pool.workers
        self.images, self.spec = images, spec
        self.shared = _share(images)
        self._bytes: dict[Any, bytes] = {}
        self._retried: set[int] = set()
        self._closed = False

    def submit(self, model_bytes: bytes) -> Future:
        try:
            fut = self.pool.submit(_pool_task, self.shared, bytes(model_bytes), self.spec, self.keep_outputs)
        except (BrokenProcessPool, RuntimeError):
            self.pool = self.workers_pool.restart(self.pool)
            fut = self.pool.submit(_pool_task, self.shared, bytes(model_bytes), self.spec, self.keep_outputs)
        self._bytes[fut] = bytes(model_bytes)
        return fut

    def result(self, future: Future) -> Prediction:
        prediction = self._result(future)
        if self.on_result is not None:
            self.on_result()
        return prediction

    def _result(self, future: Future) -> Prediction:
        try:
            return future.result()
        except BrokenProcessPool as err:  # a worker died: start afresh and run this model again, once
            model = self._bytes[future]
            if id(future) in self._retried:
                raise RuntimeError(
                    "the sweep's worker processes stopped twice while evaluating one model. In a script, run the "
                    "sweep under `if __name__ == \"__main__\":` (each worker process imports the script again, and "
                    "without that guard it starts another sweep while starting up); or pass executor=None to "
                    "evaluate in this process") from err
            self.pool = self.workers_pool.restart(self.pool)
            retry = self.pool.submit(_pool_task, self.shared, model, self.spec, self.keep_outputs)
            self._retried.add(id(retry))
            self._bytes[retry] = model
            return self._result(retry)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _unshare(self.shared)


class DaskEvaluator(Evaluator):
    """A ``dask.distributed.Client``: images scattered to every worker once, model bytes per task."""

    kind = "dask"

    def __init__(self, client: Any, images: np.ndarray, spec: InputSpec, retries: int = DASK_RETRIES,
                 keep_outputs: bool = False) -> None:
        self.client, self.spec, self.retries, self.keep_outputs = client, spec, retries, keep_outputs
        self.workers = max(1, sum(client.nthreads().values()))  # worker threads of the whole cluster
        self.images = client.scatter(images, broadcast=True, hash=False)

    def submit(self, model_bytes: bytes) -> Any:
        return self.client.submit(predict_task, bytes(model_bytes), self.images, self.spec, 1, self.keep_outputs,
                                  pure=False, retries=self.retries)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        from distributed import as_completed

        futures = list(futures)
        return iter(as_completed(futures)) if futures else iter(())

    def result(self, future: Any) -> Prediction:
        try:
            return future.result()
        except Exception as err:  # noqa: BLE001 - a task the cluster gave up on (e.g. KilledWorker) is one row
            return Prediction(None, float("nan"), f"{type(err).__name__}: {checks.first_line(err, 250)}")

    def cancel(self, futures: Iterable[Any]) -> None:
        futures = list(futures)
        if futures:
            self.client.cancel(futures)

    def close(self) -> None:
        if getattr(self.client, "status", "running") in ("closing", "closed"):
            return  # a closed client holds nothing left to release
        try:
            self.client.cancel([self.images])
        except Exception as err:  # noqa: BLE001 - a lost scheduler must not hide the sweep's own outcome
            warnings.warn(f"the images scattered to the Dask cluster could not be released ({type(err).__name__}: "
                          f"{err}); they stay in its workers' memory until the client closes", RuntimeWarning,
                          stacklevel=2)


def is_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``dask.distributed.Client`` (without importing Dask when it is not)."""
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def client_of(executor: Any) -> Any:
    """The ``Client`` behind ``client.get_executor()`` (a Dask ``ClientExecutor``), else ``None``."""
    if type(executor).__name__ == "ClientExecutor" and type(executor).__module__.startswith("distributed"):
        return getattr(executor, "_client", None)
    return None


def connect(client: Any) -> tuple[Any, bool]:
    """``(Client, owned)`` for a ``Client`` or a scheduler address (``tcp://host:8786``; owned: close it after).

    Raises:
        ValueError: neither a Client nor an address, Dask not installed, or no scheduler answering there.
    """
    if is_client(client):
        return client, False
    if not isinstance(client, str) or "://" not in client and ":" not in client:
        raise ValueError(f"client={client!r}; allowed: a dask.distributed Client or a scheduler address "
                         "such as 'tcp://10.0.0.5:8786'")
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("client=... needs dask.distributed; allowed: pip install 'distributed' "
                         "(pinned in requirements.txt)") from None
    try:
        _reachable(client)
        return Client(client, timeout="10s"), True
    except (OSError, TimeoutError) as err:
        raise ValueError(f"client={client!r}: no Dask scheduler answered ({type(err).__name__}: {err}); "
                         "allowed: the address a running scheduler prints (dask scheduler)") from None


def _reachable(address: str) -> None:
    """Fail at once (``OSError``) when nothing listens at a ``tcp://host:port`` address."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme in ("tcp", "tls") and parts.hostname and parts.port:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()


def evaluator(images: np.ndarray, spec: InputSpec = InputSpec(), *, mode: str = "auto", client: Any = None,
              tasks: int | None = None, workers: int | None = None, keep_outputs: bool = False) -> Evaluator:
    """The evaluator for ``mode`` (``"auto"``: the warm pool on a multi-core machine when there are several
    ``tasks``, else serial; ``"serial"``; ``"pool"``) or for a Dask ``client`` (it wins over ``mode``).
    Inside ``evaluations_on(pool)`` every mode but ``"serial"`` gives that thread's pool. ``keep_outputs``: every
    ``Prediction`` carries every output too (``predict_task``).

    Raises:
        ValueError: an unknown mode.
    """
    if client is not None:
        return DaskEvaluator(client, images, spec, keep_outputs=keep_outputs)
    checks.choice("mode", mode, MODES)
    routed = getattr(_ROUTE, "value", None)
    if routed is not None and mode != "serial":
        return PoolEvaluator(images, spec, pool=routed[0], on_result=routed[1], keep_outputs=keep_outputs)
    cores = os.cpu_count() or 1
    if mode == "pool" or (mode == "auto" and cores > 1 and (tasks is None or tasks > 1)):
        return PoolEvaluator(images, spec, workers, keep_outputs=keep_outputs)
    return SerialEvaluator(images, spec, keep_outputs=keep_outputs)


_ROUTE = threading.local()  # this thread's (WorkerPool, on_result) while inside evaluations_on()


@contextlib.contextmanager
def evaluations_on(pool: "WorkerPool", on_result: Callable[[], None] | None = None) -> Iterator[None]:
    """Inside this block, in this thread only, ``evaluator`` hands every evaluation (except ``mode="serial"``
    and Dask's) to ``pool``, and calls ``on_result`` after each result: how a background sweep runs the public
    ``sweep``/``screening.sweep`` (converting in its thread, evaluating in its own lower-priority pool) while
    other threads' sweeps keep the default choice."""
    previous = getattr(_ROUTE, "value", None)
    _ROUTE.value = (pool, on_result)
    try:
        yield
    finally:
        _ROUTE.value = previous


def evaluate_models(models: Sequence[bytes], images: np.ndarray, spec: InputSpec = InputSpec(), *,
                    mode: str = "auto", client: Any = None) -> list[Prediction]:
    """Each model's predicted classes on ``images``, in order, through one evaluator (the images shared once).

    This is the reusable evaluation step of a sweep: convert in the caller, then hand the bytes here (a
    screening pass hands the same call an image subset).

    Args:
        models: ``.tflite`` bytes (or ``ConvertedModel``s).
        images: uint8 images ``(N, H, W, C)`` of the shape the models read.
        spec: the float range the models were trained on (float and int8 inputs).
        mode: ``"auto"``, ``"serial"`` or ``"pool"`` (see ``evaluator``).
        client: a ``dask.distributed.Client`` or a scheduler address: evaluate on that cluster.

    Returns:
        One ``Prediction`` per model (``predictions`` ``None`` and ``error`` set where LiteRT refused a model).

    Raises:
        ValueError: no models, images that are not uint8 ``(N, H, W, C)``, a bad mode or client.
    """
    if not models:
        raise ValueError("models is empty; allowed: a list of .tflite bytes")
    from .litert import model_bytes

    payloads = [model_bytes(m) for m in models]
    images = checks.images("images", images)
    owned = None
    if client is not None:
        client, own = connect(client)
        owned = client if own else None
    try:
        with evaluator(images, spec, mode=mode, client=client, tasks=len(payloads)) as ev:
            futures = [ev.submit(p) for p in payloads]
            return [ev.result(f) for f in futures]
    finally:
        if owned is not None:
            owned.close()


# --- the warm local pools ------------------------------------------------------------------------

class WorkerPool:
    """Spawned worker processes that import LiteRT and numpy only, started on first use and kept warm.

    The module keeps one (``default_pool``) for sweeps; a background sweep keeps its own with ``nice`` > 0, so
    the kernel's own work (a slider's conversion) gets a core first. A broken pool (a worker that died)
    is started afresh by ``restart``.

    Args:
        workers: processes (default: the machine's cores).
        nice: added to the workers' scheduling niceness (0: the parent's priority).
        eager: start every worker at once, with the real stderr (``native_log.real_stderr``), so none
            starts later while another thread's redirection is in place and keeps its pipe open.
    """

    def __init__(self, workers: int | None = None, nice: int = 0, eager: bool = False) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else \
            checks.number("workers", workers, low=1, high=256, integer=True)
        self.nice = checks.number("nice", nice, low=0, high=19, integer=True)
        self.eager = bool(eager)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ProcessPoolExecutor:
        """The running process pool (started now if it is not)."""
        with self._lock:
            if self._executor is None:
                self._executor = self._start()
            return self._executor

    def restart(self, broken: ProcessPoolExecutor | None = None) -> ProcessPoolExecutor:
        """A fresh process pool in place of ``broken`` (unless another thread already replaced it)."""
        with self._lock:
            if self._executor is not None and (broken is None or self._executor is broken):
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
        return self.executor()

    def pids(self) -> list[int]:
        """The process ids of the workers (empty when the pool is not running)."""
        running = self._executor
        if running is None:
            return []
        return sorted(p.pid for p in (running._processes or {}).values())  # noqa: SLF001 - no public listing

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers (a later ``executor()`` starts new ones)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=wait, cancel_futures=True)
                self._executor = None

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        from . import native_log

        # "spawn": a fork of a process with TensorFlow's threads running can deadlock; the spawned
        # workers import workbench.core.parallel, LiteRT and numpy only.
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_pool_init, initargs=(self.nice,))
        if self.eager:
            with native_log.real_stderr():
                for _ in range(self.workers):  # each submit starts one more worker while none is idle
                    pool.submit(os.getpid)
        return pool


_POOL = WorkerPool()
_POOL_LOCK = threading.Lock()
_SHARED: dict[str, list] = {}  # image-set digest -> [SharedMemory, _SharedImages, evaluators using it]
_SHARED_KEEP = 2  # image sets kept shared when no evaluator uses them (the next sweep often reuses one)
_SHARED_LOCK = threading.Lock()


def default_pool(workers: int | None = None) -> WorkerPool:
    """The module's LiteRT-only worker pool, what sweeps evaluate on (started on first use, kept for the session).

    Args:
        workers: processes (default: the machine's cores); a different count replaces the pool.
    """
    global _POOL
    wanted = WorkerPool(workers)  # checks the count
    with _POOL_LOCK:
        if _POOL.workers != wanted.workers:
            _POOL.shutdown()
            _POOL = wanted
        return _POOL


def pool_workers_pids() -> list[int]:
    """The process ids of the warm pool's workers (empty when it is not running)."""
    return _POOL.pids()


def shutdown_pool() -> None:
    """Stop the warm pool and free the shared image sets (also run at interpreter exit)."""
    _POOL.shutdown()
    with _SHARED_LOCK:
        for entry in _SHARED.values():
            _release(entry)
        _SHARED.clear()


atexit.register(shutdown_pool)


@dataclass(frozen=True)
class _SharedImages:
    name: str
    shape: tuple[int, ...]
    dtype: str


def _share(images: np.ndarray) -> _SharedImages:
    """The image set in shared memory (copied once per distinct set), counted as used until ``_unshare``."""
    from multiprocessing import shared_memory

    from .artifacts import digest

    key = digest(images)
    with _SHARED_LOCK:
        if key not in _SHARED:
            shm = shared_memory.SharedMemory(create=True, size=max(1, images.nbytes))
            np.ndarray(images.shape, images.dtype, buffer=shm.buf)[...] = images
            _SHARED[key] = [shm, _SharedImages(shm.name, tuple(images.shape), images.dtype.str), 0]
        entry = _SHARED.pop(key)
        entry[2] += 1
        _SHARED[key] = entry  # most recent last
        _evict()
        return entry[1]


def _unshare(shared: _SharedImages) -> None:
    with _SHARED_LOCK:
        for entry in _SHARED.values():
            if entry[1] is shared:
                entry[2] -= 1
        _evict()


def _evict() -> None:
    """Free the oldest image sets no evaluator uses, beyond the newest ``_SHARED_KEEP``."""
    idle = [key for key, entry in _SHARED.items() if entry[2] <= 0]
    for key in idle[:max(0, len(_SHARED) - _SHARED_KEEP)]:
        _release(_SHARED.pop(key))


def _release(entry: Any) -> None:
    shm = entry[0]
    try:
        shm.close()
        shm.unlink()
    except (FileNotFoundError, OSError):
        pass


# Worker side: attachments to the shared image sets, newest last.
_ATTACHED: dict[str, tuple[Any, np.ndarray]] = {}
_ATTACHED_KEEP = 4


def _pool_init(nice: int = 0) -> None:
    import signal

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Interrupting a notebook's kernel signals its whole process group: the workers carry on (a traceback each
    # otherwise, and a broken pool); they stop when the parent shuts the pool down or exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        try:
            os.nice(nice)
        except (AttributeError, OSError):  # no nice (Windows) or not allowed: the workers run at normal priority
            pass
    from . import litert  # noqa: F401 - warm the import before the first task

    import ai_edge_litert.interpreter  # noqa: F401


def _pool_task(shared: _SharedImages, model_bytes: bytes, spec: InputSpec, keep_outputs: bool = False) -> Prediction:
    return predict_task(model_bytes, _attached(shared), spec, 1, keep_outputs)


def _attached(shared: _SharedImages) -> np.ndarray:
    from multiprocessing import shared_memory

    if shared.name not in _ATTACHED:
        # The parent owns the block (it unlinks it); spawned workers share its resource tracker.
        shm = shared_memory.SharedMemory(name=shared.name)
        _ATTACHED[shared.name] = (shm, np.ndarray(shared.shape, np.dtype(shared.dtype), buffer=shm.buf))
        while len(_ATTACHED) > _ATTACHED_KEEP:
            old, _ = _ATTACHED.pop(next(iter(_ATTACHED)))
            try:
                old.close()
            except BufferError:
                pass
    return _ATTACHED[shared.name][1]
