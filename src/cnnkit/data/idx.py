"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian 32-bit size per dimension, then the data in C order. Files may be gzip-compressed
(``.gz``); the reader recognises them by their first two bytes, not by the name.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from cnnkit.errors import InvalidArgument, InvalidType

__all__ = ["read_idx", "write_idx"]

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


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InvalidArgument(f"{path} is a damaged or truncated gzip file ({exc})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array in native byte order.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    numpy.ndarray
        Shape as stored in the header; dtype from the header's type code (``uint8`` for MNIST).

    Raises
    ------
    ValueError
        When the magic number is wrong, or the file is shorter or longer than its header says.

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
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise InvalidArgument(
            f"{path} is not an IDX file: wrong magic number {data[:4].hex() or 'empty'} "
            "(expected 0000 followed by a type code and the number of dimensions)"
        )
    dtype, ndim = _TYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise InvalidArgument(f"{path} is truncated: its header needs {header_size} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise InvalidArgument(
            f"{path} is {problem}: header shape {shape} needs {expected} bytes of data, "
            f"found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
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
