"""Kernels given by the user: text, nested lists and files, turned into 2-D float64 arrays.

Accepted forms (see :func:`parse_kernel`): an array or nested list, a kernel name with
parameters (``"gaussian:sigma=2"``, built by :func:`cnnkit.filters.make_kernel`), a nested list
as text (``"[[-1,0,1],[-2,0,2],[-1,0,1]]"``), CSV-like rows (``"1,2,1; 2,4,2; 1,2,1"``) and
``.npy``, ``.csv`` or ``.txt`` files of at most :data:`MAX_KERNEL_FILE_BYTES`.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable

import numpy as np

from cnnkit._validate import as_float_array
from cnnkit.errors import InvalidArgument, InvalidType, NotFound, TooLarge
from cnnkit.filters.kernels import (
    MAX_KERNEL_SIDE,
    check_kernel_side,
    kernel_parameters,
    make_kernel,
)

__all__ = ["MAX_KERNEL_FILE_BYTES", "parse_kernel"]

#: Largest kernel file read (a 2049 x 2049 kernel written as text with full precision).
MAX_KERNEL_FILE_BYTES = 128 * 2**20


def _float_param(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be a number, got {text!r}") from None


def _int_param(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer, got {text!r}") from None


#: How the text of each named kernel's parameter is read.
_CONVERTERS: dict[str, Callable[[str, str], object]] = {
    "size": _int_param,
    "radius": _int_param,
    "neighbours": _int_param,
    "sigma": _float_param,
    "truncate": _float_param,
    "amount": _float_param,
}


def _named_from_text(spec: str) -> np.ndarray:
    """``"gaussian:sigma=2,radius=5"`` -> make_kernel("gaussian", sigma=2.0, radius=5)."""
    name, _, options = spec.partition(":")
    name = name.strip()
    allowed = kernel_parameters(name)
    params: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            accepted = ", ".join(f"{k}=..." for k in allowed) or "no parameters"
            raise InvalidArgument(
                f"kernel {name!r} takes {accepted}; could not use {item!r} in {spec!r}"
            )
        params[key] = _CONVERTERS[key](value.strip(), key)
    return make_kernel(name, **params)


def _rows_from_text(text: str, source: str) -> np.ndarray:
    """Parse a Python/JSON nested list or CSV-like rows (newline or ';' between rows)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise InvalidArgument(
                f"kernel {source} is not a valid nested list of numbers, "
                "e.g. [[-1,0,1],[-2,0,2],[-1,0,1]]"
            ) from None
        return _as_kernel_array(value, source)
    rows = []
    for line in stripped.replace(";", "\n").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cells = line.replace(",", " ").split()
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            raise InvalidArgument(
                f"kernel {source} must hold numbers separated by commas or spaces, one row per "
                f"line (or ';'), got the row {line!r}"
            ) from None
        check_kernel_side(max(len(rows), len(rows[-1])), "kernel side")
    if not rows:
        raise InvalidArgument(f"kernel {source} holds no numbers")
    if len({len(row) for row in rows}) != 1:
        lengths = [len(row) for row in rows]
        raise InvalidArgument(f"kernel {source} has rows of different lengths {lengths}")
    return _as_kernel_array(rows, source)


def _as_kernel_array(value: object, source: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is None or array.dtype == object:
        raise InvalidArgument(f"kernel {source} must be a rectangular 2-D array of numbers")
    array = as_float_array(array, "kernel", ndims=(2,)).astype(np.float64, copy=False)
    check_kernel_side(max(array.shape), "kernel side")
    if not np.all(np.isfinite(array)):
        raise InvalidArgument(f"kernel {source} must hold finite numbers")
    return array


def parse_kernel(spec: object) -> np.ndarray:
    """Turn a kernel given in any accepted form into a 2-D float64 array.

    Accepted forms:

    - an array or nested list of numbers (2-D);
    - a name with optional parameters: ``"sobel-x"``, ``"gaussian:sigma=2"``,
      ``"gaussian:sigma=1.5,radius=4"``, ``"box:size=5"`` (see :func:`make_kernel`);
    - text holding a nested list, ``"[[-1,0,1],[-2,0,2],[-1,0,1]]"``, or CSV-like rows,
      ``"1,2,1; 2,4,2; 1,2,1"`` (rows separated by newlines or ';');
    - the path of a ``.npy`` file (read without pickle) or of a ``.csv``/``.txt`` file of rows,
      at most :data:`MAX_KERNEL_FILE_BYTES` long.

    A side longer than :data:`cnnkit.filters.MAX_KERNEL_SIDE` is refused with
    :class:`cnnkit.errors.TooLarge`.

    Parameters
    ----------
    spec : array_like, str or os.PathLike
        The kernel.

    Returns
    -------
    numpy.ndarray
        The kernel as a finite, non-empty 2-D float64 array.

    Examples
    --------
    >>> parse_kernel("[[1, 2], [3, 4]]").tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> parse_kernel("1 2 1; 2 4 2; 1 2 1").shape
    (3, 3)
    >>> parse_kernel("gaussian:sigma=1,radius=2").shape
    (5, 5)
    """
    if isinstance(spec, os.PathLike) or (
        isinstance(spec, str) and spec.lower().endswith((".npy", ".csv", ".txt"))
    ):
        return _kernel_from_file(os.fspath(spec))
    if isinstance(spec, str):
        stripped = spec.strip()
        if stripped[:1].isalpha():
            return _named_from_text(stripped)
        return _rows_from_text(stripped, f"text {spec!r}")
    if isinstance(spec, bytes):
        raise InvalidType(f"kernel must be an array, a list, a name or a path, got bytes {spec!r}")
    return _as_kernel_array(spec, "array")


def _kernel_from_file(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise NotFound(f"kernel file {path!r} does not exist")
    size = os.path.getsize(path)
    if size > MAX_KERNEL_FILE_BYTES:
        raise TooLarge(
            f"kernel file {path!r} has {size:,} bytes, more than the {MAX_KERNEL_FILE_BYTES:,} "
            f"bytes a kernel of at most {MAX_KERNEL_SIDE} x {MAX_KERNEL_SIDE} needs"
        )
    if path.lower().endswith(".npy"):
        try:
            value = np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, EOFError) as exc:
            raise InvalidArgument(
                f"kernel file {path!r} is not a readable .npy array ({exc})"
            ) from None
        if not isinstance(value, np.ndarray):
            raise InvalidArgument(
                f"kernel file {path!r} must hold one array (.npy), not an archive"
            )
        if value.ndim == 2:
            check_kernel_side(max(value.shape), "kernel side")
        return _as_kernel_array(np.array(value), f"file {path!r}")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_KERNEL_FILE_BYTES + 1)
    except UnicodeDecodeError:
        raise InvalidArgument(f"kernel file {path!r} is not a text file of numbers") from None
    return _rows_from_text(text, f"file {path!r}")
