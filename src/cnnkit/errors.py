"""cnnkit's error types: expected failures that the command line reports as one line."""

from __future__ import annotations

__all__ = ["CnnkitError", "InvalidArgument"]


class CnnkitError(Exception):
    """Base class of the failures cnnkit expects and explains (bad input, missing files)."""


class InvalidArgument(CnnkitError, ValueError):
    """An argument or input file that cnnkit cannot use; the message names it."""
