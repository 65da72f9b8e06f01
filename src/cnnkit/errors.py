"""cnnkit's error types: every failure cnnkit expects is one of these.

Each type also derives from the built-in exception a Python user would catch for it
(``ValueError`` for a bad value, ``TypeError`` for a wrong type, ``FileNotFoundError`` for a
missing file, ...), so ``except ValueError`` keeps working. The command line turns a
:class:`CnnkitError` into one line on stderr and exit status 2; any other exception is a bug in
cnnkit and shows its traceback.

>>> issubclass(InvalidArgument, ValueError) and issubclass(InvalidArgument, CnnkitError)
True
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BadFile",
    "CnnkitError",
    "DiskFull",
    "InvalidArgument",
    "InvalidType",
    "IsAFolder",
    "MissingPackage",
    "NotAFolder",
    "NotFound",
    "RendezvousTimeout",
    "RunBusy",
    "ShapeError",
    "StateDictError",
    "TooLarge",
    "TrainingError",
]


class CnnkitError(Exception):
    """Base of every failure that cnnkit expects and explains in its message."""


class InvalidArgument(CnnkitError, ValueError):
    """An argument's value is not allowed; the message names the argument and what is allowed."""


class InvalidType(CnnkitError, TypeError):
    """An argument has the wrong type; the message names the argument and the type received."""


class TooLarge(CnnkitError, ValueError):
    """The work asked for would need more memory, disk or time than allowed; refused up front."""


class BadFile(CnnkitError, ValueError):
    """An input file is damaged, of the wrong kind, or holds values that cannot be used."""


class MissingPackage(CnnkitError, ImportError):
    """An optional package that the asked-for feature needs is not installed."""


class NotFound(CnnkitError, FileNotFoundError):
    """An input file, folder or data set does not exist."""


class AlreadyExists(CnnkitError, FileExistsError):
    """An output exists and would be replaced; the message says how to allow it."""


class IsAFolder(CnnkitError, IsADirectoryError):
    """A file was expected where a folder is."""


class NotAFolder(CnnkitError, NotADirectoryError):
    """A folder was expected where a file is."""


class ShapeError(CnnkitError, ValueError):
    """An array does not have the shape a layer or a function needs."""


class StateDictError(CnnkitError, ValueError):
    """A state dict has a missing, unexpected or misshapen key."""


class RendezvousTimeout(CnnkitError, TimeoutError):
    """The machines of a run on several machines did not all join in time."""


class RunBusy(CnnkitError, RuntimeError):
    """Another process is writing the same run folder."""


class DiskFull(CnnkitError, OSError):
    """A write failed because the disk (or the user's quota) is full; nothing was replaced."""


class TrainingError(CnnkitError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""
