"""Applying kernels to grayscale and colour images.

Every function here goes through one workhorse, :func:`_filter`, which hands each channel to the
signal primitives :func:`cnnkit.ops.correlate2d` / :func:`cnnkit.ops.convolve2d`. How a kernel
is run is chosen automatically:

1. a kernel with one row or one column is one 1-D pass (``k`` taps per pixel);
2. a kernel of rank 1 (Gaussian, Sobel, box, binomial, or any user kernel that
   :func:`separable_factors` splits) is run as a column pass and a row pass, ``rows + columns``
   taps per pixel instead of ``rows * columns`` -- unless the primitives' cost model
   (:func:`cnnkit.ops._core.choose_method`, the one cost model) predicts that one FFT of the
   whole 2-D kernel is cheaper still;
3. any other kernel is one 2-D call; the primitive itself switches from direct tap accumulation
   to FFT for large kernels.

Channels are filtered one at a time, each padded once. Passes that take the primitive's direct
path run on tiles of rows (the primitives' one tiling, :func:`cnnkit.ops._parallel.row_tiles`),
both passes while the tile is in cache, in the primitives' thread pool for large images; passes
by band matrices or FFT run over the whole plane, and the primitive tiles them itself. Padding
per axis commutes with filtering along the other axis for every padding mode, so the two-pass
result equals the 2-D one up to rounding. Results are floating point (float32 in gives float32
out, everything else float64), have the input's height and width (with the default 'same'
padding; ``padding='full'``, ``'valid'`` or a number give other sizes) and are never clipped;
:func:`cnnkit.imageio.to_uint8` makes a displayable 8-bit picture from them.

``operation`` chooses correlation or convolution. scipy.ndimage calls its border argument
``mode``; cnnkit's is ``padding_mode``, and a ``mode=`` argument is refused with a message that
names both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from cnnkit._validate import as_float_array, check_choice
from cnnkit.errors import InvalidArgument, InvalidType
from cnnkit.filters.kernel_text import parse_kernel
from cnnkit.filters.kernels import (
    _CENTRAL_DIFFERENCE,
    _PREWITT_SMOOTHING,
    _SCHARR_SMOOTHING,
    _check_axis,
    box_kernel,
    gaussian_kernel1d,
    laplacian_kernel,
    sharpen_kernel,
    sobel_kernels1d,
)
from cnnkit.ops import PADDING_MODES, convolve2d, correlate2d, pad
from cnnkit.ops._core import banded_cost, choose_method, direct_cost, fft_cost
from cnnkit.ops._parallel import map_tiles, row_tiles
from cnnkit.ops.windows import check_pad_width
from cnnkit.shapes import output_shape, resolve_padding

__all__ = [
    "OPERATIONS",
    "box_blur",
    "edge_magnitude",
    "edge_orientation",
    "filter_image",
    "gaussian_blur",
    "laplacian",
    "prewitt",
    "scharr",
    "separable_factors",
    "sharpen",
    "sobel",
]

#: ``'correlate'`` lays the kernel over the image as written; ``'convolve'`` flips it first.
OPERATIONS = ("correlate", "convolve")

_PRIMITIVES = {"correlate": correlate2d, "convolve": convolve2d}

F = TypeVar("F", bound=Callable[..., np.ndarray])


def _refuses_mode(function: F) -> F:
    """Refuse ``mode=`` (scipy.ndimage's border argument) with a message naming cnnkit's."""

    @functools.wraps(function)
    def wrapper(*args: object, **kwargs: object) -> np.ndarray:
        if "mode" in kwargs:
            raise InvalidType(
                f"{function.__name__}() has no argument 'mode' (got mode={kwargs['mode']!r}): "
                "the border is padding_mode= (one of "
                f"{', '.join(PADDING_MODES)}; scipy.ndimage's 'reflect' is 'symmetric' here "
                "and its 'mirror' is 'reflect'), and correlation or convolution is "
                "operation='correlate' or 'convolve'"
            )
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- The workhorse ---------------------------------------------------------------------------


def _as_image(image: object) -> np.ndarray:
    """A 2-D grayscale or (height, width, channels) colour image as a float array."""
    array = as_float_array(image, "image", ndims=(2, 3))
    if array.ndim == 3 and not 1 <= array.shape[2] <= 4:
        raise InvalidArgument(
            "image must be (height, width) or (height, width, channels) with 1 to 4 channels, "
            f"got shape {array.shape}; a channels-first array needs np.moveaxis(image, 0, -1)"
        )
    return array


def _image_padding(
    padding: object, kernel_shape: tuple[int, int], operation: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(before, after)`` per axis, placed as the primitive places it: 'same' puts the odd
    element of an even kernel's padding before for 'convolve' and after for 'correlate'."""
    return resolve_padding(padding, kernel_shape, extra_before=operation == "convolve")


def _check_kernel_fits(
    image_shape: tuple[int, ...],
    kernel_shape: tuple[int, int],
    operation: str,
    padding_mode: str,
    padding: object = "same",
) -> tuple[int, int]:
    """Refuse a kernel whose border the padding mode cannot build from the image, or that does
    not fit the padded image, before the kernel is decomposed or anything image-sized is
    allocated; return the result's height and width."""
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    pads = _image_padding(padding, kernel_shape, operation)
    for axis, (size, (before, after)) in enumerate(zip(image_shape[:2], pads)):
        check_pad_width(padding_mode, size, before, after, axis)
    return output_shape(image_shape[:2], kernel_shape, padding=pads)


def separable_factors(kernel: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a rank-1 kernel into a column and a row whose outer product is the kernel.

    The factors are the row through the largest weight (the pivot) and the column through it
    divided by that weight, so that kernels of small integers (Sobel, binomial) factor
    exactly. The kernel counts as rank 1 when what the factors leave unexplained,
    ``kernel - outer(column, row)``, has a Frobenius norm of at most ``4 * max(rows, columns) *
    eps`` times the kernel's. That bound on the residual also bounds the second singular value,
    and it costs one pass over the kernel instead of a singular value decomposition.

    Parameters
    ----------
    kernel : array_like
        A 2-D kernel.

    Returns
    -------
    (column, row) or None
        Two 1-D float64 arrays with ``np.outer(column, row) ≈ kernel``, or None when the kernel
        is not rank 1.

    Examples
    --------
    >>> column, row = separable_factors([[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    >>> np.allclose(np.outer(column, row), [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    True
    >>> separable_factors([[0, 1, 0], [1, -4, 1], [0, 1, 0]]) is None
    True
    """
    kernel = as_float_array(kernel, "kernel", ndims=(2,)).astype(np.float64, copy=False)
    pivot_row, pivot_column = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    pivot = kernel[pivot_row, pivot_column]
    if pivot == 0:
        return np.zeros(kernel.shape[0]), np.zeros(kernel.shape[1])
    column = kernel[:, pivot_column] / pivot
    row = kernel[pivot_row].copy()
    residual = np.linalg.norm(kernel - np.outer(column, row))
    tolerance = 4 * max(kernel.shape) * np.finfo(np.float64).eps * np.linalg.norm(kernel)
    return (column, row) if residual <= tolerance else None


def _one_fft_is_cheaper(image_shape: tuple[int, int], kernel_shape: tuple[int, int]) -> bool:
    """Whether one 2-D call by FFT is predicted to beat a column pass and a row pass.

    Both sides come from the primitives' one cost model: each pass costs what its cheaper path
    costs (:func:`cnnkit.ops._core.direct_cost` or :func:`cnnkit.ops._core.banded_cost`),
    against :func:`cnnkit.ops._core.fft_cost` for the FFT over the once-padded image.
    """
    height, width = image_shape
    kernel_rows, kernel_columns = kernel_shape
    outputs = height * width
    two_passes = sum(
        min(direct_cost(max(shape), outputs), banded_cost(shape, outputs))
        for shape in ((kernel_rows, 1), (1, kernel_columns))
    )
    padded = (height + kernel_rows - 1, width + kernel_columns - 1)
    return fft_cost(padded, kernel_shape) < two_passes


def _filter(
    image: object,
    *,
    kernel: np.ndarray | None = None,
    column: np.ndarray | None = None,
    row: np.ndarray | None = None,
    operation: str = "correlate",
    padding_mode: str = "reflect",
    padding: object = "same",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Run a 2-D ``kernel``, or a ``column`` pass then a ``row`` pass, on every channel.

    Channels are filtered one at a time. Each is padded once (as ``padding`` of the whole
    kernel would pad it) and the primitive runs with ``padding='valid'``. Where a pass takes the
    primitive's direct path, the padded channel is cut into tiles of rows, both passes on a tile
    before the next, so that the data stays in cache between the passes; large images run their
    tiles in the thread pool. The kernels are cast to the image's dtype so that float32 images
    stay float32. ``out`` (the image itself is allowed) receives the result.
    """
    image = _as_image(image)
    check_choice(operation, "operation", OPERATIONS)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    primitive = _PRIMITIVES[operation]
    passes = [kernel] if kernel is not None else [column[:, None], row[None, :]]
    passes = [part.astype(image.dtype) for part in passes]
    kernel_shape = (passes[0].shape[0], passes[-1].shape[1])
    height, width = _check_kernel_fits(image.shape, kernel_shape, operation, padding_mode,
                                       padding)
    # convolve2d's 'same' puts the odd element of an even kernel's padding before, correlate2d's
    # after; padding here the way the primitive would keeps both exact.
    pads = _image_padding(padding, kernel_shape, operation)
    padded_shape = (image.shape[0] + sum(pads[0]), image.shape[1] + sum(pads[1]))
    # Passes by band matrices or FFT tile the whole plane themselves; direct passes share
    # tiles of rows, so that a tile stays in cache between them.
    methods = [
        choose_method(padded_shape, part.shape, (height, width), fft=len(passes) == 1)
        for part in passes
    ]
    whole = "direct" not in methods
    # A tile's column matrix, for the pass with the most taps, fits the one tile budget.
    widest_pass = max(part.size for part in passes)
    tiles = [(0, height)] if whole else row_tiles(height, widest_pass * width * image.itemsize)
    taps = sum(part.size for part in passes)
    if out is None:
        out = np.empty((height, width, *image.shape[2:]), dtype=image.dtype)

    def run(plane: np.ndarray, target: np.ndarray) -> None:
        padded = pad(plane, pads, padding_mode)

        def run_tile(tile: tuple[int, int]) -> None:
            top, bottom = tile
            strip = padded[top : bottom + kernel_shape[0] - 1]
            for part in passes:
                strip = primitive(strip, part, "valid")
            target[top:bottom] = strip

        if whole:
            run_tile((0, height))
        else:
            map_tiles(run_tile, tiles, direct_cost(taps, height * width))

    if image.ndim == 2:
        run(image, out)
    else:
        for channel in range(image.shape[2]):
            run(image[:, :, channel], out[:, :, channel])
    return out


def _filter_separable(
    image: object,
    column: np.ndarray,
    row: np.ndarray,
    *,
    operation: str = "correlate",
    padding_mode: str = "reflect",
    padding: object = "same",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Filter with the kernel ``outer(column, row)``: two 1-D passes, or one FFT when cheaper.

    Data holding NaN or inf always takes the passes, since the primitive never runs an FFT on
    it (the direct 2-D path would then cost ``rows * columns`` taps per pixel).
    """
    image = _as_image(image)
    options = {"operation": operation, "padding_mode": padding_mode, "padding": padding,
               "out": out}
    _check_kernel_fits(image.shape, (column.size, row.size), operation, padding_mode, padding)
    if _one_fft_is_cheaper(image.shape[:2], (column.size, row.size)) and np.isfinite(image).all():
        return _filter(image, kernel=np.outer(column, row), **options)
    return _filter(image, column=column, row=row, **options)


# --- Public filters --------------------------------------------------------------------------


@_refuses_mode
def filter_image(
    image: object,
    kernel: object,
    *,
    operation: str = "correlate",
    padding_mode: str = "reflect",
    padding: object = "same",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Filter a grayscale or colour image with any kernel.

    Parameters
    ----------
    image : array_like
        ``(height, width)`` grayscale or ``(height, width, channels)`` colour (1 to 4 channels,
        filtered one by one).
    kernel : array_like, str or os.PathLike
        A 2-D array, or anything :func:`cnnkit.filters.parse_kernel` accepts (``"sobel-x"``,
        ``"gaussian:sigma=2"``, ``"[[0,1,0],[1,-4,1],[0,1,0]]"``, a ``.npy`` path).
    operation : {'correlate', 'convolve'}
        ``'correlate'`` (OpenCV ``filter2D``, ``scipy.ndimage.correlate``) lays the kernel over
        the image as written; ``'convolve'`` (``scipy.ndimage.convolve``, the textbook formula)
        flips it in both axes first.
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}
        How the border is extended; ``'reflect'`` (``4 3 2 | 1 2 3 4``) is OpenCV's default.
    padding : {'same', 'full', 'valid'}, int or per-axis form
        How much border: ``'same'`` (the default) keeps the image's height and width;
        ``'full'`` gives every position where the kernel overlaps the image (``k - 1`` more
        rows and columns); ``'valid'`` only the positions where it lies wholly inside
        (``k - 1`` fewer); a number ``p`` pads ``p`` on each side. Any form that
        :func:`cnnkit.shapes.resolve_padding` takes for two axes.
    out : numpy.ndarray, optional
        Where to write the result: an array of the result's shape and dtype, which may be the
        image itself when the shapes agree (filtering in place saves the memory of a second
        image).

    Returns
    -------
    numpy.ndarray
        The image's channels, and its height and width for 'same' padding (otherwise as
        :func:`cnnkit.shapes.output_shape` gives); float32 for float32 input, float64
        otherwise; never clipped. A kernel with an even side is placed as in ``'same'``
        padding of the primitives: the extra row or column of padding goes after for
        'correlate' and before for 'convolve'.

    Notes
    -----
    Rank-1 kernels run as two 1-D passes (see :func:`separable_factors`), or as one FFT where
    that is predicted cheaper (long kernels on large images); other kernels run as one 2-D
    call, which switches to FFT for large kernels. Channels are filtered one at a time, large
    images in tiles of rows that stay in cache, on both cores. A kernel whose border the padding
    mode cannot build from the image is refused before the kernel is decomposed.

    Examples
    --------
    >>> image = np.zeros((3, 4)); image[:, 2:] = 1.0      # a step rising to the right
    >>> filter_image(image, "sobel-x")
    array([[0., 4., 4., 0.],
           [0., 4., 4., 0.],
           [0., 4., 4., 0.]])
    >>> filter_image(image, "sobel-x", operation="convolve")[0, 1]
    np.float64(-4.0)
    >>> filter_image(image, "sobel-x", padding="valid")
    array([[4., 4.]])
    """
    image = _as_image(image)
    kernel = parse_kernel(kernel)
    shape = (*_check_kernel_fits(image.shape, kernel.shape, operation, padding_mode, padding),
             *image.shape[2:])
    if out is not None and (out.shape != shape or out.dtype != image.dtype):
        raise InvalidArgument(
            f"out must have the result's shape {shape} and dtype {image.dtype}, got "
            f"{out.shape} {out.dtype}"
        )
    options = {"operation": operation, "padding_mode": padding_mode, "padding": padding,
               "out": out}
    factors = None if 1 in kernel.shape else separable_factors(kernel)
    if factors is None:
        return _filter(image, kernel=kernel, **options)
    column, row = factors
    return _filter_separable(image, column, row, **options)


def _gradient(
    image: object,
    smoothing: np.ndarray,
    derivative: np.ndarray,
    axis: object,
    operation: str,
    padding_mode: str,
) -> np.ndarray:
    if _check_axis(axis) == 1:
        column, row = smoothing, derivative
    else:
        column, row = derivative, smoothing
    return _filter_separable(image, column, row, operation=operation, padding_mode=padding_mode)


@_refuses_mode
def sobel(
    image: object,
    axis: int,
    *,
    size: int = 3,
    operation: str = "correlate",
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Sobel derivative of an image along ``axis``.

    ``axis=1`` differentiates across the columns (kernel "sobel-x", finds vertical edges),
    ``axis=0`` down the rows ("sobel-y", horizontal edges)::

        axis=1:  -1  0  1      axis=0:  -1 -2 -1
                 -2  0  2                0  0  0
                 -1  0  1                1  2  1

    With the default ``operation='correlate'`` (``cv2.Sobel``, ``scipy.ndimage.sobel``), intensity
    rising along ``axis`` gives a positive response, +4 per unit step for ``size=3``;
    ``operation='convolve'`` (the textbook convolution, which flips the kernel) gives the negative.
    Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        Derivative direction.
    size : int
        Odd kernel size from 3 to 31, built as OpenCV's ``getDerivKernels``.
    operation : {'correlate', 'convolve'}
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The derivative, same shape as ``image``, float.

    Examples
    --------
    >>> step = np.zeros((4, 4)); step[2:] = 1.0           # rising down the rows
    >>> sobel(step, 0)[:, 0].tolist()
    [0.0, 4.0, 4.0, 0.0]
    >>> sobel(step, 1).any()
    np.False_
    """
    smoothing, derivative = sobel_kernels1d(size)
    return _gradient(image, smoothing, derivative, axis, operation, padding_mode)


@_refuses_mode
def scharr(
    image: object, axis: int, *, operation: str = "correlate", padding_mode: str = "reflect"
) -> np.ndarray:
    """Scharr derivative along ``axis`` (``cv2.Scharr``); smoothing ``[3, 10, 3]`` across it.

    Same conventions as :func:`sobel`; a unit step gives +16. Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        0 differentiates down the rows (horizontal edges), 1 across the columns.
    operation : {'correlate', 'convolve'}
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The derivative, same shape as ``image``, float.

    Examples
    --------
    >>> step = np.zeros((3, 4)); step[:, 2:] = 1.0
    >>> scharr(step, 1)[1].tolist()
    [0.0, 16.0, 16.0, 0.0]
    """
    return _gradient(image, _SCHARR_SMOOTHING, _CENTRAL_DIFFERENCE, axis, operation, padding_mode)


@_refuses_mode
def prewitt(
    image: object, axis: int, *, operation: str = "correlate", padding_mode: str = "reflect"
) -> np.ndarray:
    """Prewitt derivative along ``axis`` (``scipy.ndimage.prewitt``); smoothing ``[1, 1, 1]``.

    Same conventions as :func:`sobel`; a unit step gives +3. Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        0 differentiates down the rows (horizontal edges), 1 across the columns.
    operation : {'correlate', 'convolve'}
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The derivative, same shape as ``image``, float.

    Examples
    --------
    >>> step = np.zeros((3, 4)); step[:, 2:] = 1.0
    >>> prewitt(step, 1)[1].tolist()
    [0.0, 3.0, 3.0, 0.0]
    """
    return _gradient(image, _PREWITT_SMOOTHING, _CENTRAL_DIFFERENCE, axis, operation, padding_mode)


@_refuses_mode
def gaussian_blur(
    image: object,
    sigma: float | tuple[float, float],
    *,
    truncate: float = 4.0,
    radius: int | None = None,
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Gaussian blur as two 1-D passes (a column of weights, then a row).

    The weights are :func:`cnnkit.filters.gaussian_kernel1d`: ``exp(-x²/(2σ²))`` at integer
    offsets up to ``int(truncate*sigma + 0.5)`` (or ``radius``), normalised to sum 1, so the
    mean brightness of a constant image is kept. Matches ``scipy.ndimage.gaussian_filter`` and
    ``cv2.GaussianBlur`` (explicit sigma, size ``2*radius + 1``) with the matching border.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    sigma : float or (float, float)
        Standard deviation in pixels, or ``(rows, columns)``.
    truncate : float
        Radius in units of sigma.
    radius : int, optional
        Explicit radius for both axes.
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The blurred image, same shape, float.

    Examples
    --------
    >>> impulse = np.zeros((5, 5)); impulse[2, 2] = 1.0
    >>> blurred = gaussian_blur(impulse, 1.0, radius=1)
    >>> round(float(blurred.sum()), 12), round(float(blurred[2, 2]), 3)
    (1.0, 0.204)
    """
    if isinstance(sigma, tuple | list):
        if len(sigma) != 2:
            raise InvalidArgument(f"sigma must be a number or (rows, columns), got {sigma!r}")
        sigma_rows, sigma_columns = sigma
    else:
        sigma_rows = sigma_columns = sigma
    column = gaussian_kernel1d(sigma_rows, truncate=truncate, radius=radius)
    row = gaussian_kernel1d(sigma_columns, truncate=truncate, radius=radius)
    return _filter_separable(image, column, row, padding_mode=padding_mode)


@_refuses_mode
def box_blur(
    image: object, size: int | tuple[int, int] = 3, *, padding_mode: str = "reflect"
) -> np.ndarray:
    """Mean over a ``size``×``size`` window (``cv2.blur``), as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    size : int or (int, int)
        Window side, or ``(rows, columns)``. An even side is placed as the primitives' 'same'
        padding places it (the extra row or column after the centre).
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The blurred image, same shape, float.

    Examples
    --------
    >>> blurred = box_blur(np.arange(9.0).reshape(3, 3), 3, padding_mode="replicate")
    >>> round(float(blurred[1, 1]), 12)
    4.0
    """
    rows, columns = box_kernel(size).shape  # validates size
    return _filter_separable(
        image, np.full(rows, 1.0 / rows), np.full(columns, 1.0 / columns),
        padding_mode=padding_mode,
    )


@_refuses_mode
def edge_magnitude(
    image: object, *, size: int = 3, padding_mode: str = "reflect"
) -> np.ndarray:
    """Gradient magnitude ``hypot(sobel(image, 0), sobel(image, 1))``: edge strength.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)`` (per channel).
    size : int
        Sobel kernel size (odd, 3 to 31).
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        Non-negative magnitudes, same shape as ``image``.

    Examples
    --------
    >>> step = np.zeros((3, 4)); step[:, 2:] = 1.0
    >>> edge_magnitude(step)[1].tolist()
    [0.0, 4.0, 4.0, 0.0]
    """
    return np.hypot(
        sobel(image, 0, size=size, padding_mode=padding_mode),
        sobel(image, 1, size=size, padding_mode=padding_mode),
    )


@_refuses_mode
def edge_orientation(
    image: object, *, size: int = 3, padding_mode: str = "reflect"
) -> np.ndarray:
    """Gradient direction ``arctan2(sobel(image, 0), sobel(image, 1))`` in radians.

    The angle is measured from the column axis (pointing right) towards the row axis (pointing
    down), in ``[-π, π]``: 0 where brightness rises to the right, ``π/2`` where it rises
    downwards, ``π`` where it rises to the left. Where there is no gradient the angle is 0.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)`` (per channel).
    size : int
        Sobel kernel size (odd, 3 to 31).
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        Angles in radians, same shape as ``image``.

    Examples
    --------
    >>> step = np.zeros((4, 3)); step[2:] = 1.0          # brighter below
    >>> round(float(edge_orientation(step)[1, 1] / np.pi), 3)
    0.5
    """
    # Adding 0.0 turns -0.0 into +0.0, so a zero gradient gives angle 0, not ±π.
    return np.arctan2(
        sobel(image, 0, size=size, padding_mode=padding_mode) + 0.0,
        sobel(image, 1, size=size, padding_mode=padding_mode) + 0.0,
    )


@_refuses_mode
def sharpen(
    image: object, amount: float = 1.0, *, padding_mode: str = "reflect"
) -> np.ndarray:
    """Sharpen: ``image - amount * laplacian(image)``, one 3×3 correlation.

    The kernel is :func:`cnnkit.filters.sharpen_kernel` (``amount=1``: centre 5, the four
    neighbours -1). Flat regions keep their value; the result is not clipped.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    amount : float
        Strength, > 0.
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        The sharpened image, same shape, float.

    Examples
    --------
    >>> sharpen(np.full((3, 3), 0.5))[1, 1]
    np.float64(0.5)
    """
    return _filter(image, kernel=sharpen_kernel(amount), padding_mode=padding_mode)


@_refuses_mode
def laplacian(
    image: object, *, neighbours: int = 4, padding_mode: str = "reflect"
) -> np.ndarray:
    """Discrete Laplacian with 4 or 8 neighbours (see :func:`cnnkit.filters.laplacian_kernel`).

    Equals ``scipy.ndimage.laplace`` (4 neighbours) with the matching mode. The kernel is not
    separable, so it runs as one 3×3 call.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    neighbours : {4, 8}
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        Same shape as ``image``, float; zero on constant and linear regions.

    Examples
    --------
    >>> impulse = np.zeros((3, 3)); impulse[1, 1] = 1.0
    >>> laplacian(impulse, padding_mode="zeros").tolist()
    [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    """
    return _filter(image, kernel=laplacian_kernel(neighbours), padding_mode=padding_mode)
