"""Padding and sliding windows: the one place where windows are cut out of an array.

Everything in :mod:`cnnkit.ops` that slides a window (convolution, correlation, pooling and their
backward passes) reads its windows through :func:`tap_windows`. A *tap* is one position
``(i, j)`` inside the kernel; what tap ``(i, j)`` sees for every output position at once is one
strided slice of the input, ``x[i*d - top : ... : s, j*d - left : ... : s]``. Looping over taps
(nine for a 3×3 kernel) instead of over output positions keeps every inner loop inside numpy and
never builds a kernel-times-larger copy of the input. Zero (or -inf) padding is virtual: a tap
simply skips the outputs whose read falls into it. Other padding modes copy the input once with
:func:`pad`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np

from cnnkit._validate import check_choice
from cnnkit.errors import InvalidArgument

__all__ = ["PADDING_MODES", "check_pad_width", "pad", "pad_backward", "tap_windows"]

#: Names of the padding modes, as in CONVENTIONS.md (PyTorch's names plus 'symmetric').
PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")

_NUMPY_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


def check_pad_width(mode: str, size: int, before: int, after: int, axis: int) -> None:
    """Refuse a padding that the mode cannot produce from ``size`` elements without repeating."""
    widest = max(before, after)
    limit = {"reflect": size - 1, "symmetric": size, "circular": size}.get(mode)
    if limit is not None and widest > limit:
        raise InvalidArgument(
            f"padding_mode={mode!r} can pad at most {limit} element(s) on each side of an axis "
            f"of size {size}, got padding ({before}, {after}) on spatial axis {axis}"
        )


def pad(
    array: np.ndarray,
    pads: Sequence[tuple[int, int]],
    padding_mode: str = "zeros",
    *,
    fill: float = 0.0,
) -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``array`` with ``(before, after)`` pairs.

    ``padding_mode`` is one of ``'zeros'`` (``fill``, 0 by default), ``'reflect'`` (mirror without
    repeating the edge: ``4 3 2 | 1 2 3 4``), ``'symmetric'`` (mirror repeating the edge:
    ``3 2 1 | 1 2 3 4``), ``'replicate'`` (``1 1 1 | 1 2 3 4``) and ``'circular'``
    (``2 3 4 | 1 2 3 4``). As in PyTorch, a reflection or wrap may not be wider than the axis
    allows (``size - 1`` for 'reflect', ``size`` for 'symmetric' and 'circular').

    >>> pad(np.array([1, 2, 3, 4]), [(3, 0)], "reflect")
    array([4, 3, 2, 1, 2, 3, 4])
    >>> pad(np.array([1, 2, 3, 4]), [(3, 0)], "symmetric")
    array([3, 2, 1, 1, 2, 3, 4])
    """
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    spatial = array.shape[array.ndim - len(pads) :]
    for axis, (size, (before, after)) in enumerate(zip(spatial, pads)):
        check_pad_width(padding_mode, size, before, after, axis)
    if not any(before or after for before, after in pads):
        return array
    if padding_mode == "zeros":
        # A filled array with the input copied into its middle: several times faster than
        # numpy.pad for the small arrays of a training step.
        lead = array.ndim - len(pads)
        shape = array.shape[:lead] + tuple(
            n + before + after for n, (before, after) in zip(spatial, pads)
        )
        padded = np.full(shape, fill, dtype=array.dtype)
        middle = tuple(slice(before, before + n) for n, (before, _) in zip(spatial, pads))
        padded[(Ellipsis, *middle)] = array
        return padded
    widths = [(0, 0)] * (array.ndim - len(pads)) + [tuple(p) for p in pads]
    return np.pad(array, widths, mode=_NUMPY_MODE[padding_mode])


def _source_index(size: int, before: int, after: int, padding_mode: str) -> np.ndarray:
    """For each padded position along one axis, the input index it copies (-1 for a constant)."""
    if padding_mode == "zeros":
        return np.concatenate([np.full(before, -1), np.arange(size), np.full(after, -1)])
    return np.pad(np.arange(size), (before, after), mode=_NUMPY_MODE[padding_mode])


def pad_backward(
    grad_padded: np.ndarray, pads: Sequence[tuple[int, int]], padding_mode: str = "zeros"
) -> np.ndarray:
    """The adjoint of :func:`pad`: fold the gradient of padded positions back onto the input.

    Each padded element is a copy of one input element (or a constant), so its gradient is added
    to that element's. Works axis by axis; only border positions need folding.
    """
    grad = grad_padded
    first = grad.ndim - len(pads)
    for axis, (before, after) in zip(range(first, grad.ndim), pads):
        if not (before or after):
            continue
        size = grad.shape[axis] - before - after
        source = _source_index(size, before, after, padding_mode)
        moved = np.moveaxis(grad, axis, -1)
        folded = moved[..., before : before + size].copy()
        for position in [*range(before), *range(before + size, before + size + after)]:
            if source[position] >= 0:
                folded[..., source[position]] += moved[..., position]
        grad = np.moveaxis(folded, -1, axis)
    return grad


def _axis_window(
    size: int, start: int, stop: int, tap: int, stride: int, dilation: int, before: int
) -> tuple[slice, slice] | None:
    """Along one axis: the outputs in ``start:stop`` whose tap reads a real (unpadded) input.

    Output ``o`` reads input ``o*stride + tap*dilation - before``. Returns the output slice
    (relative to ``start``) and the matching input slice, or None when every read falls in the
    padding.
    """
    offset = tap * dilation - before
    low = max(start, -(offset // stride))
    high = min(stop, (size - 1 - offset) // stride + 1)
    if high <= low:
        return None
    source = slice(low * stride + offset, (high - 1) * stride + offset + 1, stride)
    return slice(low - start, high - start), source


def tap_windows(
    in_shape: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    pads: Sequence[tuple[int, int]],
    out_ranges: Sequence[tuple[int, int]],
):
    """Yield ``(tap, target, source)`` for every kernel position, in row-major order.

    The input is *virtually* padded with ``pads[axis][0]`` elements before each spatial axis
    (nothing is copied). For the outputs ``out_ranges[axis] = (start, stop)``, ``target`` holds
    the slices of those outputs (relative to ``start``) at which tap ``tap`` reads a real input
    element, and ``source`` the slices of the input it reads there, so that
    ``out[..., *target]`` and ``input[..., *source]`` have the same shape. Outputs outside
    ``target`` read padding. ``target`` and ``source`` are None when the tap reads only padding.

    >>> for tap, target, source in tap_windows((4,), (3,), (1,), (1,), [(1, 1)], [(0, 4)]):
    ...     print(tap, target, source)
    (0,) (slice(1, 4, None),) (slice(0, 3, 1),)
    (1,) (slice(0, 4, None),) (slice(0, 4, 1),)
    (2,) (slice(0, 3, None),) (slice(1, 4, 1),)
    """
    # One small cached table per axis; a tap's window is the product of its axes' windows.
    tables = [
        _axis_table(n, start, stop, k, s, d, before)
        for n, (start, stop), k, s, d, (before, _) in zip(
            in_shape, out_ranges, kernel_size, stride, dilation, pads
        )
    ]
    for tap, windows in zip(np.ndindex(*kernel_size), itertools.product(*tables)):
        if None in windows:
            yield tap, None, None
        else:
            yield tap, tuple(w[0] for w in windows), tuple(w[1] for w in windows)


@functools.lru_cache(maxsize=4096)
def _axis_table(
    size: int, start: int, stop: int, kernel_size: int, stride: int, dilation: int, before: int
) -> tuple:
    """The windows of every tap along one axis (cached: training repeats the same geometry)."""
    return tuple(
        _axis_window(size, start, stop, tap, stride, dilation, before)
        for tap in range(kernel_size)
    )


def window_view(
    padded: np.ndarray,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out_shape: Sequence[int],
    *,
    channels_last: bool = False,
) -> np.ndarray:
    """Every window of an explicitly padded (N, C, H, W) array at once, as a read-only view.

    The view has shape ``(N, C, kh, kw, Ho, Wo)``; element ``[n, c, i, j, r, q]`` is
    ``padded[n, c, r*stride_h + i*dilation_h, q*stride_w + j*dilation_w]``: the windows that
    :func:`tap_windows` describes tap by tap, here in one array. Copying it costs one call
    instead of one per tap, which pays off for small inputs, where the per-tap calls cost more
    than the bytes they move.

    With ``channels_last`` the array is (N, H, W, C) and the view ``(N, Ho, Wo, kh, kw, C)``,
    element ``[n, r, q, i, j, c]`` being the same input element: each window is then a few
    contiguous runs of channels (one run of ``kw * C`` with dilation 1), which copy fast.

    >>> window_view(np.arange(5.0).reshape(1, 1, 1, 5), (1, 2), (1, 2), (1, 1), (1, 2))[0, 0, 0]
    array([[[0., 2.]],
    <BLANKLINE>
           [[1., 3.]]])
    >>> window_view(np.arange(5.0).reshape(1, 1, 5, 1), (1, 2), (1, 2), (1, 1), (1, 2),
    ...             channels_last=True)[0, 0, :, 0, :, 0]
    array([[0., 1.],
           [2., 3.]])
    """
    if channels_last:
        n, c = padded.shape[0], padded.shape[3]
        batch_stride, row_stride, col_stride, channel_stride = padded.strides
        shape = (n, *out_shape, *kernel_size, c)
        strides = (
            batch_stride,
            row_stride * stride[0],
            col_stride * stride[1],
            row_stride * dilation[0],
            col_stride * dilation[1],
            channel_stride,
        )
    else:
        n, c = padded.shape[:2]
        batch_stride, channel_stride, row_stride, col_stride = padded.strides
        shape = (n, c, *kernel_size, *out_shape)
        strides = (
            batch_stride,
            channel_stride,
            row_stride * dilation[0],
            col_stride * dilation[1],
            row_stride * stride[0],
            col_stride * stride[1],
        )
    return np.lib.stride_tricks.as_strided(padded, shape=shape, strides=strides, writeable=False)
