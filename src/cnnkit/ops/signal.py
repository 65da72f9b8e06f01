"""Signal-processing convolution and correlation of one 1-D or 2-D array.

``convolve1d``/``convolve2d`` compute true convolution: the kernel is flipped before it slides,
``(x * k)[i] = sum_m x[i - m] k[m]``. ``correlate1d``/``correlate2d`` slide it as it is,
``(x ⋆ k)[i] = sum_m x[i + m] k[m]``, which is what convolution layers in neural networks do.
Semantics follow numpy and scipy.signal (default ``padding='full'``), with cnnkit's additions:
stride, dilation, explicit padding and padding modes.

For an even kernel with ``padding='same'`` the output cannot be centred. ``correlate*`` puts the
extra padding element after the data (as PyTorch and ``scipy.signal.correlate2d`` do; note that
``numpy.correlate`` puts it before), ``convolve*`` keeps the part of the full result that starts
at ``(k - 1) // 2``, as ``numpy.convolve`` and ``scipy.signal.convolve2d`` do.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, int_tuple
from cnnkit.ops._core import correlate
from cnnkit.ops.windows import pad
from cnnkit.shapes import output_shape, resolve_padding

__all__ = ["convolve1d", "convolve2d", "correlate1d", "correlate2d"]


def _slide(
    x: object,
    kernel: object,
    padding: object,
    padding_mode: str,
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
    if flip:
        kernel = np.flip(kernel)
    strides = int_tuple(stride, "stride", ndim, minimum=1)
    dilations = int_tuple(dilation, "dilation", ndim, minimum=1)
    pads = resolve_padding(
        padding, kernel.shape, stride=strides, dilation=dilations, extra_before=flip
    )
    out = output_shape(x.shape, kernel.shape, strides, pads, dilations)
    if padding_mode != "zeros":
        x, pads = pad(x, pads, padding_mode), ((0, 0),) * ndim
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
    return result[0, 0, 0] if ndim == 1 else result[0, 0]


def correlate1d(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple[int, int] = "full",
    *,
    padding_mode: str = "zeros",
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """Cross-correlation of a 1-D array with a 1-D kernel (the kernel is not flipped).

    Parameters
    ----------
    x, kernel : 1-D arrays
    padding : 'full' (default), 'same', 'valid', an int per side, or a (before, after) pair
    padding_mode : {'zeros', 'reflect', 'symmetric', 'replicate', 'circular'}
    stride, dilation : int

    Returns
    -------
    1-D array of length ``floor((n + before + after - dilation*(k - 1) - 1) / stride) + 1``.

    Examples
    --------
    >>> correlate1d([1, 2, 3], [0, 1, 0.5], "valid")
    array([3.5])
    >>> correlate1d([1, 2, 3], [1, 1])
    array([1., 3., 5., 3.])
    """
    return _slide(
        x, kernel, padding, padding_mode, stride, dilation, ndim=1, flip=False,
        names=("x", "kernel"),
    )


def convolve1d(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple[int, int] = "full",
    *,
    padding_mode: str = "zeros",
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """True convolution of a 1-D array with a 1-D kernel (flipped), as ``numpy.convolve``.

    Arguments as in :func:`correlate1d`.

    Examples
    --------
    The worked examples of the tutorial's textbook:

    >>> convolve1d([1, 3, 2, 4, 5, 6, 1, 3], [1, 0, 3, 1, 2], padding=2)
    array([ 5., 14., 16., 26., 24., 34., 19., 22.])
    >>> convolve1d([3, 2, 1, 7, 1, 2, 5, 4], [0.5, 0.75, 1.0, 0.25], padding=0, stride=2)
    array([7., 9., 8.])
    """
    return _slide(
        x, kernel, padding, padding_mode, stride, dilation, ndim=1, flip=True,
        names=("x", "kernel"),
    )


def correlate2d(
    image: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple = "full",
    *,
    padding_mode: str = "zeros",
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Cross-correlation of a 2-D array with a 2-D kernel, as ``scipy.signal.correlate2d``.

    Parameters
    ----------
    image, kernel : 2-D arrays
    padding : 'full' (default), 'same', 'valid', int, (int, int) or ((top, bottom), (left, right))
    padding_mode : {'zeros', 'reflect', 'symmetric', 'replicate', 'circular'}
    stride, dilation : int or (int, int)

    Returns
    -------
    2-D array; the algorithm (blocked direct sum or FFT) is chosen automatically.

    Examples
    --------
    A vertical Sobel kernel applied as a correlation answers a rising step with +4:

    >>> step = np.repeat([[0, 0, 1, 1]], 3, axis=0)
    >>> correlate2d(step, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "valid")
    array([[4., 4.]])
    """
    return _slide(
        image, kernel, padding, padding_mode, stride, dilation, ndim=2, flip=False,
        names=("image", "kernel"),
    )


def convolve2d(
    image: np.ndarray,
    kernel: np.ndarray,
    padding: int | str | tuple = "full",
    *,
    padding_mode: str = "zeros",
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """True 2-D convolution (the kernel is flipped), as ``scipy.signal.convolve2d``.

    Arguments as in :func:`correlate2d`.

    Examples
    --------
    >>> X = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
    >>> W = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
    >>> convolve2d(X, W, padding=1)
    array([[11., 25., 32., 13.],
           [19., 25., 24., 13.],
           [13., 28., 25., 17.],
           [11., 17., 14.,  9.]])
    """
    return _slide(
        image, kernel, padding, padding_mode, stride, dilation, ndim=2, flip=True,
        names=("image", "kernel"),
    )
