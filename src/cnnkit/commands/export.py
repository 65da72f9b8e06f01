"""``cnnkit export``: a trained run as one ONNX file, checked with onnxruntime."""

from __future__ import annotations

import argparse

from cnnkit.commands.options import add_data_dir_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX, checked with onnxruntime",
        description=(
            "Write the run's model as one ONNX file (no external data) that takes pixels in "
            "[0, 1] (the normalisation is part of the graph) with a dynamic batch dimension, "
            "then load it with onnxruntime and compare its logits with the engine's on test "
            "images. Needs pip install 'cnnkit[export]'. Example: cnnkit export runs/fashion"
        ),
    )
    parser.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    parser.add_argument("--format", choices=("onnx",), default="onnx",
                        help="file format (default onnx)")
    parser.add_argument("-o", "--output", metavar="FILE.onnx",
                        help="where to write (default: model.onnx in the run folder, replaced "
                        "on the next export)")
    parser.add_argument("--best", action="store_true", help="export the run's best checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file named with -o")
    add_data_dir_option(parser, "the test images")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed logit difference from the engine (default 1e-4)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.export import export_onnx

    check = export_onnx(args.run, args.output, best=args.best, overwrite=args.overwrite,
                        tolerance=args.tolerance, data_dir=args.data_dir)
    print(check.format())
    return 0
