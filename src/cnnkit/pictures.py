"""Arrays as pictures, for the views of a trained model (explain, report, serve).

Network images are uint8 ``(C, H, W)``; a picture is ``(H, W)`` or ``(H, W, 3)``
(:func:`as_picture`). Maps are tiled into one mosaic (:func:`tile_maps`), coloured through a
matplotlib colour map without drawing a figure (:func:`coloured`), and encoded as PNG data URIs
(:func:`png_data_uri`) that an HTML page embeds; data that a page's script reads is written
by :func:`script_json`, safe inside a ``<script>`` element.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math

import numpy as np

from cnnkit.errors import InvalidArgument
from cnnkit.plots import as_picture

__all__ = ["as_picture", "attribution_overlay", "colour_table", "coloured", "flat_map",
           "png_data_uri", "script_json", "tile_maps"]


def tile_maps(maps: np.ndarray, *, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Maps ``(C, H, W)`` laid out in a grid with ``gap`` pixels between them (NaN there).

    >>> tile_maps(np.ones((3, 2, 2)), columns=2).shape
    (5, 5)
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise InvalidArgument(f"maps must be (C, H, W), got shape {maps.shape}")
    count, height, width = maps.shape
    columns = min(count, columns or 16)
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan,
                   np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top:top + height, left:left + width] = maps[index]
    return grid


@functools.lru_cache(maxsize=8)
def colour_table(name: str) -> np.ndarray:
    """A matplotlib colour map as a ``(256, 3)`` uint8 lookup table."""
    import matplotlib

    return (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(
        np.uint8)


def coloured(values: np.ndarray, table: np.ndarray | str, low: float,
             high: float) -> np.ndarray:
    """Values mapped through a colour table (or a colour map's name) on ``[low, high]``, as a
    uint8 ``(H, W, 3)`` picture; NaN (tile gaps) white.

    >>> coloured(np.array([[0.0, np.nan]]), "gray", 0.0, 1.0).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    """
    table = colour_table(table) if isinstance(table, str) else table
    scale = (values - low) / (high - low) if high > low else np.zeros_like(values)
    indices = np.clip(np.nan_to_num(scale, nan=0.0) * 255, 0, 255).round().astype(np.intp)
    picture = table[indices]
    picture[np.isnan(values)] = 255
    return picture


def attribution_overlay(values: np.ndarray, gray: np.ndarray, method: str) -> np.ndarray:
    """An attribution map coloured over a gray image ``(H, W)``: diverging red-blue around 0
    for integrated gradients (signed), ``inferno`` from 0 for the others."""
    if method == "integrated-gradients":
        extent = float(np.abs(values).max()) or 1.0
        colour = coloured(values, "RdBu_r", -extent, extent)
    else:
        colour = coloured(values, "inferno", 0.0, float(values.max()) or 1.0)
    return (0.35 * gray[..., None] + 0.65 * colour).round().astype(np.uint8)


def png_data_uri(picture: np.ndarray) -> str:
    """A uint8 ``(H, W)`` or ``(H, W, 3)`` array as a PNG data URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def flat_map(values: np.ndarray) -> str | None:
    """``'flat map (range a to b)'`` when a map is constant or nearly so (its range under
    1e-6 of its largest magnitude, or zero), else None: such a map has nothing to show, and
    a colour scale would paint it as one strong colour."""
    values = np.asarray(values, np.float64)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-6 * max(abs(low), abs(high)) or high == low:
        return f"flat map (range {low:.3g} to {high:.3g})"
    return None


#: What :func:`script_json` writes as JSON escapes: the characters that can end a script
#: element or start a comment inside it (``</script``, ``<!--``), and ``&``.
_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(value: object) -> str:
    r"""``value`` as compact JSON that can sit inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as JSON escapes, which ``JSON.parse`` reads back as
    they were, so that no text in the data (a class name holding ``</script>`` or
    ``<!--<script>``) can end the element early, or make the browser skip its real end tag
    (HTML's "escaped script" states). Characters beyond ASCII are escaped as well, U+2028 and
    U+2029 included. The one place where cnnkit writes JSON into a page.

    >>> print(script_json({"class": "<!--<script>", "n": 1}))
    {"class":"\u003c!--\u003cscript\u003e","n":1}
    """
    return json.dumps(value, separators=(",", ":")).translate(_SCRIPT_ESCAPES)
