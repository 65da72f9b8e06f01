"""Files in and out: reading only regular files, and writing to a temporary file in the same
folder, then an atomic rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cnnkit.errors import (
    AlreadyExists,
    BadFile,
    CnnkitError,
    DiskFull,
    IsAFolder,
    NotAFolder,
    NotFound,
    TooLarge,
)

__all__ = [
    "atomic_write",
    "check_output_folder",
    "display_name",
    "file_mode",
    "open_regular",
    "read_regular",
]

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_umask_lock = threading.Lock()
#: Free bytes below which a failed write is put down to a full disk.
_NEARLY_FULL = 1 << 20


def file_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 less the process's umask."""
    with _umask_lock:  # reading the umask means setting it; keep threads from seeing the gap
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symbolic links followed).

    A FIFO, a device, a socket or a folder is refused in one line naming ``what`` and the path,
    without blocking: the file is opened non-blocking and checked with ``fstat`` on the open
    descriptor (so it cannot be swapped between the check and the read). Every file whose path
    comes from the user or from another file is opened here.

    >>> open_regular("/dev/zero", "arch file")
    Traceback (most recent call last):
    cnnkit.errors.BadFile: arch file /dev/zero is a character device, not a regular file
    """
    name = os.fspath(path)
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"{what} {display_name(name)} does not exist") from None
    except IsADirectoryError:
        raise IsAFolder(f"{what} {display_name(name)} is a folder") from None
    mode = os.fstat(handle).st_mode
    if not stat.S_ISREG(mode):
        os.close(handle)
        if stat.S_ISDIR(mode):
            raise IsAFolder(f"{what} {display_name(name)} is a folder")
        raise BadFile(f"{what} {display_name(name)} is a {_kind(mode)}, not a regular file")
    os.set_blocking(handle, True)
    return os.fdopen(handle, "rb")


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")]
    return next((name for test, name in kinds if test(mode)), "special file")


def read_regular(path: str | os.PathLike, what: str, *, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` (:func:`open_regular`), refused as
    :class:`~cnnkit.errors.TooLarge` beyond ``max_bytes`` (only that much is ever read)."""
    with open_regular(path, what) as stream:
        raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise TooLarge(f"{what} {display_name(os.fspath(path))} is larger than "
                       f"{max_bytes:,} bytes")
    return raw


def display_name(name: str | os.PathLike) -> str:
    """``name`` as cnnkit shows and writes it: bytes that are not UTF-8 (which Python keeps as
    lone surrogates, ``surrogateescape``) become ``\\xNN``, the same in every output.

    >>> display_name(b"caf\\xe9".decode("utf-8", "surrogateescape"))
    'caf\\\\xe9'
    """
    text = os.fspath(name)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
) -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path``.

    The temporary file lies in the destination folder (so the rename is atomic) and keeps the
    suffix of ``path`` (so writers that choose a format by suffix see the right one). It is
    removed if ``write`` fails, so an interrupted or failed write never leaves a partial file
    under the real name. The file gets the mode ``open()`` would give it (0o666 less the
    umask), and a full disk is reported as :class:`~cnnkit.errors.DiskFull` naming the file.
    Every file cnnkit writes (images, figures, checkpoints, metrics, downloads) goes through
    here.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    write : callable
        Writes the file at the path it is given.
    overwrite : bool
        Replace an existing ``path``; without it an existing file is refused.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write(target, lambda tmp: tmp.write_text("hello")).read_text()
    'hello'
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise NotFound(
            f"the folder of the output file {str(path)!r} does not exist; create it first"
        )
    if path.exists() and not overwrite:
        raise AlreadyExists(
            f"output file {str(path)!r} already exists; add --overwrite to replace it (in "
            "Python: overwrite=True)"
        )
    if path.is_dir():
        raise IsAFolder(f"output path {str(path)!r} is a folder")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    os.close(handle)
    try:
        write(Path(temporary))
        # mkstemp makes 0600 (and some writers create the file anew): follow the umask as
        # open() does.
        os.chmod(temporary, file_mode())
        # Make the bytes durable before the rename makes them visible under the real name.
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if _is_disk_full(exc, folder):
            raise DiskFull(
                f"the disk is full: {path} could not be written (an earlier version of it, if "
                "any, is unchanged); free some space and try again"
            ) from exc
        raise
    return path


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    """ENOSPC, also when a library wrapped it in an error of its own (torch.save raises a
    RuntimeError saying only that a write failed): then a disk with (almost) no free space left
    is taken as the cause."""
    if isinstance(exc, Exception) and not isinstance(exc, CnnkitError):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < _NEARLY_FULL:
                return True
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def check_output_folder(path: Path, *, overwrite: bool, hint: str) -> None:
    """Refuse an output folder that is a file, or that holds files unless ``overwrite``.

    ``hint`` ends the message and says what the user can do instead.
    """
    if path.exists() and not path.is_dir():
        raise NotAFolder(f"output {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise AlreadyExists(f"output folder {path} exists and is not empty; {hint}")
