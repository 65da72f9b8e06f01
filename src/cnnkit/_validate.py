"""Argument checks shared by every public function.

Each helper raises ``TypeError`` or ``ValueError`` whose message names the argument, the value
received and what is allowed, so that a caller never sees a traceback from deep inside numpy.
"""

from __future__ import annotations

import ipaddress
import numbers
from collections.abc import Sequence

import numpy as np

from cnnkit.errors import InvalidArgument, InvalidType

__all__ = [
    "as_float_array",
    "check_choice",
    "check_int",
    "int_tuple",
    "is_loopback",
]


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int``, refusing bools, floats and values below ``minimum``."""
    if type(value) is int and (minimum is None or value >= minimum):
        return value  # the common case, checked cheaply
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InvalidArgument(f"{name} must be {allowed}, got {value}")
    return value


def int_tuple(value: object, name: str, length: int, *, minimum: int | None = None) -> tuple:
    """Normalise an int or a sequence of ``length`` ints to a tuple (PyTorch's int-or-pair)."""
    if isinstance(value, (tuple, list)) or (
        isinstance(value, Sequence) and not isinstance(value, str)
    ):
        if len(value) != length:
            raise InvalidArgument(
                f"{name} must be an integer or a sequence of {length} integers, got {value!r}"
            )
        return tuple(check_int(v, name, minimum=minimum) for v in value)
    return (check_int(value, name, minimum=minimum),) * length


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise name the allowed ones."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise InvalidArgument(f"{name} must be one of {allowed}, got {value!r}")
    return value


def as_float_array(value: object, name: str, *, ndims: Sequence[int]) -> np.ndarray:
    """Convert to a float array following cnnkit's dtype rules.

    float32 and float64 stay as they are; integers and booleans become float64 (and so do
    float16 and longdouble, which BLAS does not serve); complex, object and string data are
    refused. The number of dimensions must be in ``ndims`` and the array must not be empty.
    """
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind in "biu":
        array = array.astype(np.float64)
    elif kind == "f":
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float64)
    else:
        raise InvalidType(
            f"{name} must hold real numbers (bool, integer or float), got dtype {array.dtype}"
        )
    if array.ndim not in ndims:
        allowed = " or ".join(str(n) for n in ndims)
        raise InvalidArgument(
            f"{name} must have {allowed} dimensions, got {array.ndim} (shape {array.shape})"
        )
    if array.size == 0:
        raise InvalidArgument(f"{name} must not be empty, got shape {array.shape}")
    return array


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (``localhost``, 127.0.0.0/8, ``::1``).

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
