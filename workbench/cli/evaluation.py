"""``python -m workbench evaluate MODEL --data FILE.npz``: one model's accuracy on a user's data, as text or JSON.

This module owns the command: it reads every image of the ``.npz`` (the named
``images``/``labels`` pair, else ``x_test``/``y_test``), checks the images
against the model's input shape and the labels against its class count before
anything runs, converts a Keras / SavedModel / frozen-graph source with
``float32`` first (and says so; an input with ``None`` sizes is fixed to
``--input_shapes`` or the data's ``H, W, C`` first, ``core.fixed_input``, and said
too), and reports accuracy (a fraction 0..1), per-class accuracy, size and
images per second. How each input type is fed is ``core.evaluate``'s: a float
input gets pixels mapped linearly from [0, 255] to ``--input-range``; a uint8
input the raw bytes; an int8 input those floats quantized with the model's own
scale and zero point.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

from ..core.model_io import model_io
from ..core.tasks import TASKS
from . import inputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="a .tflite, or a .keras/.h5 file, SavedModel folder or frozen .pb (converted float32 first)")
    parser.add_argument("--data", required=True, metavar="FILE.npz",
                        help="inputs (uint8 images or float arrays) and optional labels (without: --reference)")
    add_data_arguments(parser)
    parser.add_argument("--reference", default=None, metavar="MODEL",
                        help="the float model (.keras/.h5, SavedModel, frozen .pb or .tflite) to measure MODEL against: "
                             "agreement, snr_db, cosine, max_abs, kl, map50, map per output (labels not needed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (notes go to stderr)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags ``evaluate`` and ``report`` share: array names, input range, a frozen graph's arrays, a signature."""
    parser.add_argument("--images", default="images", metavar="NAME",
                        help="input array of the .npz: uint8 images, or float data fed as they are (default images, "
                             "else inputs or x_test; NAME,NAME for a model with several inputs)")
    parser.add_argument("--labels", default="labels", metavar="NAME",
                        help="class-label array of the .npz (default labels, else y_test; optional: without labels "
                             "every model is measured against the float model's outputs)")
    parser.add_argument("--task", default=None, choices=TASKS,
                        help="what the model does (default: recognised from its outputs, and said)")
    parser.add_argument("--input-range", "--input_range", dest="input_range", nargs=2, type=float, default=None,
                        metavar=("LO", "HI"), help="the float range the model was trained on (default 0 1, or 0 255 for a model that "
                             "starts with Rescaling/Normalization)")
    parser.add_argument("--signature", "--saved_model_signature_key", dest="signature", default="serving_default",
                        metavar="KEY", help="SavedModel signature (default serving_default)")
    parser.add_argument("--input-arrays", "--input_arrays", dest="input_arrays", default=None, metavar="NAMES",
                        help="frozen .pb: input tensor names")
    parser.add_argument("--output-arrays", "--output_arrays", dest="output_arrays", default=None, metavar="NAMES",
                        help="frozen .pb: output tensor names")
    parser.add_argument("--input-shapes", "--input_shapes", dest="input_shapes", default=None, metavar="SHAPES",
                        help="the input shape N,H,W,C to convert at, e.g. 1,32,32,3, for a model whose input has "
                             "None sizes (default: the --data images' H,W,C); a frozen .pb: its input shapes")


def load(args: argparse.Namespace, flag: str = "MODEL") -> Any:
    """The model the arguments name (``.tflite`` bytes, a Keras model, a ``SavedModel`` or a ``FrozenGraph``)."""
    return inputs.model_source(flag, args.model, signature=args.signature, input_arrays=args.input_arrays,
                               output_arrays=args.output_arrays, input_shapes=args.input_shapes,
                               custom_objects=getattr(args, "custom_objects", None))


def fit_input(args: argparse.Namespace, model: Any, images: Any) -> tuple[Any, str | None]:
    """The model with a dynamic input fixed to ``--input_shapes``, else to the ``--data`` images' ``H, W, C``
    (what ``tflite_convert --input_shapes`` did), and the sentence saying so (``None``: left as it is).
    A frozen graph takes ``--input_shapes`` when it is loaded (``load``); a ``.tflite`` is already fixed."""
    from ..core.fixed_input import fit_input as fit
    from ..core.sources import FrozenGraph

    if isinstance(model, bytes) and args.input_shapes:
        raise ValueError(f"--input_shapes={args.input_shapes!r} for a .tflite, whose input shape its conversion "
                         "fixed; allowed: --input_shapes with a model to convert (.keras/.h5, SavedModel, frozen .pb)")
    if isinstance(model, (bytes, FrozenGraph)):
        return model, None
    return fit(model, images.shape[1:], args.input_shapes, data_from=f"--data ({Path(args.data).name})",
               shape_from="--input_shapes")


def fed(dtype: str, spec: Any, scale: float = 0.0, zero_point: int = 0, images: bool = True) -> str:
    """How the data reach an input of ``dtype``, in words (``images``: uint8 pixels, else float data)."""
    if not images:
        if dtype in ("uint8", "int8", "int16"):
            return f"as they are, quantized with the model's scale {scale:.6g} and zero point {zero_point}"
        return "as they are"
    mapped = f"pixels mapped linearly from [0, 255] to [{spec.lo:g}, {spec.hi:g}]"
    if dtype == "uint8":
        return "the raw bytes 0..255 (a uint8 input)"
    if dtype in ("int8", "int16"):
        return f"{mapped}, then quantized with the model's scale {scale:.6g} and zero point {zero_point}"
    return mapped


def to_tflite(args: argparse.Namespace, model: Any, data: Any, spec: Any, flag: str, path: str,
              note: Callable[[str], None]) -> tuple[bytes, Any, str | None]:
    """``model`` as ``.tflite`` bytes: as it is, or a Keras model / SavedModel / frozen graph converted with the
    reference recipe (said in a note), the data checked against it first. Returns the bytes, the data in the
    model's input order and the recipe it was converted with (``None``: given as ``.tflite``)."""
    from ..core import litert
    from ..core.sources import keras_origin

    converted_from = None
    if not isinstance(model, bytes):
        origin = keras_origin(model)
        data = inputs.check_data_fit(f"--data={args.data!r}", data, model_io(model))
        inputs.check_labels_fit("--data", data, model_io(model))
        from ..core.convert import QuantizationWarning, convert
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)
            from ..core.recipes import reference

            converted_from = reference().name
            model = convert(model, converted_from, spec=spec)
        note(f"{path} is not a .tflite{f' ({origin})' if origin else ''}: converted with recipe "
             f"{converted_from} first ({model.size_kb:.1f} KB); {flag} is measured as the .tflite LiteRT runs")
    tflite = litert.model_bytes(model)
    data = inputs.check_data_fit(f"--data={args.data!r}", data, model_io(tflite))
    return tflite, data, converted_from


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Check the data against the model (and the reference), convert what is not a ``.tflite``, evaluate; print
    text or JSON: accuracy with labels, the fidelity to ``--reference`` with or without them."""
    from ..core.model_facts import input_spec_for
    from ..core.samples import input_spec_of

    given = inputs.input_spec("--input-range", args.input_range) if args.input_range is not None else None
    data = inputs.samples("--data", args.data, args.images, args.labels)
    if data.labels is None and not getattr(args, "reference", None):
        raise ValueError(f"--data={args.data!r} has no labels ({data.describe()}); allowed: labels (--labels NAME), "
                         "or --reference MODEL (the float model) to measure the model against its outputs")
    model = load(args)
    reference = None
    if getattr(args, "reference", None):
        reference = inputs.model_source("--reference", args.reference, signature=args.signature,
                                        custom_objects=getattr(args, "custom_objects", None))
    note = lambda text: print(f"note: {text}", file=sys.stderr) if args.json else out(f"note: {text}")  # noqa: E731
    source = reference if isinstance(model, bytes) and reference is not None else model
    spec, range_note = input_spec_for(source, given)  # 0..255 for a model that starts with Rescaling
    spec, stats_note = input_spec_of(data, given, spec)
    for said in (range_note, stats_note):
        if said:
            note(said)
    model, fixed = fit_input(args, model, data.images)
    if fixed:
        note(fixed)
    tflite, data, converted_from = to_tflite(args, model, data, spec, "MODEL", args.model, note)
    io = model_io(tflite)
    inputs.check_labels_fit("--data", data, io)
    ref_bytes = None
    if reference is not None:
        reference, _ = fit_input(args, reference, data.images) if not isinstance(reference, bytes) else (reference, 0)
        ref_bytes, data, _ = to_tflite(args, reference, data, spec, "--reference", args.reference, note)
    from ..core import litert, measure
    from ..core.evaluate import from_predictions

    info = litert.read_model(tflite)
    ran = measure.outputs_of(tflite, data, spec)
    record: dict[str, Any] = {"model": str(args.model), "converted_with": converted_from, "data": str(data.path),
                              "arrays": [*data.names, *([data.label_array] if data.labels is not None else [])],
                              "count": len(data)}
    if data.labels is not None:
        result = from_predictions(ran.values[0].reshape(len(data), -1).argmax(axis=1), data.labels, io.classes,
                                  ran.seconds)
        record.update(summary(args.model, data, result, info, tflite, spec, converted_from))
    else:
        record.update(speed(info, tflite, spec, data, ran.seconds))
    if ref_bytes is not None:
        base = measure.outputs_of(ref_bytes, data, spec)
        measured = measure.measure(base, ran, measure.task_of(base, data.inputs[0].shape, args.task, data.labels), data)
        record.update(measured.summary(), reference=str(args.reference))
        for said in measured.notes:
            note(said)
        record.pop("accuracy", None) if data.labels is None else None
    record["input_fixed"] = fixed
    if args.json:
        out(json.dumps(record, indent=2))
    else:
        for line in text(record):
            out(line)
    return 0


def speed(info: Any, tflite: bytes, spec: Any, data: Any, seconds: float) -> dict[str, Any]:
    """Size, speed and how the input was fed: the record's part that needs no labels."""
    inp = info.inputs[0]
    return {"size_bytes": len(tflite), "size_kb": round(len(tflite) / 1024, 2), "unit": "images" if data.is_images else "inputs",
            "images_per_second": len(data) / max(seconds, 1e-9), "seconds": float(seconds),
            "input": {"dtype": inp.dtype, "shape": list(inp.shape), "scale": float(inp.scale),
                      "zero_point": int(inp.zero_point),
                      "fed": fed(inp.dtype, spec, inp.scale, inp.zero_point, data.is_images)},
            "input_range": [spec.lo, spec.hi]}


def summary(model: str, data: Any, result: Any, info: Any, tflite: bytes, spec: Any,
            converted_from: str | None) -> dict[str, Any]:
    """The JSON record: accuracy (0..1), per-class accuracy, size, speed, how the input was fed."""
    names = [data.class_names[i] if i < len(data.class_names) else str(i)
             for i in range(len(result.per_class_accuracy))]
    counts = result.confusion.sum(axis=1)
    return {
        "model": str(model),
        "converted_with": converted_from,
        "data": str(data.path),
        "arrays": [*data.names, data.label_array],
        "count": int(result.count),
        "correct": int(round(result.accuracy * result.count)),
        "accuracy": float(result.accuracy),
        "per_class_accuracy": {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, result.per_class_accuracy)},
        "per_class_count": {n: int(c) for n, c in zip(names, counts)},
        **speed(info, tflite, spec, data, result.seconds),
    }


def text(record: dict[str, Any]) -> list[str]:
    """The record as a few lines for a terminal."""
    inp = record["input"]
    name = Path(record["model"]).name
    lines = [f"model: {name} ({record['size_kb']:.1f} KB), {inp['dtype']} input {inp['shape']} fed {inp['fed']}",
             f"data: {record['data']}: {record['count']} {record['unit']} ({'/'.join(record['arrays'])}, every one)"]
    if "accuracy" in record:
        per_class = " | ".join(f"{n} {'-' if v is None else f'{v:.3f}'}"
                               for n, v in record["per_class_accuracy"].items())
        lines += [f"accuracy: {record['accuracy']:.4f} ({100 * record['accuracy']:.2f} %, {record['correct']} of "
                  f"{record['count']})", f"per class: {per_class}"]
    if "reference" in record:
        lines.append(f"against {Path(record['reference']).name} ({record['task']}: {record['task_reason']}):")
        for output, metrics in record["outputs"].items():
            lines.append(f"  {output}: " + ", ".join(f"{k} {_shown(v)}" for k, v in metrics.items()))
        if record.get("map50") is not None:
            lines.append(f"  detections: mAP50 {record['map50']:.3f}, mAP@[.5:.95] {record['map']:.3f}")
    lines.append(f"speed: {record['images_per_second']:,.0f} {record['unit']}/s ({record['seconds']:.3f} s for "
                 f"{record['count']} {record['unit']})")
    return lines


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)
