"""The ``cnnkit`` command line: a thin skin over the library.

``main(argv) -> int`` parses, calls library functions and returns the exit status. Usage errors
and bad input print one line on stderr and return 2; no traceback reaches the user. Each
subcommand lives in ``cnnkit.commands.<name>`` with a ``register(subparsers)`` function that adds
its parser and sets ``handler``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cnnkit import __version__
from cnnkit.commands import COMMANDS

__all__ = ["CommandError", "build_parser", "entry", "main"]

EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure: its message is printed as one line and the exit status is 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``cnnkit: error: ...``) instead of usage dumps."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = _Parser(
        prog="cnnkit",
        description="Convolutional neural networks from first principles to a trained model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with:  cnnkit demo",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader went away (``cnnkit demo | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CommandError, ValueError, TypeError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        print(f"cnnkit: error: {message.splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
