"""cnnkit's own error types: expected refusals, as opposed to bugs.

Every error cnnkit raises on purpose derives from :class:`CnnkitError`. The subclasses also derive
from the built-in type a caller would expect (``ValueError``), so ``except ValueError`` keeps
working.
"""

from __future__ import annotations

__all__ = ["CnnkitError", "ShapeError", "StateDictError"]


class CnnkitError(Exception):
    """Base class of the errors cnnkit raises on purpose."""


class ShapeError(CnnkitError, ValueError):
    """An array does not have the shape a layer or a function needs."""


class StateDictError(CnnkitError, ValueError):
    """A state dict has a missing, unexpected or misshapen key."""
