"""Writing files safely: to a temporary file in the same folder, then an atomic rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from cnnkit.errors import AlreadyExists, CnnkitError, DiskFull, IsAFolder, NotAFolder, NotFound

__all__ = ["atomic_write", "check_output_folder", "file_mode"]

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
