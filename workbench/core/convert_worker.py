"""The calibrated TF2 conversions of a big model, run ahead in a second process while this one does the rest.

TensorFlow's converter cannot convert two models at once in one process: two threads converting MobileNetV2
together gave other bytes than the same conversions one after the other (and no shorter wall time). A calibrated
recipe of a MobileNet-size model is the longest step of a report (the calibrator runs the float model one input at
a time, ~0.1 s each), so ``run_recipes`` hands those recipes to one spawned worker process at its start (``ahead``)
and converts the others here meanwhile; ``convert.convert`` then takes the worker's bytes for that recipe
(``take``) in place of running the adapter, and everything after the adapter (the outcome read off the tensors, the
check that LiteRT runs it, the warnings) is the same code on the same bytes.

The worker converts from the model's one SavedModel export (``converters.keras_saved_model``, made here first),
the way the TF2 adapter converts a Keras model; the bytes are the same as converting here
(``tests/test_convert.py``). Its calibrated models come back with its result and join this process's
``shared_calibration`` store, so a later calibration of the same model and data here (a verdict's fix) is free.
A refusal comes back as the converter's message and is explained here as ``convert`` explains it.

Only models big enough to pay for the worker's start (TensorFlow's import, ~4 s of one core) use it:
``WORKER_MIN_PARAMS`` weights or more, and two cores or more; ``WORKBENCH_CONVERT_WORKER=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np

ENV = "WORKBENCH_CONVERT_WORKER"
WORKER_MIN_PARAMS = 1_000_000

_ahead: contextvars.ContextVar[dict | None] = contextvars.ContextVar("conversions_ahead", default=None)


def offloadable(model: Any, recipe: Any) -> bool:
    """Whether ``recipe`` on ``model`` can convert in the worker: a calibrated recipe of the TF2 adapter, no layer
    kept float (that needs the Keras layers), on a Keras model."""
    from .converters import tf2

    return (recipe.spec.calibrated and recipe.spec.adapter is tf2 and not recipe.keep_float
            and hasattr(model, "layers"))


def worth_it(model: Any, force: bool | None = None) -> bool:
    """Whether a worker pays here (see the module); ``force`` decides instead when given."""
    if force is not None:
        return force
    if os.environ.get(ENV, "1") == "0" or (os.cpu_count() or 1) < 2:
        return False
    try:
        return int(model.count_params()) >= WORKER_MIN_PARAMS
    except Exception:  # noqa: BLE001 - not a built Keras model
        return False


@contextlib.contextmanager
def ahead(model: Any, recipes: Sequence[Any], spec: Any, representative: Any,
          force: bool | None = None) -> Iterator[dict]:
    """Start the worker's conversions of the offloadable ``recipes`` (``(recipe, representative rows)`` as
    ``convert`` would feed them) for the code inside; ``convert`` takes them with ``take``. Yields the futures by
    recipe (empty: no worker). What cannot be sent (an export or calibration data that fail) converts here, where
    ``convert`` says why for its row; leaving early (Ctrl-C) stops the worker at once."""
    from .convert import representative_data
    from .converters import keras_saved_model

    wanted = [r for r in recipes if offloadable(model, r)] if representative is not None else []
    if not wanted or not worth_it(model, force):
        yield {}
        return
    try:
        folder = str(keras_saved_model(model))  # the one export, made here: the worker and this process share it
        rows = {r.calibration_size: _arrays(representative_data(model, representative, r.calibration_size))
                for r in wanted}
    except Exception:  # noqa: BLE001 - each row converts here and reports it
        yield {}
        return
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start)
    futures = {r: pool.submit(_convert, folder, r, spec, rows[r.calibration_size]) for r in wanted}
    token = _ahead.set(futures)
    try:
        yield futures
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):  # a conversion can take tens of seconds
            process.kill()
        raise
    finally:
        _ahead.reset(token)
        for future in futures.values():
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _arrays(rows: Any) -> Any:
    """Calibration rows as plain arrays (a lazily read ``.npz`` array is read here once, then pickled)."""
    return tuple(np.asarray(a) for a in rows) if isinstance(rows, (list, tuple)) else np.asarray(rows)


def take(recipe: Any) -> bytes | None:
    """The worker's bytes of ``recipe`` when it was sent ahead (waiting for them), else ``None``: convert here (also
    when the worker died, e.g. out of memory).

    Raises:
        QuantizationError: the converter refused it in the worker (explained as ``convert`` explains it here).
    """
    futures = _ahead.get()
    future = None if futures is None else futures.pop(recipe, None)
    if future is None:
        return None
    from . import diagnose, shared_calibration

    try:
        tflite, error, calibrated = future.result()
    except BrokenExecutor:
        return None
    for key, value in calibrated.items():
        shared_calibration.keep(key, value)
    if tflite is None:
        raise diagnose.QuantizationError(diagnose.explain(error))
    return tflite


def _start() -> None:
    """The worker: Ctrl-C is the parent's to handle; glibc's heaps capped (``heap``); TensorFlow imported once."""
    import signal

    from . import heap

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    heap.limit_arenas()
    from .keras_compat import tf

    assert tf.lite  # TensorFlow's import, before the first job


def _convert(folder: str, recipe: Any, spec: Any, rows: Any) -> tuple[bytes | None, str, dict]:
    """In the worker: the recipe's adapter on the SavedModel export, as ``convert`` runs it; (bytes or ``None``, the
    refusal as ``convert`` would explain it, the calibrated models this job made)."""
    import warnings

    from . import heap, native_log, shared_calibration
    from .converters import Job

    before = set(shared_calibration.kept())
    try:
        with warnings.catch_warnings(), native_log.native_stderr():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            tflite, error = recipe.spec.adapter(Job(folder, recipe, spec, rows)), ""
    except Exception as err:  # noqa: BLE001 - explained by the caller, as convert explains TensorFlow's errors
        tflite, error = None, f"{type(err).__name__}: {err}"
    made = {k: v for k, v in shared_calibration.kept().items() if k not in before}
    heap.trim()
    return tflite, error, made
