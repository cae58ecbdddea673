"""The command line: ``python -m workbench demo | info MODEL.tflite | explain MESSAGE``."""

from __future__ import annotations

import argparse
import sys
import time

from ..core import recipes as registry


def build_parser() -> argparse.ArgumentParser:
    """The command line; recipe choices come from the registry at the time of the call."""
    parser = argparse.ArgumentParser(prog="python -m workbench",
                                     description="Quantization Workbench: TFLite quantization, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train float + QAT LeNet, convert every recipe, evaluate, report")
    demo.add_argument("--out", default="out", help="output folder for results.csv, the PNG and .tflite files")
    demo.add_argument("--epochs", type=int, default=1, help="float training epochs (default 1)")
    demo.add_argument("--qat-epochs", type=int, default=1, help="QAT fine-tuning epochs (default 1)")
    demo.add_argument("--train-size", type=int, default=None, help="training images (default: all 60,000)")
    demo.add_argument("--test-size", type=int, default=None, help="test images (default: all 10,000)")
    demo.add_argument("--calibration-size", type=int, default=500, help="representative images for PTQ")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--cache", default=None, help="artifact cache (default $WORKBENCH_CACHE or ~/.cache)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--recipes", nargs="+", metavar="RECIPE", choices=registry.names(), default=None,
                      help="only these recipes (default: all): " + ", ".join(registry.names()))
    info = sub.add_parser("info", help="dtypes, quantization and ops of a .tflite file")
    info.add_argument("model")
    explain = sub.add_parser("explain", help="explain a converter or interpreter error message")
    explain.add_argument("message", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo" and args.recipes is not None:
        args.recipes = tuple(args.recipes)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "info":
            return _info(args.model)
        from ..core.diagnose import explain as explain_message

        print(explain_message(" ".join(args.message)))
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _demo(args) -> int:
    start = time.perf_counter()
    from .demo import DemoConfig, format_table, results_frame, run_demo, write_report

    config = DemoConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, train_size=args.train_size,
                        test_size=args.test_size, calibration_size=args.calibration_size, seed=args.seed,
                        recipes=args.recipes)
    runs = run_demo(config, cache=args.cache, progress=not args.no_progress)
    frame = results_frame(runs)
    paths = write_report(runs, args.out)
    print()
    print(format_table(frame))
    print()
    print(f"wrote {paths['csv']}, {paths['png']} and {len(runs)} models in {paths['models']}")
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
