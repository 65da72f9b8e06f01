"""Writing files safely: to a temporary file in the same folder, then an atomic rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cnnkit.errors import AlreadyExists, IsAFolder, NotAFolder, NotFound

__all__ = ["atomic_write", "check_output_folder"]


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
    under the real name. Every file cnnkit writes (images, figures, checkpoints, metrics,
    downloads) goes through here.

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
            f"output file {str(path)!r} already exists; pass overwrite=True "
            "(command line: --overwrite) to replace it"
        )
    if path.is_dir():
        raise IsAFolder(f"output path {str(path)!r} is a folder")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    os.close(handle)
    try:
        write(Path(temporary))
        # Make the bytes durable before the rename makes them visible under the real name.
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def check_output_folder(path: Path, *, overwrite: bool, hint: str) -> None:
    """Refuse an output folder that is a file, or that holds files unless ``overwrite``.

    ``hint`` ends the message and says what the user can do instead.
    """
    if path.exists() and not path.is_dir():
        raise NotAFolder(f"output {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise AlreadyExists(f"output folder {path} exists and is not empty; {hint}")
