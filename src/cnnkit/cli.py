"""The ``cnnkit`` command line: a thin skin over the library.

``main(argv) -> int`` parses, calls library functions and returns the exit status. Every failure
cnnkit expects is a :class:`cnnkit.errors.CnnkitError`: it prints one line on stderr and returns
2, and so do running out of memory, a full disk and other failures of the machine (a file that
cannot be read or written). Any other exception is a bug in cnnkit: its traceback is shown with
a request to report it, and the status is 1. SIGTERM is handled like Ctrl-C: the command stops
at once, temporary files are removed and what was complete (a run's last checkpoint) is kept.
Each subcommand lives in ``cnnkit.commands.<name>`` with a ``register(subparsers)`` function that
adds its parser and sets ``handler``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

from cnnkit import __version__
from cnnkit.commands import COMMANDS
from cnnkit.errors import CnnkitError, InvalidArgument

__all__ = ["build_parser", "entry", "main"]

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwound like Ctrl-C so that temporary files are removed."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``cnnkit: error: ...``) instead of usage dumps, and
    without abbreviations: ``--padding`` must never be taken for ``--padding-mode``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidArgument(f"{message} (see '{self.prog} --help')")


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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error(message: str) -> None:
    print(f"cnnkit: error: {message}", file=sys.stderr)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _os_error_line(exc: OSError) -> str:
    """One line for a failure of the machine: what failed, on which file, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _DISK_FULL:
        return (f"the disk is full{where}; nothing already written was replaced. Free some "
                "space (or choose another --out) and run the command again")
    reason = exc.strerror or _first_line(exc)
    return f"{reason}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        with _sigterm_as_interrupt():
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                return EXIT_USAGE
            return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader went away (``cnnkit demo | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CnnkitError as exc:
        _error(_first_line(exc))
        return EXIT_USAGE
    except MemoryError:
        _error("out of memory: the machine could not give cnnkit the memory this needs; try a "
               "smaller input, batch size or model, or close other programs")
        return EXIT_USAGE
    except OSError as exc:
        _error(_os_error_line(exc))
        return EXIT_USAGE
    except Terminated:
        print("cnnkit: terminated; temporary files removed, complete files kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("cnnkit: interrupted; temporary files removed, complete files kept",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            f"cnnkit: internal error: this is a bug in cnnkit {__version__}, not a problem with "
            "your input. Please report it to the cnnkit issue tracker with the command line "
            "and the traceback above.",
            file=sys.stderr,
        )
        return EXIT_BUG


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
