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


def add_invert_option(parser: argparse.ArgumentParser) -> None:
    """``--invert`` of the commands that bring pictures to a model's input (predict, explain)."""
    from cnnkit.model import INVERT_MODES

    parser.add_argument(
        "--invert", choices=INVERT_MODES, default="auto",
        help="invert each picture's brightness: auto (the default) inverts a picture whose "
        "border is dark when the training images' background is light, or light when it is "
        "dark (a dark drawing on white, for a model of MNIST or Fashion-MNIST); always; never")


def warning_line(path: str, warnings: list[str]) -> str:
    """One line on stderr for a picture that looks unlike the model's training images."""
    return f"warning: {path}: {'; '.join(warnings)}"


def add_data_dir_option(parser: argparse.ArgumentParser, what: str = "data files") -> None:
    """``--data-dir`` of the commands that read a run's data set."""
    parser.add_argument("--data-dir", help=f"a folder searched first for {what} (default: "
                        "none, only the standard places)")
