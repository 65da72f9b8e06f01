"""``cnnkit summary``: a network's layers, output shapes and parameter counts."""

from __future__ import annotations

import argparse

from cnnkit.arch import format_summary, load_architecture
from cnnkit.shapes import parse_input_shape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="layers, output shapes and parameter counts of an architecture or a trained run",
        description=(
            "One row per layer: output shape, parameter count and the formula with the numbers "
            "put in, then the total. Example: cnnkit summary --arch tutorial --input 3x32x32. "
            "With --run, the architecture of a trained run and the engine that trained it."
        ),
    )
    parser.add_argument("--arch", default="tutorial",
                        help="a built-in architecture ('tutorial', the default) or a JSON spec "
                        "file (see README: Architectures)")
    parser.add_argument("--input", default="1x28x28", metavar="CxHxW",
                        help="input shape (default 1x28x28)")
    parser.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    parser.add_argument("--run", metavar="RUN_DIR|CHECKPOINT",
                        help="summarise a trained run instead: its architecture, the engine "
                        "that trained it and its last epoch (default: none, summarise --arch)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.run:
        from cnnkit.engines.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(args.run)
        info = checkpoint.model_info
        print(format_summary(load_architecture(info["arch"]), info["input_shape"],
                             info["num_classes"]))
        last = checkpoint.history[-1] if checkpoint.history else {}
        accuracy = last.get("val_accuracy")
        print(f"trained by the {checkpoint.engine} engine on "
              f"{checkpoint.config.get('dataset', '?')} for {checkpoint.epoch} epoch(s)"
              + (f"; validation accuracy {100 * accuracy:.2f}%" if accuracy is not None else "")
              + "; evaluate, predict or resume it with --engine numpy or --engine torch")
        return 0
    arch = load_architecture(args.arch)
    print(format_summary(arch, parse_input_shape(args.input), args.classes))
    print("runs on both engines: --engine torch (PyTorch) or --engine numpy (cnnkit.nn)")
    return 0
