"""One calibration per model and data: the TF2 converter's calibrated recipes share it.

TensorFlow's converter calibrates a model by running its float conversion through the TFLite calibrator one
representative sample at a time and logging every tensor's min/max; on MobileNetV2 at 224x224 that is about 0.1 s
per image, the largest cost of a report. It does so again for every calibrated recipe: ``int8-ptq`` (either I/O
type), ``int16x8`` (which calibrates twice: once for the MLIR quantizer it then does not use, once for the older
quantizer it does), the selective recipe's debugger, a verdict's fix. Their float model before calibration is the
same bytes (the quantization options act after it), and so is the data.

``sharing(data_key)`` makes the calibrations inside it look up their result by (the float model's bytes, the data):

- ``Calibrator.calibrate`` returns the calibrated model (every tensor's min/max in its quantization) stored for
  that key, else calibrates and stores it;
- ``Calibrator.calibrate_and_quantize`` (the int16x8 path) quantizes the stored calibrated model with the older
  quantizer instead of feeding the samples again: it finds the min/max in the model already, as it would after
  feeding them.

The ``.tflite`` bytes are identical to the converter's own (``tests/test_convert.py`` compares them for
int8 with float and uint8 I/O and for int16x8). TensorFlow's ``Calibrator`` is an internal class: the two methods
are wrapped once, and outside ``sharing`` the wrappers call the originals unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

KEEP = 4  # calibrated models kept (each the size of the float model)

_data_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("calibration_data_key", default=None)
_lock = threading.Lock()
_stored: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_installed = False
stats = {"calibrated": 0, "shared": 0}  # calibrations run, and calibrations answered from the store


def data_key(arrays: Any) -> str:
    """The digest of the calibration arrays as the converter is fed them (``artifacts.digest``: shape, dtype, bytes)."""
    from .artifacts import digest

    return digest(*(np.asarray(a) for a in arrays))


@contextlib.contextmanager
def sharing(key: str) -> Iterator[None]:
    """Within: calibrations of the same float model on data of digest ``key`` run once (see the module)."""
    _install()
    token = _data_key.set(key)
    try:
        yield
    finally:
        _data_key.reset(token)


def clear() -> None:
    with _lock:
        _stored.clear()


def kept() -> dict[tuple[str, str], bytes]:
    """The calibrated models stored here, by (float model digest, data digest): to hand to another process."""
    with _lock:
        return dict(_stored)


def keep(key: tuple[str, str], calibrated: bytes) -> None:
    """Store a calibrated model made elsewhere (``kept()`` of another process) under its key."""
    _store(tuple(key), calibrated)


def _key(calibrator: Any) -> tuple[str, str] | None:
    data = _data_key.get()
    if data is None:
        return None
    from .artifacts import digest

    return digest(bytes(calibrator._model_content)), data


def _lookup(key: tuple[str, str]) -> bytes | None:
    with _lock:
        found = _stored.get(key)
        if found is not None:
            _stored.move_to_end(key)
        return found


def _store(key: tuple[str, str], calibrated: bytes) -> None:
    with _lock:
        _stored[key] = calibrated
        while len(_stored) > KEEP:
            _stored.popitem(last=False)


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        from .keras_compat import tflite_calibrator

        cls = tflite_calibrator().Calibrator
        calibrate, calibrate_and_quantize = cls.calibrate, cls.calibrate_and_quantize

        def shared_calibrate(self, dataset_gen):
            key = _key(self)
            found = None if key is None else _lookup(key)
            if found is not None:
                stats["shared"] += 1
                return found
            calibrated = calibrate(self, dataset_gen)
            stats["calibrated"] += 1
            if key is not None:
                _store(key, calibrated)
            return calibrated

        def shared_calibrate_and_quantize(self, dataset_gen, input_type, output_type, allow_float, *args, **kwargs):
            key = _key(self)
            found = None if key is None else _lookup(key)
            if found is None:
                stats["calibrated"] += 1
                return calibrate_and_quantize(self, dataset_gen, input_type, output_type, allow_float, *args, **kwargs)
            stats["shared"] += 1
            return _quantize_calibrated(cls(found), input_type, output_type, allow_float, *args, **kwargs)

        cls.calibrate = shared_calibrate
        cls.calibrate_and_quantize = shared_calibrate_and_quantize
        _installed = True


def _quantize_calibrated(calibrator: Any, input_type: Any, output_type: Any, allow_float: bool,
                         activations_type: Any = None, bias_type: Any = None, resize_input: bool = True,
                         disable_per_channel: bool = False,
                         disable_per_channel_quantization_for_dense_layers: bool = False) -> bytes:
    """The older quantizer on a model whose tensors already carry their calibrated min/max: nothing is fed, so
    the quantizer reads those ranges (``Calibrator.calibrate_and_quantize`` without the feeding)."""
    from .keras_compat import tf

    def num(dtype: Any) -> int:
        return np.dtype(dtype.as_numpy_dtype()).num

    calibrator._calibrator.Prepare()
    return calibrator._calibrator.QuantizeModel(
        num(input_type), num(output_type), allow_float, num(activations_type or tf.int8), num(bias_type or tf.int32),
        disable_per_channel, disable_per_channel_quantization_for_dense_layers)
