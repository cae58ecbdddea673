"""``python -m workbench convert``: the ``tflite_convert`` / ``toco`` flags, mapped onto the recipe registry.

This module owns the command-line vocabulary users already have from TF 1.x
tutorials and forum answers: ``add_arguments`` declares the flags, ``plan``
turns one combination into a registry recipe with its parameters (checked
before TensorFlow is imported), ``RETIRED`` says what replaced the flags that
no longer exist (or no longer do anything), and ``run`` converts, writes the
``.tflite`` and prints what happened in plain words (came out float, stats
ignored, ops left in float: read off ``ConvertedModel.outcome``) with the
equivalent Python call.

The mapping (``--inference_type`` x the other flags):

=================  ==========================================  =====================================
inference_type     other flags                                 recipe
=================  ==========================================  =====================================
FLOAT              (none)                                      ``float32``
FLOAT              ``--post_training_quantize``                ``dynamic-range``
FLOAT              ``--post_training_quantize
                   --quantize_to_float16``                     ``float16``
QUANTIZED_UINT8    ``--mean_values --std_dev_values
                   [--default_ranges_min --default_ranges_max]``  ``legacy-uint8`` (mean, std, default_ranges)
INT8               ``--representative_data FILE.npz``          ``int8-ptq`` (io_type from
                                                               ``--inference_input_type``)
INT8               a QAT Keras model, or no data for a
                   SavedModel / frozen graph                   ``qat-int8`` (io_type likewise)
=================  ==========================================  =====================================
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import checks
from ..core import recipes as registry
from ..core.data import InputSpec
from ..core.model_io import model_io
from ..core.sources import is_qat
from . import inputs

INFERENCE_TYPES = ("FLOAT", "QUANTIZED_UINT8", "UINT8", "INT8")
IO_TYPE = {"FLOAT": "float32", "QUANTIZED_UINT8": "uint8", "UINT8": "uint8", "INT8": "int8"}

# Flags of TF 1.x's toco / tflite_convert that are gone or do nothing in TF 2.21, and what replaced them.
# "ignored": the flag changes nothing today, so the conversion goes on with a note;
# "error": the flag asked for something the command cannot do as written: one line saying what to use.
RETIRED: dict[str, tuple[str, str]] = {
    "--input_format": ("ignored", "gone since TF 1.x's toco: the flag you give the model with (--graph_def_file, "
                                  "--saved_model_dir or --keras_model_file) says its format"),
    "--output_format": ("ignored", "the converter writes .tflite only: TF 2.21's tflite_convert still parses "
                                   "the flag (with --enable_v1_converter) but its converter logs 'Ignored "
                                   "output_format.'; to see the graph, open the .tflite in Netron "
                                   "(wb.viewer.show) or run `python -m workbench info FILE.tflite`"),
    "--drop_control_dependency": ("ignored", "a TOCO option; TF 2.21's MLIR converter ignores it (it logs "
                                             "'Ignored drop_control_dependency.')"),
    "--reorder_across_fake_quant": ("ignored", "a TOCO option; TF 2.21's MLIR converter ignores it (it logs "
                                               "'Ignored reorder_across_fake_quant.')"),
    "--change_concat_input_ranges": ("ignored", "a TOCO option; TF 2.21's MLIR converter ignores it (it logs "
                                                "'Ignored change_concat_input_ranges.')"),
    "--experimental_new_converter": ("ignored", "the MLIR converter is the only one in TF 2.21 (TOCO is gone; "
                                                "=false only adds a deprecation warning)"),
    "--experimental_new_quantizer": ("ignored", "the MLIR quantizer is TF 2.21's default, and the workbench's"),
    "--enable_v1_converter": ("ignored", "not needed: the workbench takes the v1 converter where the recipe "
                                         "needs it (--graph_def_file, QUANTIZED_UINT8) and the TF2 converter "
                                         "otherwise; every tflite_convert flag here works without it"),
    "--input_file": ("error", "no longer exists: renamed --graph_def_file (with --input_arrays, --output_arrays)"),
    "--savedmodel_directory": ("error", "no longer exists: renamed --saved_model_dir"),
    "--std_value": ("error", "no longer exists: renamed --std_dev_values (one per input array, comma-separated)"),
    "--std_values": ("error", "no such flag: it is --std_dev_values"),
    "--mean_value": ("error", "no longer exists: renamed --mean_values (one per input array, comma-separated)"),
    "--batch_size": ("error", "no longer exists: the batch is the first number of --input_shapes (e.g. 1,224,224,3)"),
    "--input_array": ("error", "no longer exists: renamed --input_arrays (comma-separated)"),
    "--output_array": ("error", "no longer exists: renamed --output_arrays (comma-separated)"),
    "--input_shape": ("error", "no longer exists: renamed --input_shapes (':' between inputs)"),
    "--input_type": ("error", "no longer exists: renamed --inference_input_type (FLOAT, QUANTIZED_UINT8 or INT8)"),
    "--input_data_type": ("error", "no longer exists: the input's type is --inference_input_type"),
    "--input_data_types": ("error", "no longer exists: the input's type is --inference_input_type"),
    "--inference_output_type": ("error", "tflite_convert has no such flag; here the output gets the "
                                         "--inference_input_type too (a recipe's io_type sets both)"),
    "--quantize_weights": ("alias", "the old name of --post_training_quantize (tflite_convert still accepts "
                                    "it, hidden); taken as --post_training_quantize"),
    "--dump_graphviz": ("error", "no longer exists: renamed --dump_graphviz_dir, which the workbench does not offer: open the "
                                 ".tflite in Netron (wb.viewer.show) or run `python -m workbench info FILE.tflite`"),
    "--dump_graphviz_dir": ("error", "not offered here (TF 2.21 still has it): open the .tflite in Netron "
                                     "(wb.viewer.show) or run `python -m workbench info FILE.tflite`"),
    "--dump_graphviz_video": ("error", "not offered here (TF 2.21's converter logs 'Ignored dump_graphviz_video.')"),
    "--conversion_summary_dir": ("error", "not offered here: `python -m workbench info FILE.tflite` lists the "
                                          "converted model's tensors and ops"),
    "--allow_custom_ops": ("error", "still a tflite_convert flag, but a model with custom ops does not run in "
                                    "LiteRT without your kernels, so the workbench cannot measure it; use "
                                    "tflite_convert --enable_v1_converter ... --allow_custom_ops itself"),
    "--custom_opdefs": ("error", "custom ops do not run in LiteRT without your kernels, so the workbench cannot "
                                 "measure them; use tflite_convert itself"),
    "--target_ops": ("error", "the recipe chooses the op set: --inference_type INT8 gives TFLITE_BUILTINS_INT8, "
                              "the others TFLITE_BUILTINS; SELECT_TF_OPS models do not run in this LiteRT"),
    "--experimental_select_user_tf_ops": ("error", "TensorFlow ops do not run in this LiteRT; use tflite_convert "
                                                   "itself"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``convert`` subcommand's flags: ``tflite_convert``'s names, plus the workbench's few."""
    source = parser.add_argument_group("the model (one of)")
    given = source.add_mutually_exclusive_group(required=True)
    given.add_argument("--saved_model_dir", metavar="DIR", help="a SavedModel folder")
    given.add_argument("--keras_model_file", metavar="FILE", help="a .keras or .h5 file (tf_keras)")
    given.add_argument("--graph_def_file", metavar="FILE", help="a TF1 frozen GraphDef .pb")
    source.add_argument("--input_arrays", metavar="NAMES", help="frozen graph: input tensor names, comma-separated")
    source.add_argument("--output_arrays", metavar="NAMES", help="frozen graph: output tensor names, comma-separated")
    source.add_argument("--input_shapes", metavar="SHAPES",
                        help="frozen graph: one shape per input, e.g. 1,224,224,3 (':' between inputs)")
    source.add_argument("--signature", "--saved_model_signature_key", dest="signature", metavar="KEY",
                        default=None, help="SavedModel signature (default serving_default)")
    source.add_argument("--saved_model_tag_set", metavar="TAGS", default=None,
                        help="SavedModel tags; only 'serve' is supported")
    parser.add_argument("--output_file", metavar="FILE", required=True, help="where to write the .tflite")
    quant = parser.add_argument_group("quantization")
    quant.add_argument("--inference_type", type=str.upper, default="FLOAT", choices=INFERENCE_TYPES,
                       help="FLOAT (default), QUANTIZED_UINT8 (the legacy uint8 path) or INT8")
    quant.add_argument("--inference_input_type", type=str.upper, default=None, choices=INFERENCE_TYPES,
                       help="the input's type (default: the inference type); with INT8 also the output's")
    quant.add_argument("--mean_values", metavar="MEANS", help="QUANTIZED_UINT8: the byte that stands for 0.0")
    quant.add_argument("--std_dev_values", metavar="STDS", help="QUANTIZED_UINT8: bytes per 1.0 of input")
    quant.add_argument("--default_ranges_min", type=float, metavar="MIN",
                       help="QUANTIZED_UINT8: min of the range used where an activation has none")
    quant.add_argument("--default_ranges_max", type=float, metavar="MAX", help="... and its max")
    quant.add_argument("--post_training_quantize", action="store_true",
                       help="FLOAT: int8 weights, float activations (dynamic range)")
    quant.add_argument("--quantize_to_float16", action="store_true",
                       help="with --post_training_quantize: float16 weights instead")
    work = parser.add_argument_group("the workbench's own flags")
    work.add_argument("--representative_data", metavar="FILE.npz",
                      help="INT8: calibration images (array 'images', or x_train; see --images)")
    work.add_argument("--images", default="images", metavar="NAME",
                      help="the image array of --representative_data (default images)")
    work.add_argument("--calibration_size", "--calibration-size", dest="calibration_size", type=int, default=500,
                      metavar="N", help="calibration images used (default 500)")
    work.add_argument("--input_range", "--input-range", dest="input_range", nargs=2, type=float, default=None,
                      metavar=("LO", "HI"), help="the float range the model was trained on, to scale the "
                                                 "calibration images (default 0 1)")


@dataclass(frozen=True)
class Plan:
    """A ``tflite_convert`` command as the workbench runs it: the model, the recipe and its parameters."""

    flag: str                         # the flag the model came with
    path: str
    source: dict[str, Any]            # keyword arguments of load_source (signature, arrays, shapes)
    recipe: str                       # the registry recipe (``"int8"``: int8-ptq or qat-int8, fixed by ``resolve``)
    params: dict[str, Any]
    output: Path
    spec: InputSpec = InputSpec()
    representative: str | None = None
    images: str = "images"
    why: str = ""                     # which flags chose the recipe
    calibration_size: int = 500
    notes: tuple[str, ...] = field(default=())
    fixed_shape: str | None = None    # --input_shapes for a Keras model or SavedModel: its input fixed to it


def retired(unknown: list[str]) -> tuple[list[str], bool]:
    """Sentences for flags that no longer exist; whether one of them asked for ``--post_training_quantize``.

    Raises:
        ValueError: a flag that is unknown, or gone in a way the conversion cannot simply go on without.
    """
    notes, errors, alias = [], [], False
    i = 0
    while i < len(unknown):
        token = unknown[i]
        i += 1
        if not token.startswith("--"):
            errors.append(f"{token!r} is not a flag of convert; allowed: --flag VALUE pairs (python -m workbench "
                          "convert --help)")
            continue
        name, _, value = token.partition("=")
        if not value and i < len(unknown) and not unknown[i].startswith("--"):
            value = unknown[i]
            i += 1
        if name not in RETIRED:
            errors.append(f"{name} is not a tflite_convert flag the workbench knows; allowed: the flags listed "
                          "by python -m workbench convert --help")
            continue
        kind, sentence = RETIRED[name]
        if name == "--output_format" and value.upper() not in ("", "TFLITE"):
            errors.append(f"{name}={value}: the converter no longer draws graphs (TF 2.21 ignores the flag and "
                          "writes a .tflite); open the .tflite in Netron (wb.viewer.show) or run "
                          "`python -m workbench info FILE.tflite`")
        elif kind == "error":
            errors.append(f"{name}{'=' + value if value else ''}: {sentence}")
        else:
            alias = alias or kind == "alias"
            notes.append(f"{name}{'=' + value if value else ''}: {sentence}; dropped." if kind == "ignored" else
                         f"{name}: {sentence}.")
    if errors:
        raise ValueError("; ".join(errors))
    return notes, alias


def _numbers(flag: str, text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise ValueError(f"{flag}={text!r} is not a list of numbers; allowed: one number per input array, "
                         "comma-separated (e.g. 0 or 127.5)")
    return values


def _one(flag: str, values: tuple[float, ...]) -> float:
    if len(set(values)) > 1:
        raise ValueError(f"{flag}={','.join(f'{v:g}' for v in values)} gives the inputs different values; "
                         "allowed: one value for every input (the workbench's recipes read one image input)")
    return values[0]


def plan(args: argparse.Namespace, notes: list[str] | None = None) -> Plan:
    """Check every flag and choose the recipe, before TensorFlow is imported.

    Raises:
        ValueError: a combination ``tflite_convert`` refuses, or one the recipes cannot express, naming the
            flag, the value and what is allowed.
    """
    notes = list(notes or ())
    it, given_input = args.inference_type, args.inference_input_type
    io = IO_TYPE[given_input or it]
    flag, path = next((f"--{k}", getattr(args, k)) for k in ("graph_def_file", "saved_model_dir", "keras_model_file")
                      if getattr(args, k))
    source: dict[str, Any] = {}
    if flag == "--graph_def_file":
        if not args.input_arrays or not args.output_arrays:
            missing = " and ".join(f for f, v in (("--input_arrays", args.input_arrays),
                                                   ("--output_arrays", args.output_arrays)) if not v)
            raise ValueError(f"--graph_def_file={path!r} without {missing}; allowed: the graph's input and output "
                             "tensor names, comma-separated (as tflite_convert requires)")
        source = {"input_arrays": args.input_arrays, "output_arrays": args.output_arrays}
        if args.input_shapes:
            if args.input_shapes.count(":") != args.input_arrays.count(","):
                raise ValueError(f"--input_shapes={args.input_shapes!r} gives {args.input_shapes.count(':') + 1} "
                                 f"shape(s) for {args.input_arrays.count(',') + 1} input array(s); allowed: one "
                                 "shape per --input_arrays name, ':' between them")
            source["input_shapes"] = args.input_shapes
        if not Path(path).is_file():
            raise ValueError(f"--graph_def_file={path!r} does not exist; allowed: a frozen GraphDef .pb file")
    else:
        for name in ("input_arrays", "output_arrays"):
            if getattr(args, name):
                raise ValueError(f"--{name}={getattr(args, name)!r} with {flag}; allowed: only with --graph_def_file "
                                 f"(a {'SavedModel' if flag == '--saved_model_dir' else 'Keras model'} names its "
                                 "own inputs and outputs)")
        if args.input_shapes:  # a model that reads any size: converted at this one (checked when it is loaded)
            from ..core.fixed_input import parse_shape

            parse_shape(args.input_shapes, "--input_shapes")
    if args.signature is not None:
        if flag != "--saved_model_dir":
            raise ValueError(f"--signature={args.signature!r} with {flag}; allowed: only with --saved_model_dir")
        source["signature"] = args.signature
    if getattr(args, "custom_objects", None):
        source["custom_objects"] = args.custom_objects
    if args.saved_model_tag_set not in (None, "serve"):
        raise ValueError(f"--saved_model_tag_set={args.saved_model_tag_set!r}; allowed: 'serve' (the tag "
                         "TFLite converts)")
    if flag == "--saved_model_dir" and not Path(path).is_dir():
        raise ValueError(f"--saved_model_dir={path!r} is not a folder; allowed: a SavedModel folder "
                         "(with saved_model.pb)")
    if flag == "--keras_model_file":
        from ..core.sources import KERAS_SUFFIXES

        if not Path(path).is_file():
            raise ValueError(f"--keras_model_file={path!r} does not exist; allowed: a .keras or .h5 file")
        if Path(path).suffix.lower() not in KERAS_SUFFIXES:
            raise ValueError(f"--keras_model_file={path!r} has suffix {Path(path).suffix!r}; allowed: "
                             f"{', '.join(KERAS_SUFFIXES)} (a SavedModel goes with --saved_model_dir, a frozen .pb "
                             "with --graph_def_file)")
    output = Path(args.output_file)
    if output.is_dir():
        raise ValueError(f"--output_file={args.output_file!r} is a folder; allowed: a file path such as model.tflite")

    has_mean, has_std = args.mean_values is not None, args.std_dev_values is not None
    if has_mean != has_std:
        given, missing = ("--mean_values", "--std_dev_values") if has_mean else ("--std_dev_values", "--mean_values")
        raise ValueError(f"{given}={getattr(args, given[2:])} without {missing}; allowed: both (the uint8 input "
                         "reads byte q as (q - mean) / std) or neither")
    has_min, has_max = args.default_ranges_min is not None, args.default_ranges_max is not None
    if has_min != has_max:
        given, missing = (("--default_ranges_min", "--default_ranges_max") if has_min
                          else ("--default_ranges_max", "--default_ranges_min"))
        raise ValueError(f"{given}={getattr(args, given[2:]):g} without {missing}; allowed: both or neither")
    if args.quantize_to_float16 and not args.post_training_quantize:
        raise ValueError("--quantize_to_float16 without --post_training_quantize; allowed: both together (float16 "
                         "weights), as in tflite_convert, where it alone does nothing")
    spec = inputs.input_spec("--input_range", args.input_range) if args.input_range is not None else InputSpec()
    checks.number("--calibration_size", args.calibration_size, low=1, integer=True)
    if args.representative_data is not None and it != "INT8":
        raise ValueError(f"--representative_data={args.representative_data!r} with --inference_type={it}; allowed: "
                         "only with --inference_type INT8 (calibration for integer activations)")

    params: dict[str, Any] = {}
    if it == "FLOAT":
        for name, present in (("--mean_values", has_mean), ("--default_ranges_min", has_min)):
            if present:
                raise ValueError(f"{name} with --inference_type=FLOAT; allowed: only with --inference_type "
                                 "QUANTIZED_UINT8 (a float model has no uint8 input or activations to describe)")
        if io != "float32":
            raise ValueError(f"--inference_input_type={given_input} with --inference_type=FLOAT; allowed: FLOAT "
                             "(for integer I/O use --inference_type INT8 with --representative_data)")
        if args.post_training_quantize:
            name = "float16" if args.quantize_to_float16 else "dynamic-range"
            why = ("--post_training_quantize --quantize_to_float16" if args.quantize_to_float16
                   else "--post_training_quantize")
        else:
            name, why = "float32", "--inference_type=FLOAT"
    elif it in ("QUANTIZED_UINT8", "UINT8"):
        if args.post_training_quantize:
            raise ValueError(f"--post_training_quantize with --inference_type={it}; allowed: one of them "
                             "(tflite_convert quietly switched to FLOAT: --post_training_quantize alone gives int8 "
                             "weights with float activations; QUANTIZED_UINT8 gives uint8 activations)")
        if io != "uint8":
            raise ValueError(f"--inference_input_type={given_input} with --inference_type={it}; allowed: "
                             "QUANTIZED_UINT8 (the legacy uint8 model reads bytes)")
        if not has_mean:
            raise ValueError(f"--inference_type={it} without --mean_values and --std_dev_values; allowed: both, "
                             "from the float range training fed: [0,1] -> 0 and 255, [-1,1] -> 127.5 and 127.5, "
                             "[0,255] -> 0 and 1")
        mean = _one("--mean_values", _numbers("--mean_values", args.mean_values))
        std = _one("--std_dev_values", _numbers("--std_dev_values", args.std_dev_values))
        if not 0 <= mean <= 255:
            raise ValueError(f"--mean_values={args.mean_values} is out of range; allowed: 0..255, the byte that "
                             "stands for the real value 0.0")
        if not std > 0:
            raise ValueError(f"--std_dev_values={args.std_dev_values} is out of range; allowed: a number > 0, "
                             "bytes per 1.0 of input (255 for inputs in [0,1])")
        name, why = "legacy-uint8", f"--inference_type={it}"
        params = {"mean": mean, "std": std}
        if has_min:
            if not args.default_ranges_min < args.default_ranges_max:
                raise ValueError(f"--default_ranges_min={args.default_ranges_min:g} is not below "
                                 f"--default_ranges_max={args.default_ranges_max:g}; allowed: min < max, the range "
                                 "assumed for activations that have none (e.g. 0 and 6 after ReLU6)")
            params["default_ranges"] = (args.default_ranges_min, args.default_ranges_max)
    else:  # INT8
        for name, present in (("--mean_values", has_mean), ("--default_ranges_min", has_min),
                              ("--post_training_quantize", args.post_training_quantize)):
            if present:
                raise ValueError(f"{name} with --inference_type=INT8; allowed: not with INT8, whose ranges come "
                                 "from --representative_data (calibration) or from quantization-aware training, "
                                 "and whose int8 input reads its own scale and zero point")
        name = "int8"  # int8-ptq or qat-int8: fixed once the model is loaded (resolve)
        why = "--inference_type=INT8"
        params = {"io_type": io}
    registry.recipe("int8-ptq" if name == "int8" else name, **params)  # the recipe's own checks, still before TF
    if args.representative_data is not None:
        inputs.calibration_images("--representative_data", args.representative_data, args.images)
    return Plan(flag, path, source, name, params, output, spec, args.representative_data, args.images, why,
                args.calibration_size, tuple(notes),
                None if flag == "--graph_def_file" or not args.input_shapes else args.input_shapes)


def resolve(p: Plan, model: Any) -> Plan:
    """Fix the INT8 recipe once the model is known: a QAT Keras model -> ``qat-int8``, calibration data -> ``int8-ptq``."""
    if p.recipe != "int8":
        return p
    qat = is_qat(model)
    if p.representative is not None:
        if qat:
            raise ValueError(f"--representative_data={p.representative!r} with a QAT model ({p.path}); allowed: "
                             "no calibration data: a QAT model learned its ranges in training (qat-int8)")
        params = {**p.params, "calibration_size": p.calibration_size}
        return _replace(p, recipe="int8-ptq", params=params, why=p.why + " --representative_data")
    if not qat:
        raise ValueError(f"--inference_type=INT8 on the float model {p.path} (no fake-quant layers or ops); allowed: "
                         "with --representative_data FILE.npz (calibration images: int8-ptq), or a model trained "
                         "with quantization-aware training (qat-int8)")
    return _replace(p, recipe="qat-int8", why=p.why + " on a QAT model")


def _replace(p: Plan, **changes: Any) -> Plan:
    import dataclasses

    return dataclasses.replace(p, **changes)


def python_call(p: Plan, images_key: str | None = None) -> str:
    """The same conversion as Python: ``wb.load_source``, ``wb.convert``, ``save``."""
    lines = ["import workbench as wb"]
    args = [repr(p.path)]
    for key in ("signature", "input_arrays", "output_arrays", "input_shapes", "custom_objects"):
        if key in p.source:
            value = p.source[key]
            if key in ("input_arrays", "output_arrays"):
                value = [v.strip() for v in value.split(",")]
            args.append(f"{key}={value!r}")
    lines.append(f"model = wb.load_source({', '.join(args)})")
    if p.fixed_shape:
        lines.append(f"model = wb.fixed_input(model, {p.fixed_shape!r})")
    call = [f"model, {p.recipe!r}"]
    for key, value in p.params.items():
        call.append(f"{key}={value!r}")
    if p.representative is not None:
        lines.insert(0, "import numpy as np")
        call.append(f"representative=np.load({p.representative!r})[{(images_key or p.images)!r}]")
    if p.spec != InputSpec() and p.representative is not None:
        call.append(f"spec=wb.InputSpec({p.spec.lo!r}, {p.spec.hi!r})")
    lines.append(f"converted = wb.convert({', '.join(call)})")
    lines.append(f"converted.save({str(p.output)!r})")
    return "\n".join(lines)


def run(args: argparse.Namespace, unknown: list[str], out: Callable[[str], None] = print) -> int:
    """Check the flags, load the model, convert with the planned recipe, write the file, say what happened."""
    notes, alias = retired(unknown)
    if alias:
        args.post_training_quantize = True
    p = plan(args, notes)

    model = inputs.model_source(p.flag, p.path, **p.source)
    origin = model
    if p.fixed_shape:
        from ..core.fixed_input import fit_input

        model, fixed = fit_input(model, (), p.fixed_shape, shape_from="--input_shapes")
        p = _replace(p, notes=(*p.notes, fixed) if fixed else p.notes)
    p = resolve(p, model)
    representative, key = None, None
    if p.representative is not None:
        representative, key = inputs.calibration_images("--representative_data", p.representative, p.images)
        shape = model_io(model).input_shape
        inputs.check_images_fit(f"--representative_data={p.representative!r}", representative, shape)

    from ..core.convert import QuantizationWarning, convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # the outcome is printed below, in words
        converted = convert(model, p.recipe, spec=p.spec, representative=representative, **p.params)
    p.output.parent.mkdir(parents=True, exist_ok=True)
    converted.save(p.output)

    spec = registry.get(p.recipe)
    out(f"{p.why} -> recipe {converted.recipe.label()}: {spec.summary}")
    for note in p.notes:
        out(f"note: {note}")
    out(f"model: {describe_source(origin, p)}")
    out(f"result: {describe_io(converted)}")
    sentences = converted.warnings
    if sentences:
        for sentence in sentences:
            out(f"what happened: {sentence}")
        if converted.came_out_float and spec.takes("default_ranges"):
            out("on the command line: add --default_ranges_min 0 --default_ranges_max 6 (a guess that fits ReLU6 "
                "activations), or convert a model trained with quantization-aware training")
    else:
        out(f"what happened: {as_asked(converted)}")
    out(f"wrote {p.output} ({converted.size_kb:.1f} KB, {len(converted.tflite):,} bytes) in "
        f"{converted.seconds:.1f} s")
    out("the same in Python:")
    for line in python_call(p, key).splitlines():
        out(f"    {line}")
    return 0


def describe_source(model: Any, p: Plan) -> str:
    """One line about the model the flags named."""
    from ..core.sources import FrozenGraph, SavedModel

    if isinstance(model, FrozenGraph):
        shapes = ":".join(",".join(map(str, s)) for s in model.input_shapes or ()) or "from the graph"
        return (f"frozen graph {p.path}, inputs {', '.join(model.input_arrays)} ({shapes}), outputs "
                f"{', '.join(model.output_arrays)}")
    if isinstance(model, SavedModel):
        return f"SavedModel {p.path}, signature {model.signature!r}"
    from ..core.sources import keras_origin

    kind = "QAT Keras model" if is_qat(model) else "Keras model"
    origin = keras_origin(model)
    return (f"{kind} {p.path}{f' ({origin})' if origin else ''}, input {list(model.input_shape)}, output "
            f"{list(model.output_shape)}")


def describe_io(converted: Any) -> str:
    """Input, output and activation dtypes of a converted model, with their quantization."""
    def io(t):
        q = f" (scale {t.scale:.6g}, zero point {t.zero_point})" if t.quantized else ""
        return f"{t.dtype} {list(t.shape)}{q}"

    acts = ", ".join(f"{k} x{v}" for k, v in sorted(converted.activation_dtypes.items()))
    return f"input {io(converted.input)}; output {io(converted.output)}; activations {acts}"


def as_asked(converted: Any) -> str:
    """The sentence for a conversion that did what its recipe promises."""
    spec = converted.recipe.spec
    acts = "/".join(sorted(converted.activation_dtypes)) or "none"
    text = f"as asked: {spec.weights} weights, {acts} activations, {converted.input.dtype} input"
    stats = converted.effective_stats
    if stats is not None:
        lo, hi = stats.real_range()
        text += (f"; the input byte q reads as (q - {stats.mean:g}) / {stats.std:g}, i.e. 0..255 -> "
                 f"[{lo:.4g}, {hi:.4g}]")
    if spec.takes("default_ranges") and converted.recipe.default_ranges is not None:
        lo, hi = converted.recipe.default_ranges
        text += f"; activations without a learned range got [{lo:g}, {hi:g}] (default_ranges)"
    return text + "."
