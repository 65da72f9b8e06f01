"""cnnkit's error types: every expected failure raises one of these.

They derive from the built-in type a caller would otherwise catch (``ValueError``), so code
written against the built-ins keeps working.
"""

from __future__ import annotations

__all__ = ["CnnkitError", "InvalidArgument", "TooLarge"]


class CnnkitError(Exception):
    """Base class of cnnkit's expected failures."""


class InvalidArgument(CnnkitError, ValueError):
    """An argument or input that cnnkit cannot use; the message names it and what is allowed."""


class TooLarge(CnnkitError, ValueError):
    """Work refused before it starts because it would need more memory or time than allowed.

    The message names the quantity needed and the limit (bytes for memory).
    """
