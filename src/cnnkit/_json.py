"""Reading JSON that came from a file or a request: bounded first, then checked against types.

Python's ``json`` module parses whatever it is given: a text nested 100,000 brackets deep ends
in a ``RecursionError``, a 5,000-digit integer in a ``ValueError`` from ``int``, and a value of
the wrong type (a layer ``"type"`` that is a list) surfaces later as a ``TypeError`` far from the
file. Every JSON text cnnkit reads from outside (spec files, checkpoint metadata, cache
manifests, split files, HTTP bodies) goes through :func:`parse`, which refuses, before parsing,
a text longer, deeper or holding longer integers than allowed, as
:class:`~cnnkit.errors.BadFile` naming where the text came from; the reader then checks the
parsed value's types, naming the entry (:func:`type_name` says what it got).

>>> parse('{"layers": [1, 2]}', "spec")
{'layers': [1, 2]}
>>> parse("[" * 100 + "]" * 100, "spec")
Traceback (most recent call last):
cnnkit.errors.BadFile: spec is nested 100 levels deep; at most 64 are allowed
"""

from __future__ import annotations

import json
import os
import re

from cnnkit._files import read_regular
from cnnkit.errors import BadFile

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "parse",
    "read_json",
    "type_name",
]

#: Nesting allowed; cnnkit's own files go 5 levels deep.
MAX_DEPTH = 64
#: Digits allowed in one integer (a 128-bit generator state, the longest cnnkit stores, has 39).
MAX_INTEGER_DIGITS = 64

# Strings are removed before the brackets are counted ("[" inside a string nests nothing).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OUTSIDE_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# An integer: a run of digits not part of a fraction or an exponent.
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{%d,}(?![\d.eE])" % (MAX_INTEGER_DIGITS + 1))


def parse(
    text: str | bytes,
    where: str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
) -> object:
    """The JSON value of ``text``, refused as :class:`~cnnkit.errors.BadFile` when it is larger
    than ``max_bytes``, nested deeper than ``max_depth``, holds an integer of more than
    :data:`MAX_INTEGER_DIGITS` digits, is not UTF-8 or is not JSON. ``where`` names the source
    in the message (``"arch file spec.json"``, ``"the request body"``)."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    if max_bytes is not None and len(raw) > max_bytes:
        raise BadFile(f"{where} is larger than {max_bytes:,} bytes")
    skeleton = _STRING.sub(b'""', raw)
    depth = _depth(skeleton.translate(None, _OUTSIDE_BRACKETS))
    if depth > max_depth:
        raise BadFile(f"{where} is nested {depth} levels deep; at most {max_depth} are allowed")
    if _LONG_INTEGER.search(skeleton):
        raise BadFile(f"{where} holds an integer of more than {MAX_INTEGER_DIGITS} digits")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadFile(f"{where} is not valid JSON: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadFile(f"{where} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # the checks above leave none; stay one line
        raise BadFile(f"{where} is not valid JSON ({type(exc).__name__})") from None


def _depth(brackets: bytes) -> int:
    """The deepest nesting of a string of brackets (the running count of opened ones)."""
    import numpy as np

    codes = np.frombuffer(brackets, dtype=np.uint8)
    if not codes.size:
        return 0
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def read_json(
    path: str | os.PathLike, where: str, *, max_bytes: int, max_depth: int = MAX_DEPTH
) -> object:
    """The JSON value of the regular file ``path`` (see :func:`parse`); ``where`` names it
    (``"arch file"``): a missing file, a folder, a FIFO or a device is refused in one line."""
    raw = read_regular(path, where, max_bytes=max_bytes)
    return parse(raw, f"{where} {os.fspath(path)}", max_depth=max_depth)


def type_name(value: object) -> str:
    """The JSON name of ``value``'s type (``object``, ``list``, ``string``, ...)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             type(None): "null", int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)
