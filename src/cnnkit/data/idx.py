"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian 32-bit size per dimension, then the data in C order. Files may be gzip-compressed
(``.gz``); the reader recognises them by their first two bytes, not by the name.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import numpy as np

from cnnkit._files import open_regular
from cnnkit.budget import check_memory
from cnnkit.errors import BadFile, InvalidType

__all__ = ["open_decompressed", "read_idx", "write_idx"]

#: IDX type codes and the big-endian numpy dtypes they stand for.
_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def open_decompressed(path: str, what: str = "IDX file") -> Iterator[BinaryIO]:
    """The file's bytes, decompressed on the fly when it starts with the gzip magic number.

    ``what`` names the file when it is not a regular one. A damaged compressed stream raises
    ``OSError``, ``EOFError`` or ``zlib.error`` when read; its checksum is verified when the
    stream is read to its end.
    """
    with open_regular(path, what) as handle:  # a FIFO or a device is refused
        compressed = handle.read(2) == _GZIP_MAGIC
        handle.seek(0)
        if not compressed:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            yield stream  # type: ignore[misc]


def _read_some(stream: BinaryIO, count: int, path: str) -> bytes:
    """At most ``count`` bytes; a damaged compressed stream is a :class:`BadFile`."""
    try:
        return stream.read(count)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadFile(f"{path} is a damaged or truncated gzip file ({exc})") from None


def _read_exactly(stream: BinaryIO, count: int, path: str, what: str) -> bytes:
    data = _read_some(stream, count, path)
    if len(data) != count:
        raise BadFile(f"{path} is truncated: {what} needs {count} bytes, found {len(data)}")
    return data


def read_idx(
    path: str | os.PathLike, *, expect: Sequence[int | None] | None = None
) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array in native byte order.

    The header is read first; the data size it declares is checked against the memory the
    machine can give before anything else is read, and a compressed file is never decompressed
    past that size (a small ``.gz`` that would expand to gigabytes is refused, not expanded).

    Parameters
    ----------
    path : str or path-like
        The file.
    expect : sequence of int or None, optional
        The shape the caller needs, ``None`` where any size will do (``(None, 28, 28)``); a
        header that declares another shape is refused before any data is read.

    Returns
    -------
    numpy.ndarray
        Shape as stored in the header; dtype from the header's type code (``uint8`` for MNIST).

    Raises
    ------
    cnnkit.errors.BadFile
        When the magic number is wrong, or the file is shorter or longer than its header says.
    cnnkit.errors.TooLarge
        When the header declares more data than fits in memory.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> write_idx(folder + "/x.idx", np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(folder + "/x.idx")
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = os.fspath(path)
    with open_decompressed(path) as stream:
        magic = _read_some(stream, 4, path)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
            raise BadFile(
                f"{path} is not an IDX file: wrong magic number {magic.hex() or 'empty'} "
                "(expected 0000 followed by a type code and the number of dimensions)"
            )
        dtype, ndim = _TYPES[magic[2]], magic[3]
        shape = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, "its header"))
        if expect is not None and (
            len(expect) != len(shape)
            or any(want is not None and want != got for want, got in zip(expect, shape))
        ):
            wanted = "x".join("N" if n is None else str(n) for n in expect)
            raise BadFile(f"{path} holds an array of shape {shape}, not {wanted}")
        expected = math.prod(shape) * dtype.itemsize
        check_memory(2 * expected, f"reading {path} (header shape {shape})")
        data = _read_exactly(stream, expected, path, f"header shape {shape}")
        if _read_some(stream, 1, path):
            raise BadFile(
                f"{path} is longer than its header says: header shape {shape} needs "
                f"{expected} bytes of data"
            )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _TYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise InvalidType(f"array dtype {array.dtype} has no IDX type code")
    header = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(dtype.newbyteorder(">")).tobytes()
    if compress:
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as handle:
        handle.write(payload)
