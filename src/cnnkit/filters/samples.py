"""Built-in test images, generated on the fly (no files needed).

Every sample is a float64 grayscale array with values in [0, 1] (0 black, 1 white), indexed
``[row, column]``. ``size`` is a side length or ``(rows, columns)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnkit._validate import check_choice, check_int, int_tuple
from cnnkit.errors import InvalidArgument

__all__ = [
    "SAMPLE_NAMES",
    "checkerboard",
    "concentric_circles",
    "grid_lines",
    "noisy_gradient",
    "sample_image",
    "step_edge",
]


def _shape(size: object) -> tuple[int, int]:
    return int_tuple(size, "size", 2, minimum=1)


def grid_lines(
    size: int | tuple[int, int] = 128, *, spacing: int = 16, thickness: int = 2
) -> np.ndarray:
    """Black horizontal and vertical lines on white, the tutorial's test picture.

    A line of ``thickness`` pixels starts at row and column ``k*spacing + spacing//2`` for
    every ``k``, so no line touches the border.

    Parameters
    ----------
    size : int or (int, int)
        Side length or ``(rows, columns)``.
    spacing : int
        Distance between the starts of neighbouring lines.
    thickness : int
        Line width in pixels, smaller than ``spacing``.

    Returns
    -------
    numpy.ndarray
        float64 image: 1 (white) background, 0 (black) lines.

    Examples
    --------
    >>> grid = grid_lines(8, spacing=4, thickness=1)
    >>> grid[2].tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    >>> grid[0].tolist()
    [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    """
    rows, columns = _shape(size)
    spacing = check_int(spacing, "spacing", minimum=1)
    thickness = check_int(thickness, "thickness", minimum=1)
    if thickness >= spacing:
        raise InvalidArgument(
            f"thickness must be smaller than spacing, got thickness={thickness}, "
            f"spacing={spacing}"
        )

    def on_line(length: int) -> np.ndarray:
        return (np.arange(length) - spacing // 2) % spacing < thickness

    image = np.ones((rows, columns))
    image[on_line(rows), :] = 0.0
    image[:, on_line(columns)] = 0.0
    return image


def checkerboard(size: int | tuple[int, int] = 128, *, square: int = 16) -> np.ndarray:
    """Alternating black and white squares of ``square`` pixels, white in the top-left corner.

    Parameters
    ----------
    size : int or (int, int)
        Side length or ``(rows, columns)``.
    square : int
        Side of one square in pixels.

    Returns
    -------
    numpy.ndarray
        float64 image of 0s and 1s.

    Examples
    --------
    >>> checkerboard(4, square=2).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    rows, columns = _shape(size)
    square = check_int(square, "square", minimum=1)
    row_index = np.arange(rows)[:, None] // square
    column_index = np.arange(columns)[None, :] // square
    return ((row_index + column_index) % 2 == 0).astype(np.float64)


def step_edge(size: int | tuple[int, int] = 128, *, axis: int = 1) -> np.ndarray:
    """Black first half, white second half: a single edge across ``axis`` (1: a vertical edge).

    The first bright row or column is ``length // 2``.

    Parameters
    ----------
    size : int or (int, int)
        Side length or ``(rows, columns)``.
    axis : {0, 1}
        1 (default): dark left half, bright right half; 0: dark top, bright bottom.

    Returns
    -------
    numpy.ndarray
        float64 image of 0s and 1s.

    Examples
    --------
    >>> step_edge(4).astype(int).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    rows, columns = _shape(size)
    if isinstance(axis, bool) or axis not in (0, 1):
        raise InvalidArgument(
            f"axis must be 0 (a horizontal edge) or 1 (a vertical edge), got {axis!r}"
        )
    image = np.zeros((rows, columns))
    if axis == 1:
        image[:, columns // 2 :] = 1.0
    else:
        image[rows // 2 :, :] = 1.0
    return image


def concentric_circles(size: int | tuple[int, int] = 128, *, period: int = 16) -> np.ndarray:
    """Alternating white and black rings around the centre, each ``period // 2`` pixels wide.

    A pixel is white where ``floor(2 * r / period)`` is even, ``r`` being its distance from the
    image centre, so the centre disc is white. Edges point in every direction, which makes it
    a good test for edge orientation.

    Parameters
    ----------
    size : int or (int, int)
        Side length or ``(rows, columns)``.
    period : int
        Distance from one white ring to the next, >= 2.

    Returns
    -------
    numpy.ndarray
        float64 image of 0s and 1s.

    Examples
    --------
    >>> rings = concentric_circles(9, period=4)
    >>> rings[4].astype(int).tolist()
    [1, 0, 0, 1, 1, 1, 0, 0, 1]
    """
    rows, columns = _shape(size)
    period = check_int(period, "period", minimum=2)
    row_offset = np.arange(rows)[:, None] - (rows - 1) / 2
    column_offset = np.arange(columns)[None, :] - (columns - 1) / 2
    radius = np.hypot(row_offset, column_offset)
    return (np.floor(2 * radius / period) % 2 == 0).astype(np.float64)


def noisy_gradient(
    size: int | tuple[int, int] = 128, *, noise: float = 0.05, seed: int = 0
) -> np.ndarray:
    """A left-to-right ramp from 0 to 1 plus Gaussian noise of standard deviation ``noise``.

    Values are clipped to [0, 1]. The same ``seed`` always gives the same image; it shows what
    a blur removes (the noise) and keeps (the ramp).

    Parameters
    ----------
    size : int or (int, int)
        Side length or ``(rows, columns)``.
    noise : float
        Standard deviation of the noise, >= 0.
    seed : int
        Seed of the random generator.

    Returns
    -------
    numpy.ndarray
        float64 image in [0, 1].

    Examples
    --------
    >>> ramp = noisy_gradient((2, 5), noise=0.0)
    >>> ramp[0].tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    rows, columns = _shape(size)
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
        raise InvalidArgument(f"noise must be a non-negative number, got {noise!r}")
    seed = check_int(seed, "seed", minimum=0)
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, columns), (rows, columns))
    rng = np.random.default_rng(seed)
    return np.clip(ramp + rng.normal(0.0, noise, size=(rows, columns)), 0.0, 1.0)


_SAMPLES: dict[str, Callable[..., np.ndarray]] = {
    "grid": grid_lines,
    "checkerboard": checkerboard,
    "step": step_edge,
    "circles": concentric_circles,
    "gradient": noisy_gradient,
}

#: Names accepted by :func:`sample_image` (and by the command line where a sample is allowed).
SAMPLE_NAMES = tuple(_SAMPLES)


def sample_image(name: str, size: int | tuple[int, int] = 128) -> np.ndarray:
    """A built-in sample by name, with its default settings.

    Parameters
    ----------
    name : {'grid', 'checkerboard', 'step', 'circles', 'gradient'}
    size : int or (int, int)
        Side length or ``(rows, columns)``.

    Returns
    -------
    numpy.ndarray
        float64 image with values in [0, 1].

    Examples
    --------
    >>> sample_image("grid").shape
    (128, 128)
    """
    check_choice(name, "sample name", SAMPLE_NAMES)
    return _SAMPLES[name](size)
