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
from . import inputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="a .tflite, or a .keras/.h5 file, SavedModel folder or frozen .pb (converted float32 first)")
    parser.add_argument("--data", required=True, metavar="FILE.npz",
                        help="uint8 images and integer labels (arrays images/labels, or x_test/y_test)")
    add_data_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (notes go to stderr)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags ``evaluate`` and ``report`` share: array names, input range, a frozen graph's arrays, a signature."""
    parser.add_argument("--images", default="images", metavar="NAME", help="image array of the .npz (default images)")
    parser.add_argument("--labels", default="labels", metavar="NAME", help="label array of the .npz (default labels)")
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


def fed(dtype: str, spec: Any, scale: float = 0.0, zero_point: int = 0) -> str:
    """How raw pixels reach an input of ``dtype``, in words."""
    mapped = f"pixels mapped linearly from [0, 255] to [{spec.lo:g}, {spec.hi:g}]"
    if dtype == "uint8":
        return "the raw bytes 0..255 (a uint8 input)"
    if dtype in ("int8", "int16"):
        return f"{mapped}, then quantized with the model's scale {scale:.6g} and zero point {zero_point}"
    return mapped


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Check the data against the model, convert if needed, evaluate, print text or JSON."""
    spec = inputs.input_spec("--input-range", args.input_range) if args.input_range is not None else None
    data = inputs.labelled("--data", args.data, args.images, args.labels)
    from ..core.model_facts import input_spec_for

    model = load(args)
    from ..core.sources import keras_origin

    origin = keras_origin(model)  # before fit_input: a fixed copy is another model object
    note = lambda text: print(f"note: {text}", file=sys.stderr) if args.json else out(f"note: {text}")  # noqa: E731
    spec, range_note = input_spec_for(model, spec)  # 0..255 for a model that starts with Rescaling
    if range_note:
        note(range_note)
    converted_from = None
    model, fixed = fit_input(args, model, data.images)
    if fixed:
        note(fixed)
    if not isinstance(model, bytes):
        io = model_io(model)
        shape, classes = io.input_shape, io.classes
        inputs.check_images_fit(f"--data={args.data!r}", data.images, shape)
        inputs.check_labels_fit("--data", data, classes)
        from ..core.convert import QuantizationWarning, convert
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)
            from ..core.recipes import reference

            converted_from = reference().name
            model = convert(model, converted_from, spec=spec)
        note(f"{args.model} is not a .tflite{f' ({origin})' if origin else ''}: converted with recipe "
             f"{converted_from} first ({model.size_kb:.1f} KB); evaluate measures the .tflite LiteRT runs")
    from ..core import litert
    from ..core.evaluate import evaluate

    tflite = litert.model_bytes(model)
    io = model_io(tflite)
    shape, classes = io.image_shape, io.classes
    inputs.check_images_fit(f"--data={args.data!r}", data.images, shape)
    inputs.check_labels_fit("--data", data, classes)
    info = model.info if hasattr(model, "info") else litert.read_model(tflite)
    result = evaluate(tflite, data.images, data.labels, spec)
    record = summary(args.model, data, result, info, tflite, spec, converted_from)
    record["input_fixed"] = fixed
    if args.json:
        out(json.dumps(record, indent=2))
    else:
        for line in text(record):
            out(line)
    return 0


def summary(model: str, data: inputs.Labelled, result: Any, info: Any, tflite: bytes, spec: Any,
            converted_from: str | None) -> dict[str, Any]:
    """The JSON record: accuracy (0..1), per-class accuracy, size, speed, how the input was fed."""
    inp = info.inputs[0]
    names = [data.class_names[i] if i < len(data.class_names) else str(i)
             for i in range(len(result.per_class_accuracy))]
    counts = result.confusion.sum(axis=1)
    return {
        "model": str(model),
        "converted_with": converted_from,
        "data": str(data.path),
        "arrays": list(data.arrays),
        "count": int(result.count),
        "correct": int(round(result.accuracy * result.count)),
        "accuracy": float(result.accuracy),
        "per_class_accuracy": {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, result.per_class_accuracy)},
        "per_class_count": {n: int(c) for n, c in zip(names, counts)},
        "size_bytes": len(tflite),
        "size_kb": round(len(tflite) / 1024, 2),
        "images_per_second": float(result.images_per_second),
        "seconds": float(result.seconds),
        "input": {"dtype": inp.dtype, "shape": list(inp.shape), "scale": float(inp.scale),
                  "zero_point": int(inp.zero_point), "fed": fed(inp.dtype, spec, inp.scale, inp.zero_point)},
        "input_range": [spec.lo, spec.hi],
    }


def text(record: dict[str, Any]) -> list[str]:
    """The record as a few lines for a terminal."""
    inp = record["input"]
    per_class = " | ".join(f"{n} {'-' if v is None else f'{v:.3f}'}" for n, v in record["per_class_accuracy"].items())
    name = Path(record["model"]).name
    return [
        f"model: {name} ({record['size_kb']:.1f} KB), {inp['dtype']} input {inp['shape']} fed {inp['fed']}",
        f"data: {record['data']}: {record['count']} images ({record['arrays'][0]}/{record['arrays'][1]}, every one)",
        f"accuracy: {record['accuracy']:.4f} ({100 * record['accuracy']:.2f} %, {record['correct']} of "
        f"{record['count']})",
        f"per class: {per_class}",
        f"speed: {record['images_per_second']:,.0f} images/s ({record['seconds']:.3f} s for {record['count']} images)",
    ]
