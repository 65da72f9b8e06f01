"""Applying kernels to grayscale and colour images.

Every function here goes through one workhorse, :func:`_filter`, which hands each channel to the
signal primitives :func:`cnnkit.ops.correlate2d` / :func:`cnnkit.ops.convolve2d` with
``padding='same'``. How a kernel is run is chosen automatically:

1. a kernel with one row or one column is one 1-D pass (``k`` taps per pixel);
2. a kernel of rank 1 (Gaussian, Sobel, box, binomial, or any user kernel whose second singular
   value is below ``max(rows, columns) * eps`` times the first, see :func:`separable_factors`)
   is split into a column and a row and run as two 1-D passes, ``rows + columns`` taps per pixel
   instead of ``rows * columns`` -- unless the primitive's cost model predicts that one FFT of
   the whole 2-D kernel is cheaper still (about 100 taps in all on a 2048² image, a Gaussian
   with sigma 6; see :func:`_one_fft_is_cheaper`);
3. any other kernel is one 2-D call; the primitive itself switches from direct tap accumulation
   to FFT for large kernels.

Padding per axis commutes with filtering along the other axis for every padding mode, so the
two-pass result equals the 2-D one up to rounding. Results are floating point (float32 in gives
float32 out, everything else float64), have the input's height and width and are never clipped;
:func:`to_uint8` makes a displayable 8-bit picture from them.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, check_choice
from cnnkit.errors import InvalidArgument
from cnnkit.filters.kernels import (
    _CENTRAL_DIFFERENCE,
    _PREWITT_SMOOTHING,
    _SCHARR_SMOOTHING,
    _check_axis,
    box_kernel,
    gaussian_kernel1d,
    laplacian_kernel,
    parse_kernel,
    sharpen_kernel,
    sobel_kernels1d,
)
from cnnkit.ops import PADDING_MODES, convolve2d, correlate2d, pad
from cnnkit.ops._core import fft_cost, prefers_fft
from cnnkit.shapes import resolve_padding

__all__ = [
    "FILTER_MODES",
    "PADDING_MODES",
    "TO_UINT8_METHODS",
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
    "to_uint8",
]

#: ``'correlate'`` lays the kernel over the image as written; ``'convolve'`` flips it first.
FILTER_MODES = ("correlate", "convolve")
#: Ways :func:`to_uint8` maps floating-point values to 0..255.
TO_UINT8_METHODS = ("rescale", "clip", "abs")

_PRIMITIVES = {"correlate": correlate2d, "convolve": convolve2d}

#: Cost of one tap of a 1-D pass over one pixel in :func:`_filter`'s strips, in units of the
#: primitive's cost model (one direct multiply-add): measured with benchmarks/bench_filters.py
#: on 2 x86-64 cores, where the strip-wise passes run about twice as fast as the model assumes.
PASS_COST = 0.5

#: Values per strip in :func:`_filter` (1 MiB of float64): small enough for the strip and its
#: intermediate pass to stay in a core's cache, large enough that the calls per strip are cheap.
STRIP_ELEMENTS = 2**17


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


def separable_factors(kernel: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a rank-1 kernel into a column and a row whose outer product is the kernel.

    The rank is read from the singular values: the kernel counts as rank 1 when the second
    singular value is at most ``max(rows, columns) * eps`` times the first (NumPy's
    ``matrix_rank`` tolerance). The factors are then the row through the largest weight and
    the column through it divided by that weight, so that kernels of small integers (Sobel,
    binomial) factor exactly.

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
    singular = np.linalg.svd(kernel, compute_uv=False)
    if singular[0] == 0:
        return np.zeros(kernel.shape[0]), np.zeros(kernel.shape[1])
    tolerance = max(kernel.shape) * np.finfo(np.float64).eps * singular[0]
    if singular.size > 1 and singular[1] > tolerance:
        return None
    # Factor through the largest weight (pivot): the pivot's row, and its column divided by the
    # pivot. Unlike the singular vectors this keeps integer kernels such as Sobel exact.
    pivot_row, pivot_column = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    column = kernel[:, pivot_column] / kernel[pivot_row, pivot_column]
    return column, kernel[pivot_row].copy()


def _one_fft_is_cheaper(image_shape: tuple[int, int], kernel_shape: tuple[int, int]) -> bool:
    """Whether one 2-D call by FFT is predicted to beat two 1-D passes.

    Uses the primitive's cost model (:func:`cnnkit.ops._core.fft_cost`, in units of one direct
    tap per output pixel) for the FFT over the once-padded image. The passes of
    :func:`_filter` run in cache-sized strips and cost about ``PASS_COST`` units per tap and
    pixel instead. On a 2048² image the
    crossover lies near 100 taps in all (a Gaussian with sigma about 6).
    """
    height, width = image_shape
    kernel_rows, kernel_columns = kernel_shape
    two_passes = PASS_COST * (kernel_rows + kernel_columns) * height * width
    padded = (height + kernel_rows - 1, width + kernel_columns - 1)
    return fft_cost(padded, kernel_shape) < two_passes


def _filter(
    image: object,
    *,
    kernel: np.ndarray | None = None,
    column: np.ndarray | None = None,
    row: np.ndarray | None = None,
    mode: str = "correlate",
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Run a 2-D ``kernel``, or a ``column`` pass then a ``row`` pass, on every channel.

    Each channel is padded once (as 'same' padding of the whole kernel would pad it) and the
    primitive runs with ``padding='valid'``. Unless the primitive will take its FFT path, the
    padded channel is processed in strips of about ``STRIP_ELEMENTS`` values, both passes on a
    strip before the next, so that the data stays in cache between the passes. The kernels are
    cast to the image's dtype so that float32 images stay float32.
    """
    image = _as_image(image)
    check_choice(mode, "mode", FILTER_MODES)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    primitive = _PRIMITIVES[mode]
    passes = [kernel] if kernel is not None else [column[:, None], row[None, :]]
    passes = [part.astype(image.dtype) for part in passes]
    kernel_shape = (passes[0].shape[0], passes[-1].shape[1])
    # convolve2d's 'same' puts the odd element of an even kernel's padding before, correlate2d's
    # after; padding here the way the primitive would keeps both exact.
    pads = resolve_padding("same", kernel_shape, extra_before=mode == "convolve")
    height, width = image.shape[:2]
    padded_shape = (height + sum(pads[0]), width + sum(pads[1]))
    whole = len(passes) == 1 and prefers_fft(padded_shape, kernel_shape, (height, width))
    strip_rows = height if whole else max(1, STRIP_ELEMENTS // padded_shape[1])

    def run(plane: np.ndarray) -> np.ndarray:
        padded = pad(plane, pads, padding_mode)
        out = np.empty(plane.shape, dtype=plane.dtype)
        for top in range(0, height, strip_rows):
            bottom = min(top + strip_rows, height)
            strip = padded[top : bottom + kernel_shape[0] - 1]
            for part in passes:
                strip = primitive(strip, part, "valid")
            out[top:bottom] = strip
        return out

    if image.ndim == 2:
        return run(image)
    return np.stack([run(image[:, :, channel]) for channel in range(image.shape[2])], axis=-1)


def _filter_separable(
    image: object,
    column: np.ndarray,
    row: np.ndarray,
    *,
    mode: str = "correlate",
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Filter with the kernel ``outer(column, row)``: two 1-D passes, or one FFT when cheaper.

    Data holding NaN or inf always takes the passes, since the primitive never runs an FFT on
    it (the direct 2-D path would then cost ``rows * columns`` taps per pixel).
    """
    image = _as_image(image)
    if _one_fft_is_cheaper(image.shape[:2], (column.size, row.size)) and np.isfinite(image).all():
        return _filter(image, kernel=np.outer(column, row), mode=mode, padding_mode=padding_mode)
    return _filter(image, column=column, row=row, mode=mode, padding_mode=padding_mode)


# --- Public filters --------------------------------------------------------------------------


def filter_image(
    image: object,
    kernel: object,
    *,
    mode: str = "correlate",
    padding_mode: str = "reflect",
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
    mode : {'correlate', 'convolve'}
        ``'correlate'`` (OpenCV ``filter2D``, ``scipy.ndimage.correlate``) lays the kernel over
        the image as written; ``'convolve'`` (``scipy.ndimage.convolve``, the textbook formula)
        flips it in both axes first.
    padding_mode : {'reflect', 'zeros', 'symmetric', 'replicate', 'circular'}
        How the border is extended; ``'reflect'`` (``4 3 2 | 1 2 3 4``) is OpenCV's default.

    Returns
    -------
    numpy.ndarray
        Same height, width and channels; float32 for float32 input, float64 otherwise; never
        clipped. A kernel with an even side is placed as in ``'same'`` padding of the
        primitives: the extra row or column of padding goes after for 'correlate' and before
        for 'convolve'.

    Notes
    -----
    Rank-1 kernels run as two 1-D passes (see :func:`separable_factors`), or as one FFT where
    that is predicted cheaper (long kernels on large images); other kernels run as one 2-D
    call, which switches to FFT for large kernels. Large images are filtered in strips of rows
    that stay in cache.

    Examples
    --------
    >>> image = np.zeros((3, 4)); image[:, 2:] = 1.0      # a step rising to the right
    >>> filter_image(image, "sobel-x")
    array([[0., 4., 4., 0.],
           [0., 4., 4., 0.],
           [0., 4., 4., 0.]])
    >>> filter_image(image, "sobel-x", mode="convolve")[0, 1]
    np.float64(-4.0)
    """
    kernel = parse_kernel(kernel)
    factors = None if 1 in kernel.shape else separable_factors(kernel)
    if factors is None:
        return _filter(image, kernel=kernel, mode=mode, padding_mode=padding_mode)
    column, row = factors
    return _filter_separable(image, column, row, mode=mode, padding_mode=padding_mode)


def _gradient(
    image: object,
    smoothing: np.ndarray,
    derivative: np.ndarray,
    axis: object,
    mode: str,
    padding_mode: str,
) -> np.ndarray:
    if _check_axis(axis) == 1:
        column, row = smoothing, derivative
    else:
        column, row = derivative, smoothing
    return _filter_separable(image, column, row, mode=mode, padding_mode=padding_mode)


def sobel(
    image: object,
    axis: int,
    *,
    size: int = 3,
    mode: str = "correlate",
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Sobel derivative of an image along ``axis``.

    ``axis=1`` differentiates across the columns (kernel "sobel-x", finds vertical edges),
    ``axis=0`` down the rows ("sobel-y", horizontal edges)::

        axis=1:  -1  0  1      axis=0:  -1 -2 -1
                 -2  0  2                0  0  0
                 -1  0  1                1  2  1

    With the default ``mode='correlate'`` (``cv2.Sobel``, ``scipy.ndimage.sobel``), intensity
    rising along ``axis`` gives a positive response, +4 per unit step for ``size=3``;
    ``mode='convolve'`` (the textbook convolution, which flips the kernel) gives the negative.
    Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        Derivative direction.
    size : int
        Odd kernel size from 3 to 31, built as OpenCV's ``getDerivKernels``.
    mode : {'correlate', 'convolve'}
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
    return _gradient(image, smoothing, derivative, axis, mode, padding_mode)


def scharr(
    image: object, axis: int, *, mode: str = "correlate", padding_mode: str = "reflect"
) -> np.ndarray:
    """Scharr derivative along ``axis`` (``cv2.Scharr``); smoothing ``[3, 10, 3]`` across it.

    Same conventions as :func:`sobel`; a unit step gives +16. Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        0 differentiates down the rows (horizontal edges), 1 across the columns.
    mode : {'correlate', 'convolve'}
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
    return _gradient(image, _SCHARR_SMOOTHING, _CENTRAL_DIFFERENCE, axis, mode, padding_mode)


def prewitt(
    image: object, axis: int, *, mode: str = "correlate", padding_mode: str = "reflect"
) -> np.ndarray:
    """Prewitt derivative along ``axis`` (``scipy.ndimage.prewitt``); smoothing ``[1, 1, 1]``.

    Same conventions as :func:`sobel`; a unit step gives +3. Runs as two 1-D passes.

    Parameters
    ----------
    image : array_like
        Grayscale ``(H, W)`` or colour ``(H, W, C)``.
    axis : {0, 1}
        0 differentiates down the rows (horizontal edges), 1 across the columns.
    mode : {'correlate', 'convolve'}
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
    return _gradient(image, _PREWITT_SMOOTHING, _CENTRAL_DIFFERENCE, axis, mode, padding_mode)


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


# --- Display ---------------------------------------------------------------------------------


def to_uint8(image: object, method: str = "rescale") -> np.ndarray:
    """Turn a float image (a filter's output) into displayable 8-bit values.

    Parameters
    ----------
    image : array_like
        Any real array; values must be finite.
    method : {'rescale', 'clip', 'abs'}
        ``'rescale'`` maps the smallest value to 0 and the largest to 255 (a constant image
        is clipped instead, as there is nothing to stretch); ``'clip'`` treats values as
        brightness in [0, 1], cutting off what lies outside; ``'abs'`` maps ``|value|`` from 0
        to its maximum onto 0..255 (edge strength regardless of sign).

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape, rounded to the nearest integer.

    Examples
    --------
    >>> to_uint8([[-4.0, 0.0, 4.0]]).tolist()
    [[0, 128, 255]]
    >>> to_uint8([[-0.5, 0.5, 2.0]], "clip").tolist()
    [[0, 128, 255]]
    >>> to_uint8([[-4.0, 0.0, 2.0]], "abs").tolist()
    [[255, 0, 128]]
    """
    array = as_float_array(image, "image", ndims=range(1, 8)).astype(np.float64)
    check_choice(method, "method", TO_UINT8_METHODS)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InvalidArgument(
            f"image holds {bad} NaN or infinite values; cannot map them to 0..255"
        )
    if method == "abs":
        array = np.abs(array)
        peak = array.max()
        unit = array / peak if peak > 0 else array
    elif method == "rescale" and array.max() > array.min():
        low, high = array.min(), array.max()
        unit = (array - low) / (high - low)
    else:
        unit = np.clip(array, 0.0, 1.0)
    return np.rint(unit * 255.0).astype(np.uint8)
