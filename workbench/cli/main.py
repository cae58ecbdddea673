"""The command line: ``python -m workbench demo | convert | evaluate | report | info | explain``.

This module owns the parser and the dispatch: ``demo`` (``demo``), ``convert``
with the ``tflite_convert`` flags (``toco``), ``evaluate`` (``evaluation``),
``report`` (``report``), ``info`` and ``explain``. Every argument error is one
line, ``error: ...``, naming the flag, the value and what is allowed, with exit
code 2 and no traceback; a model the converter or LiteRT refuses is explained
(cause and fix) with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..core import recipes as registry


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, ``error: ...`` (no usage block), exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line; recipe choices come from the registry at the time of the call."""
    parser = _Parser(prog="python -m workbench", description="Quantization Workbench: TFLite quantization, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train float + QAT LeNet, convert every recipe, evaluate, report")
    demo.add_argument("--out", default="out", help="output folder for results.csv, the PNG and .tflite files")
    demo.add_argument("--epochs", type=int, default=1, help="float training epochs (default 1)")
    demo.add_argument("--qat-epochs", type=int, default=1, help="QAT fine-tuning epochs (default 1)")
    demo.add_argument("--train-size", type=int, default=None, help="training images (default: all 60,000)")
    demo.add_argument("--test-size", type=int, default=None, help="test images (default: all 10,000)")
    demo.add_argument("--calibration-size", type=int, default=500, help="representative images for PTQ")
    demo.add_argument("--seed", type=int, default=0, help="the first training seed (default 0)")
    demo.add_argument("--seeds", type=int, default=1,
                      help="train every model this many times (seeds SEED, SEED+1, ...) and show mean ± std "
                           "(default 1)")
    demo.add_argument("--cache", default=None, help="artifact cache (default $WORKBENCH_CACHE or ~/.cache)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--recipes", nargs="+", metavar="RECIPE", choices=registry.names(), default=None,
                      help="only these recipes (default: all): " + ", ".join(registry.names()))
    from . import evaluation, report, toco

    convert = sub.add_parser("convert", allow_abbrev=False,
                             help="convert with the tflite_convert/toco flags (mapped to a recipe)",
                             description="Convert a model with the tflite_convert / toco flags. Each combination "
                                         "maps to a recipe of the registry; the command says what happened and "
                                         "prints the equivalent Python call. Flags that no longer exist are "
                                         "named with what replaced them.")
    toco.add_arguments(convert)
    evaluate = sub.add_parser("evaluate", help="accuracy, per-class accuracy, size and speed on an .npz",
                              description="Accuracy of a model on every image of an .npz. A float input is fed "
                                          "pixels mapped from [0, 255] to --input-range, a uint8 input the raw "
                                          "bytes, an int8 input its own scale and zero point.")
    evaluation.add_arguments(evaluate)
    compare = sub.add_parser("report", help="every recipe on your model and data: table, CSV and PNG",
                             description="Convert a model with every registered recipe and evaluate each on "
                                         "an .npz: the one-command quick comparison.")
    report.add_arguments(compare)
    info = sub.add_parser("info", help="dtypes, quantization and ops of a .tflite file")
    info.add_argument("model")
    explain = sub.add_parser("explain", help="explain a converter or interpreter error message")
    explain.add_argument("message", nargs="+")
    for command in (convert, evaluate, compare):
        command.add_argument("--custom-objects", "--custom_objects", dest="custom_objects", default=None,
                             metavar="FILE.py", help="a .keras/.h5 model's own layer classes: a .py file that "
                                                     "defines or registers them")
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..core import heap

    heap.limit_arenas()  # before TensorFlow starts its threads (core.heap)
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    if unknown and args.command != "convert":
        print(f"error: python -m workbench {args.command}: unrecognized arguments: {' '.join(unknown)} "
              f"(see python -m workbench {args.command} --help)", file=sys.stderr)
        return 2
    if args.command == "demo" and args.recipes is not None:
        args.recipes = tuple(args.recipes)
    from ..core.diagnose import QuantizationError

    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "convert":
            from .toco import run

            return run(args, unknown)
        if args.command == "evaluate":
            from .evaluation import run

            return run(args)
        if args.command == "report":
            from .report import run

            return run(args)
        if args.command == "info":
            return _info(args.model)
        from ..core.diagnose import explain as explain_message

        print(explain_message(" ".join(args.message)))
        return 0
    except ValueError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    except QuantizationError as err:
        print(f"error: the converter or LiteRT refused the model:\n{err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - one line for the user; the traceback with --debug
        if getattr(args, "debug", False):
            raise
        print(f"error: {type(err).__name__}: {' '.join(str(err).split())[:300]} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


def _writable_folder(flag: str, value: str) -> None:
    """``value`` is, or can be made, a folder this process writes into (checked before any training)."""
    import tempfile
    from pathlib import Path

    folder = Path(value).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{flag}={value!r} cannot be used as a folder ({err.strerror}); allowed: a folder that "
                         "exists or can be created, and can be written") from None


def _demo(args) -> int:
    start = time.perf_counter()
    from ..core import checks
    from ..core.demo import DemoConfig, results_frame, run_demo
    from .demo import format_table, legend, write_report

    for flag, value, low in (("--epochs", args.epochs, 1), ("--qat-epochs", args.qat_epochs, 1),
                             ("--seed", args.seed, 0), ("--calibration-size", args.calibration_size, 1),
                             ("--seeds", args.seeds, 1)):
        checks.number(flag, value, low=low, integer=True)
    for flag, value in (("--train-size", args.train_size), ("--test-size", args.test_size)):
        if value is not None:
            checks.number(flag, value, low=1, integer=True)
    _writable_folder("--out", args.out)
    if args.cache is not None:
        _writable_folder("--cache", args.cache)

    config = DemoConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, train_size=args.train_size,
                        test_size=args.test_size, calibration_size=args.calibration_size, seed=args.seed,
                        recipes=args.recipes, seeds=args.seeds)
    runs = run_demo(config, cache=args.cache, progress=not args.no_progress)
    frame = results_frame(runs)
    paths = write_report(runs, args.out)
    print()
    print(format_table(frame))
    print()
    print(legend(frame))
    print()
    models = sum(run.seed == runs[0].seed for run in runs)
    print(f"wrote {paths['csv']}, {paths['by_seed']}, {paths['png']} and {models} models in {paths['models']}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return 0


def _info(path: str) -> int:
    from pathlib import Path

    from ..core.litert import read_model

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"model={path!r} does not exist; allowed: a .tflite file path")
    info = read_model(file.read_bytes())
    for io in info.inputs + info.outputs:
        print(f"{io.name}: {io.dtype} {list(io.shape)} scale={io.scale:.6g} zero_point={io.zero_point}")
    print("tensors by dtype:", info.dtype_counts())
    print("ops:", ", ".join(f"{k}×{v}" for k, v in info.op_counts().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
