"""``cnnkit summary``: a network's layers, output shapes and parameter counts."""

from __future__ import annotations

import argparse

from cnnkit.arch import format_summary, load_architecture, parse_input_shape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="layers, output shapes and parameter counts of an architecture",
        description=(
            "One row per layer: output shape, parameter count and the formula with the numbers "
            "put in, then the total. Example: cnnkit summary --arch tutorial --input 3x32x32"
        ),
    )
    parser.add_argument("--arch", default="tutorial",
                        help="a built-in architecture ('tutorial') or a JSON spec file")
    parser.add_argument("--input", default="1x28x28", metavar="CxHxW",
                        help="input shape (default 1x28x28)")
    parser.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    arch = load_architecture(args.arch)
    print(format_summary(arch, parse_input_shape(args.input), args.classes))
    return 0
