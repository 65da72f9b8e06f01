"""Options that several subcommands share, defined once."""

from __future__ import annotations

import argparse


def add_engine_options(parser: argparse.ArgumentParser, *, device: str = "cpu") -> None:
    """``--engine`` and ``--device`` of the commands that use a trained model."""
    parser.add_argument("--engine", choices=("numpy", "torch"),
                        help="which engine computes (default: torch where it imports, numpy "
                        "otherwise); either runs a model trained by either")
    parser.add_argument("--device", default=device,
                        help=f"torch: auto, cpu, cuda, cuda:N, mps (default: {device})")
