"""Signal-processing convolution and correlation of one 1-D or 2-D array.

``convolve1d``/``convolve2d`` compute true convolution: the kernel is flipped before it slides,
``(x * k)[i] = sum_m x[i - m] k[m]``. ``correlate1d``/``correlate2d`` slide it as it is,
``(x ⋆ k)[i] = sum_m x[i + m] k[m]``, which is what convolution layers in neural networks do.
Semantics follow numpy and scipy.signal (default ``padding='full'``), with cnnkit's additions:
stride, dilation, explicit padding and padding modes. ``fillvalue`` is scipy's: the value of
constant padding (``boundary='fill'``), zero by default.

With ``padding='valid'`` and a kernel at least as large as the input in every axis (larger in
one), the two operands swap places, as ``numpy.convolve``/``numpy.correlate`` and
``scipy.signal.convolve2d``/``correlate2d`` do: convolution commutes, so ``convolve*`` gives the
same numbers either way round; ``correlate*`` gives the reversed correlation (scipy's and numpy's
result). When neither operand is at least as large as the other in every axis, 'valid' is
refused, as scipy refuses it. The swap is defined for stride 1 and dilation 1 only.

For an even kernel with ``padding='same'`` the output cannot be centred. ``correlate*`` puts the
extra padding element after the data (as PyTorch and ``scipy.signal.correlate2d`` do; note that
``numpy.correlate`` puts it before), ``convolve*`` keeps the part of the full result that starts
at ``(k - 1) // 2``, as ``numpy.convolve`` and ``scipy.signal.convolve2d`` do.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, int_tuple
from cnnkit.errors import InvalidArgument, InvalidType
from cnnkit.ops._core import correlate
from cnnkit.ops.windows import pad
from cnnkit.shapes import output_shape, resolve_padding

__all__ = ["convolve1d", "convolve2d", "correlate1d", "correlate2d"]


def _fill_value(fillvalue: object, padding_mode: str) -> float:
    """Check scipy's ``fillvalue``: a real number, only for constant padding."""
    real = (int, float, np.integer, np.floating)
    if isinstance(fillvalue, (bool, np.bool_)) or not isinstance(fillvalue, real):
        raise InvalidType(f"fillvalue must be a real number, got {fillvalue!r}")
    if fillvalue != 0 and padding_mode != "zeros":
        raise InvalidArgument(
            f"fillvalue={fillvalue!r} is the value of constant padding (padding_mode='zeros'); "
            f"it does not combine with padding_mode={padding_mode!r}"
        )
    return float(fillvalue)


def _swaps(
    x: np.ndarray, kernel: np.ndarray, strides: tuple, dilations: tuple, names: tuple[str, str]
) -> bool:
    """Whether 'valid' swaps the operands (the kernel is the larger one), as scipy decides."""
    x_holds_kernel = all(n >= k for n, k in zip(x.shape, kernel.shape))
    if x_holds_kernel:
        return False
    if not all(k >= n for n, k in zip(x.shape, kernel.shape)):
        raise InvalidArgument(
            f"padding='valid' needs one of {names[0]} and {names[1]} at least as large as the "
            f"other in every axis, got {names[0]} shape {x.shape} and {names[1]} shape "
            f"{kernel.shape}"
        )
    if any(s != 1 for s in strides) or any(d != 1 for d in dilations):
        raise InvalidArgument(
            f"{names[1]} shape {kernel.shape} is larger than {names[0]} shape {x.shape}: "
            "padding='valid' then swaps them (as numpy and scipy do), which is defined for "
            f"stride 1 and dilation 1 only, got stride {strides} and dilation {dilations}"
        )
    return True


def _slide(
    x: object,
    kernel: object,
    padding: object,
    padding_mode: str,
    fillvalue: object,
    stride: object,
    dilation: object,
    *,
    ndim: int,
    flip: bool,
    names: tuple[str, str],
) -> np.ndarray:
    """Validate, pad and correlate one ``ndim``-dimensional array with one kernel."""
    x = as_float_array(x, names[0], ndims=(ndim,))
    kernel = as_float_array(kernel, names[1], ndims=(ndim,)).astype(x.dtype, copy=False)
    fill = _fill_value(fillvalue, padding_mode)
    strides = int_tuple(stride, "stride", ndim, minimum=1)
    dilations = int_tuple(dilation, "dilation", ndim, minimum=1)
    # 'valid' with the larger operand second: numpy and scipy swap them. Convolution commutes;
    # the correlation of the swapped pair is the wanted one reversed, and scipy returns that.
    valid = isinstance(padding, str) and padding == "valid"
    swapped = valid and _swaps(x, kernel, strides, dilations, names)
    if swapped:
        x, kernel = kernel, x
    if flip:
        kernel = np.flip(kernel)
    pads = resolve_padding(
        padding, kernel.shape, stride=strides, dilation=dilations, extra_before=flip
    )
    out = output_shape(x.shape, kernel.shape, strides, pads, dilations)
    if padding_mode != "zeros" or fill != 0:
        x, pads = pad(x, pads, padding_mode, fill=fill), ((0, 0),) * ndim
    if ndim == 1:
        x, kernel = x[np.newaxis], kernel[np.newaxis]
        strides, dilations, pads, out = (1, *strides), (1, *dilations), ((0, 0), *pads), (1, *out)
    result = correlate(
        x[np.newaxis, np.newaxis],
        np.ascontiguousarray(kernel)[np.newaxis, np.newaxis],
        strides,
        dilations,
        pads,
        1,
        out,
    )
    result = result[0, 0, 0] if ndim == 1 else result[0, 0]
    return np.flip(result).copy() if swapped and not flip else result


def correlate1d(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple[int, int] = "full",
    *,
    padding_mode: str = "zeros",
    fillvalue: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """Cross-correlation of a 1-D array with a 1-D kernel (the kernel is not flipped).

    Parameters
    ----------
    x, kernel : 1-D arrays
    padding : 'full' (default), 'same', 'valid', an int per side, or a (before, after) pair
    padding_mode : {'zeros', 'reflect', 'symmetric', 'replicate', 'circular'}
    fillvalue : float
        The value of the padding with ``padding_mode='zeros'`` (default 0): constant padding,
        scipy's ``boundary='fill'``.
    stride, dilation : int

    Returns
    -------
    1-D array of length ``floor((n + before + after - dilation*(k - 1) - 1) / stride) + 1``.

    Notes
    -----
    With ``'valid'`` and a kernel longer than ``x`` the two swap places and the result is
    reversed, exactly as ``numpy.correlate`` does (see the module notes). With ``'same'`` the
    output has ``x``'s length whichever is longer (numpy's has the longer one's).

    Examples
    --------
    >>> correlate1d([1, 2, 3], [0, 1, 0.5], "valid")
    array([3.5])
    >>> correlate1d([1, 2, 3], [1, 1])
    array([1., 3., 5., 3.])
    >>> correlate1d([1, 2], [1, 2, 3], "valid")  # numpy.correlate gives the same
    array([8., 5.])
    """
    return _slide(
        x, kernel, padding, padding_mode, fillvalue, stride, dilation, ndim=1, flip=False,
        names=("x", "kernel"),
    )


def convolve1d(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple[int, int] = "full",
    *,
    padding_mode: str = "zeros",
    fillvalue: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """True convolution of a 1-D array with a 1-D kernel (flipped), as ``numpy.convolve``.

    Arguments as in :func:`correlate1d`. With ``'valid'`` and a kernel longer than ``x`` the
    two swap places, as in ``numpy.convolve``; convolution commutes, so nothing else changes.

    Examples
    --------
    >>> convolve1d([1, 2], [1, 2, 3], "valid")
    array([4., 7.])

    The worked examples of the tutorial's textbook:

    >>> convolve1d([1, 3, 2, 4, 5, 6, 1, 3], [1, 0, 3, 1, 2], padding=2)
    array([ 5., 14., 16., 26., 24., 34., 19., 22.])
    >>> convolve1d([3, 2, 1, 7, 1, 2, 5, 4], [0.5, 0.75, 1.0, 0.25], padding=0, stride=2)
    array([7., 9., 8.])
    """
    return _slide(
        x, kernel, padding, padding_mode, fillvalue, stride, dilation, ndim=1, flip=True,
        names=("x", "kernel"),
    )


def correlate2d(
    image: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple = "full",
    *,
    padding_mode: str = "zeros",
    fillvalue: float = 0.0,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Cross-correlation of a 2-D array with a 2-D kernel, as ``scipy.signal.correlate2d``.

    Parameters
    ----------
    image, kernel : 2-D arrays
    padding : 'full' (default), 'same', 'valid', int, (int, int) or ((top, bottom), (left, right))
    padding_mode : {'zeros', 'reflect', 'symmetric', 'replicate', 'circular'}
    fillvalue : float
        The value of the padding with ``padding_mode='zeros'`` (default 0), as scipy's
        ``boundary='fill', fillvalue=...``.
    stride, dilation : int or (int, int)

    Returns
    -------
    2-D array; the algorithm (blocked direct sum or FFT) is chosen automatically.

    Notes
    -----
    With ``'valid'`` and a kernel at least as large as the image in both axes (larger in one),
    the two swap places and the result is reversed in both axes: exactly
    ``scipy.signal.correlate2d``'s answer. Neither at least as large as the other is refused.

    Examples
    --------
    A vertical Sobel kernel applied as a correlation answers a rising step with +4:

    >>> step = np.repeat([[0, 0, 1, 1]], 3, axis=0)
    >>> correlate2d(step, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "valid")
    array([[4., 4.]])
    """
    return _slide(
        image, kernel, padding, padding_mode, fillvalue, stride, dilation, ndim=2, flip=False,
        names=("image", "kernel"),
    )


def convolve2d(
    image: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple = "full",
    *,
    padding_mode: str = "zeros",
    fillvalue: float = 0.0,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """True 2-D convolution (the kernel is flipped), as ``scipy.signal.convolve2d``.

    Arguments as in :func:`correlate2d`. With ``'valid'`` and a kernel at least as large as
    the image in both axes (larger in one), the two swap places, as in
    ``scipy.signal.convolve2d``; convolution commutes, so nothing else changes.

    Examples
    --------
    >>> convolve2d([[1, 2]], [[1, 0, -1], [2, 0, -2]], "valid")
    array([[ 2., -1.],
           [ 4., -2.]])
    >>> X = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
    >>> W = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
    >>> convolve2d(X, W, padding=1)
    array([[11., 25., 32., 13.],
           [19., 25., 24., 13.],
           [13., 28., 25., 17.],
           [11., 17., 14.,  9.]])
    """
    return _slide(
        image, kernel, padding, padding_mode, fillvalue, stride, dilation, ndim=2, flip=True,
        names=("image", "kernel"),
    )
