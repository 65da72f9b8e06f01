"""``cnnkit demo``: a guided tour of the building blocks on built-in data."""

from __future__ import annotations

import argparse

from cnnkit.shapes import explain_output_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a tour of convolution, padding, pooling and training on built-in data",
        description="A tour of cnnkit's building blocks on built-in data. Example: cnnkit demo",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print("Output size: o = floor((n + 2p - m) / s) + 1")
    print("  n=32, m=5, p=2, s=1:", explain_output_size(32, 5, padding=2))
    return 0
