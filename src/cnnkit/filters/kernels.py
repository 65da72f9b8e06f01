"""Named image kernels, built in memory.

Every named kernel is built from integer-valued (or exactly normalised) 1-D parts where it is
separable, so that :mod:`cnnkit.filters.apply` can run it as two 1-D passes. Kernels are plain
float64 NumPy arrays indexed ``[row, column]``; applied as a *correlation* (the default of
:func:`cnnkit.filters.filter_image`, OpenCV's ``filter2D`` and ``scipy.ndimage.correlate``) the
kernel is laid over the image as drawn. A true convolution flips it first, which negates the
antisymmetric derivative kernels (Sobel, Scharr, Prewitt).

Sizes are checked before anything is allocated: a kernel side may be at most
:data:`MAX_KERNEL_SIDE` and a Gaussian radius at most :data:`MAX_GAUSSIAN_RADIUS`. Kernels
given as text or files are read by :mod:`cnnkit.filters.kernel_text`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument, InvalidType, TooLarge

__all__ = [
    "KERNEL_NAMES",
    "MAX_GAUSSIAN_RADIUS",
    "MAX_KERNEL_SIDE",
    "binomial_kernel",
    "box_kernel",
    "check_kernel_side",
    "emboss_kernel",
    "gaussian_kernel",
    "gaussian_kernel1d",
    "identity_kernel",
    "kernel_defaults",
    "kernel_parameters",
    "laplacian_kernel",
    "make_kernel",
    "prewitt_kernel",
    "scharr_kernel",
    "sharpen_kernel",
    "sobel_kernel",
    "sobel_kernels1d",
]

#: The derivative axis of a gradient kernel: 0 differentiates down the rows (finds horizontal
#: edges, "y"), 1 across the columns (finds vertical edges, "x").
AXES = (0, 1)

#: Largest Gaussian radius (sigma 256 at the default truncate 4): wider blurs are better done on
#: a downscaled image, and the radius bounds the kernel's memory before it is built.
MAX_GAUSSIAN_RADIUS = 1024

#: Largest side of a 2-D kernel built here (a 2049 x 2049 float64 kernel takes 34 MB).
MAX_KERNEL_SIDE = 2 * MAX_GAUSSIAN_RADIUS + 1


def check_kernel_side(side: int, name: str) -> int:
    """Refuse a kernel side above :data:`MAX_KERNEL_SIDE` before anything is allocated."""
    if side > MAX_KERNEL_SIDE:
        megabytes = side * side * 8 / 1e6
        raise TooLarge(
            f"{name}={side} gives a {side} x {side} kernel ({megabytes:,.0f} MB as float64), "
            f"larger than the largest kernel side {MAX_KERNEL_SIDE}"
        )
    return side


def _check_axis(axis: object) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis not in AXES:
        raise InvalidArgument(
            "axis must be 0 (derivative down the rows: horizontal edges) or 1 (derivative "
            f"across the columns: vertical edges), got {axis!r}"
        )
    return int(axis)


def _check_positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{name} must be a positive finite number, got {value!r}")
    return value


def _check_odd_size(size: object, name: str = "size", *, minimum: int = 1) -> int:
    size = check_int(size, name, minimum=minimum)
    if size % 2 == 0:
        raise InvalidArgument(f"{name} must be odd, got {size}")
    return size


# --- Gradient kernels: smoothing across the derivative, central difference along it ---------


def _binomial1d(size: int) -> np.ndarray:
    """Row ``size - 1`` of Pascal's triangle: [1], [1, 1], [1, 2, 1], [1, 3, 3, 1], ..."""
    coefficients = np.array([1.0])
    for _ in range(size - 1):
        coefficients = np.convolve(coefficients, [1.0, 1.0])
    return coefficients


def sobel_kernels1d(size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D smoothing and derivative parts of the Sobel kernel of ``size``.

    Built as OpenCV's ``getDerivKernels`` builds them: the smoothing part is the binomial row
    of length ``size`` and the derivative part is the binomial row of length ``size - 2``
    convolved with the central difference ``[-1, 0, 1]``.

    Parameters
    ----------
    size : int
        Odd kernel size from 3 to 31.

    Returns
    -------
    smoothing, derivative : numpy.ndarray
        Two float64 arrays of length ``size``.

    Examples
    --------
    >>> smoothing, derivative = sobel_kernels1d(5)
    >>> smoothing.tolist(), derivative.tolist()
    ([1.0, 4.0, 6.0, 4.0, 1.0], [-1.0, -2.0, 0.0, 2.0, 1.0])
    """
    size = _check_odd_size(size, minimum=3)
    if size > 31:
        raise InvalidArgument(f"size must be an odd number from 3 to 31, got {size}")
    derivative = np.convolve(_binomial1d(size - 2), [-1.0, 0.0, 1.0])
    return _binomial1d(size), derivative


def _gradient_kernel(smoothing: np.ndarray, derivative: np.ndarray, axis: int) -> np.ndarray:
    if axis == 1:
        return np.outer(smoothing, derivative)
    return np.outer(derivative, smoothing)


def sobel_kernel(axis: int, size: int = 3) -> np.ndarray:
    """The Sobel kernel that differentiates along ``axis``.

    ::

        axis=1 ("sobel-x", vertical edges)    axis=0 ("sobel-y", horizontal edges)
            -1  0  1                               -1 -2 -1
            -2  0  2                                0  0  0
            -1  0  1                                1  2  1

    Applied as a correlation, intensity rising along ``axis`` gives a positive response (+4 for
    a unit step with ``size=3``); a true convolution negates it. Sizes 5 and 7 (up to 31) are
    built as in OpenCV (see :func:`sobel_kernels1d`).

    Parameters
    ----------
    axis : {0, 1}
        0 differentiates down the rows, 1 across the columns.
    size : int
        Odd size from 3 to 31.

    Returns
    -------
    numpy.ndarray
        A ``(size, size)`` float64 kernel.

    Examples
    --------
    >>> sobel_kernel(1).astype(int).tolist()
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    >>> sobel_kernel(0, size=5).shape
    (5, 5)
    """
    axis = _check_axis(axis)
    smoothing, derivative = sobel_kernels1d(size)
    return _gradient_kernel(smoothing, derivative, axis)


#: Smoothing parts of the other 3×3 gradient kernels (the derivative part is [-1, 0, 1]).
_SCHARR_SMOOTHING = np.array([3.0, 10.0, 3.0])
_PREWITT_SMOOTHING = np.array([1.0, 1.0, 1.0])
_CENTRAL_DIFFERENCE = np.array([-1.0, 0.0, 1.0])


def scharr_kernel(axis: int) -> np.ndarray:
    """The 3×3 Scharr kernel that differentiates along ``axis`` (OpenCV's ``Scharr``).

    ::

        axis=1               axis=0
            -3   0   3           -3 -10  -3
           -10   0  10            0   0   0
            -3   0   3            3  10   3

    Scharr's weights make the derivative closer to rotation invariant than Sobel's.

    Parameters
    ----------
    axis : {0, 1}
        0 differentiates down the rows, 1 across the columns.

    Returns
    -------
    numpy.ndarray
        A 3×3 float64 kernel.

    Examples
    --------
    >>> scharr_kernel(1)[1].tolist()
    [-10.0, 0.0, 10.0]
    """
    return _gradient_kernel(_SCHARR_SMOOTHING, _CENTRAL_DIFFERENCE, _check_axis(axis))


def prewitt_kernel(axis: int) -> np.ndarray:
    """The 3×3 Prewitt kernel that differentiates along ``axis`` (``scipy.ndimage.prewitt``).

    ::

        axis=1           axis=0
            -1  0  1         -1 -1 -1
            -1  0  1          0  0  0
            -1  0  1          1  1  1

    Parameters
    ----------
    axis : {0, 1}
        0 differentiates down the rows, 1 across the columns.

    Returns
    -------
    numpy.ndarray
        A 3×3 float64 kernel.

    Examples
    --------
    >>> prewitt_kernel(0)[0].tolist()
    [-1.0, -1.0, -1.0]
    """
    return _gradient_kernel(_PREWITT_SMOOTHING, _CENTRAL_DIFFERENCE, _check_axis(axis))


# --- Smoothing kernels -----------------------------------------------------------------------


def _gaussian_radius(
    sigma: float, truncate: object, radius: object, size: object
) -> int:
    if radius is not None and size is not None:
        raise InvalidArgument(
            f"give either radius or size, not both (got radius={radius!r}, size={size!r})"
        )
    if radius is not None:
        radius = check_int(radius, "radius", minimum=0)
        how = f"radius={radius}"
    elif size is not None:
        radius = (_check_odd_size(size) - 1) // 2
        how = f"size={size}"
    else:
        truncate = _check_positive_float(truncate, "truncate")
        reach = truncate * sigma + 0.5
        radius = int(min(reach, MAX_GAUSSIAN_RADIUS + 1))
        how = f"sigma={sigma:g} with truncate={truncate:g}"
    if radius > MAX_GAUSSIAN_RADIUS:
        raise TooLarge(
            f"gaussian {how} needs a radius above the largest allowed, {MAX_GAUSSIAN_RADIUS} "
            f"(sigma {MAX_GAUSSIAN_RADIUS / 4:g} at truncate 4); blur a downscaled image instead"
        )
    return radius


def gaussian_kernel1d(
    sigma: float,
    *,
    truncate: float = 4.0,
    radius: int | None = None,
    size: int | None = None,
) -> np.ndarray:
    """Sampled, normalised 1-D Gaussian: ``exp(-x²/(2σ²))`` at ``x = -r..r``, summing to 1.

    The radius is ``int(truncate*sigma + 0.5)`` (as ``scipy.ndimage.gaussian_filter``) unless
    ``radius`` or an odd ``size = 2*radius + 1`` is given; it may be at most
    :data:`MAX_GAUSSIAN_RADIUS` (:class:`cnnkit.errors.TooLarge` otherwise). With an explicit
    sigma and size the weights are those of OpenCV's ``getGaussianKernel``.

    For ``sigma=1, radius=1`` the weights are (rounded)::

        0.274  0.452  0.274

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, > 0.
    truncate : float
        Radius in units of sigma when neither ``radius`` nor ``size`` is given.
    radius : int, optional
        Explicit radius, >= 0.
    size : int, optional
        Explicit odd length.

    Returns
    -------
    numpy.ndarray
        A float64 array of length ``2*radius + 1``.

    Examples
    --------
    >>> gaussian_kernel1d(1.0).size
    9
    >>> weights = gaussian_kernel1d(1.0, radius=1)
    >>> float(weights.sum()), bool(weights[1] > weights[0])
    (1.0, True)
    """
    sigma = _check_positive_float(sigma, "sigma")
    radius = _gaussian_radius(sigma, truncate, radius, size)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_kernel(
    sigma: float,
    *,
    truncate: float = 4.0,
    radius: int | None = None,
    size: int | None = None,
) -> np.ndarray:
    """2-D Gaussian kernel: the outer product of :func:`gaussian_kernel1d` with itself.

    For ``sigma=1, radius=1`` it is (rounded)::

        0.075  0.124  0.075
        0.124  0.204  0.124
        0.075  0.124  0.075

    Weights are largest in the centre, fall off with distance and sum to 1, so a blur keeps
    the mean brightness. It is separable, and :func:`cnnkit.filters.gaussian_blur` applies it
    as two 1-D passes.

    Parameters
    ----------
    sigma, truncate, radius, size
        As in :func:`gaussian_kernel1d`.

    Returns
    -------
    numpy.ndarray
        A ``(2*radius + 1, 2*radius + 1)`` float64 kernel.

    Examples
    --------
    >>> kernel = gaussian_kernel(1.0, radius=1)
    >>> kernel.shape, round(float(kernel.sum()), 12), round(float(kernel[1, 1]), 3)
    ((3, 3), 1.0, 0.204)
    """
    weights = gaussian_kernel1d(sigma, truncate=truncate, radius=radius, size=size)
    return np.outer(weights, weights)


def box_kernel(size: int | tuple[int, int] = 3) -> np.ndarray:
    """Box (mean) kernel: every weight ``1 / (rows*columns)``.

    For ``size=3``::

        1/9  1/9  1/9
        1/9  1/9  1/9
        1/9  1/9  1/9

    Parameters
    ----------
    size : int or (int, int)
        Side length, or ``(rows, columns)``.

    Returns
    -------
    numpy.ndarray
        The float64 kernel.

    Examples
    --------
    >>> box_kernel(2).tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    if isinstance(size, tuple | list):
        if len(size) != 2:
            raise InvalidArgument(f"size must be an integer or (rows, columns), got {size!r}")
        rows, columns = (check_int(s, "size", minimum=1) for s in size)
    else:
        rows = columns = check_int(size, "size", minimum=1)
    check_kernel_side(max(rows, columns), "size")
    return np.full((rows, columns), 1.0 / (rows * columns))


def binomial_kernel(size: int = 3) -> np.ndarray:
    """Binomial blur: the outer product of a normalised row of Pascal's triangle.

    The 3×3 one is the smallest Gaussian-like blur (OpenCV's ``GaussianBlur`` with size 3 and
    sigma 0 uses it)::

        1/16 *  1  2  1
                2  4  2
                1  2  1

    Parameters
    ----------
    size : int
        Odd side length (3 gives the kernel above, 5 the row 1 4 6 4 1 over 16).

    Returns
    -------
    numpy.ndarray
        A ``(size, size)`` float64 kernel summing to 1.

    Examples
    --------
    >>> (binomial_kernel() * 16).astype(int).tolist()
    [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    """
    weights = _binomial1d(check_kernel_side(_check_odd_size(size), "size"))
    weights /= weights.sum()
    return np.outer(weights, weights)


# --- Other 3×3 kernels -----------------------------------------------------------------------


def laplacian_kernel(neighbours: int = 4) -> np.ndarray:
    """Discrete Laplacian (sum of second differences) with 4 or 8 neighbours.

    ::

        neighbours=4      neighbours=8
           0  1  0           1  1  1
           1 -4  1           1 -8  1
           0  1  0           1  1  1

    The 4-neighbour form is ``scipy.ndimage.laplace`` and OpenCV's ``Laplacian`` with size 1.

    Parameters
    ----------
    neighbours : {4, 8}

    Returns
    -------
    numpy.ndarray
        A 3×3 float64 kernel summing to 0.

    Examples
    --------
    >>> laplacian_kernel()[1].tolist()
    [1.0, -4.0, 1.0]
    """
    if isinstance(neighbours, bool) or neighbours not in (4, 8):
        raise InvalidArgument(f"neighbours must be 4 or 8, got {neighbours!r}")
    if neighbours == 4:
        return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    kernel = np.ones((3, 3))
    kernel[1, 1] = -8.0
    return kernel


def identity_kernel(size: int = 3) -> np.ndarray:
    """A ``size``×``size`` kernel with 1 in the centre and 0 elsewhere (leaves images unchanged).

    ::

        0  0  0
        0  1  0
        0  0  0

    Parameters
    ----------
    size : int
        Odd side length.

    Returns
    -------
    numpy.ndarray
        A ``(size, size)`` float64 kernel.

    Examples
    --------
    >>> identity_kernel(1).tolist()
    [[1.0]]
    """
    size = check_kernel_side(_check_odd_size(size), "size")
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


def sharpen_kernel(amount: float = 1.0) -> np.ndarray:
    """Sharpening kernel: identity minus ``amount`` times the 4-neighbour Laplacian.

    With ``amount=1`` it is the classic::

         0 -1  0
        -1  5 -1
         0 -1  0

    Its weights sum to 1, so flat regions keep their value while edges are exaggerated.

    Parameters
    ----------
    amount : float
        Strength, > 0.

    Returns
    -------
    numpy.ndarray
        A 3×3 float64 kernel.

    Examples
    --------
    >>> sharpen_kernel(0.5)[1].tolist()
    [-0.5, 3.0, -0.5]
    """
    amount = _check_positive_float(amount, "amount")
    return identity_kernel(3) - amount * laplacian_kernel(4)


def emboss_kernel() -> np.ndarray:
    """Emboss kernel: a diagonal derivative plus the image, giving a raised, lit-from-above look.

    ::

        -2 -1  0
        -1  1  1
         0  1  2

    Returns
    -------
    numpy.ndarray
        A 3×3 float64 kernel summing to 1.

    Examples
    --------
    >>> float(emboss_kernel().sum())
    1.0
    """
    return np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])


# --- Kernels by name -------------------------------------------------------------------------

#: name -> (constructor, the keyword parameters it takes).
_NAMED: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "sobel-x": (lambda size=3: sobel_kernel(1, size), ("size",)),
    "sobel-y": (lambda size=3: sobel_kernel(0, size), ("size",)),
    "scharr-x": (lambda: scharr_kernel(1), ()),
    "scharr-y": (lambda: scharr_kernel(0), ()),
    "prewitt-x": (lambda: prewitt_kernel(1), ()),
    "prewitt-y": (lambda: prewitt_kernel(0), ()),
    "laplacian": (laplacian_kernel, ("neighbours",)),
    "gaussian": (
        lambda sigma=1.0, **options: gaussian_kernel(sigma, **options),
        ("sigma", "truncate", "radius", "size"),
    ),
    "box": (box_kernel, ("size",)),
    "binomial": (binomial_kernel, ("size",)),
    "sharpen": (sharpen_kernel, ("amount",)),
    "emboss": (emboss_kernel, ()),
    "identity": (identity_kernel, ("size",)),
}

#: Names accepted by :func:`make_kernel` and by ``--kernel`` on the command line.
KERNEL_NAMES = tuple(_NAMED)


def kernel_parameters(name: str) -> tuple[str, ...]:
    """The keyword parameters that the named kernel takes (checks the name)."""
    return _NAMED[check_choice(name, "kernel name", KERNEL_NAMES)][1]


def kernel_defaults(name: str) -> dict[str, object]:
    """The named kernel's parameters that have a default value, with that value.

    >>> kernel_defaults("gaussian")
    {'sigma': 1.0}
    >>> kernel_defaults("laplacian")
    {'neighbours': 4}
    """
    allowed = kernel_parameters(name)
    parameters = inspect.signature(_NAMED[name][0]).parameters.values()
    return {
        parameter.name: parameter.default
        for parameter in parameters
        if parameter.name in allowed and parameter.default not in (inspect.Parameter.empty, None)
    }


def make_kernel(name: str, **params: object) -> np.ndarray:
    """Build a named kernel: ``make_kernel("gaussian", sigma=2)``, ``make_kernel("sobel-x")``.

    Parameters
    ----------
    name : str
        One of :data:`KERNEL_NAMES`: sobel-x, sobel-y (``size``), scharr-x, scharr-y,
        prewitt-x, prewitt-y, laplacian (``neighbours``), gaussian (``sigma``, ``truncate``,
        ``radius``, ``size``), box (``size``), binomial (``size``), sharpen (``amount``), emboss,
        identity (``size``). "x" differentiates across the columns (finds vertical edges), "y"
        down the rows.
    **params
        The parameters listed for that kernel.

    Returns
    -------
    numpy.ndarray
        The float64 kernel.

    Examples
    --------
    >>> make_kernel("box", size=3).shape
    (3, 3)
    """
    allowed = kernel_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise InvalidArgument(
            f"kernel {name!r} takes no parameter {unknown[0]!r}; its parameters: {accepted}"
        )
    return _NAMED[name][0](**params)
