"""Padding and sliding windows: the one place where windows are cut out of an array.

Everything in :mod:`cnnkit.ops` that slides a window (convolution, correlation, pooling and their
backward passes) reads its windows through :func:`tap_slices` on an input padded by :func:`pad`.
A *tap* is one position ``(i, j)`` inside the kernel; the strided slice of the padded input that
tap ``(i, j)`` sees for every output position at once is ``x[i*d : ... : s, j*d : ... : s]``.
Looping over taps (a handful for a 3×3 kernel) instead of over output positions keeps every
inner loop inside numpy and never builds a kernel-times-larger copy of the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnkit._validate import check_choice

__all__ = ["PADDING_MODES", "pad", "pad_backward", "tap_slices"]

#: Names of the padding modes, as in CONVENTIONS.md (PyTorch's names plus 'symmetric').
PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")

_NUMPY_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


def _check_pad_width(mode: str, size: int, before: int, after: int, axis: int) -> None:
    """Refuse a padding that the mode cannot produce from ``size`` elements without repeating."""
    widest = max(before, after)
    limit = {"reflect": size - 1, "symmetric": size, "circular": size}.get(mode)
    if limit is not None and widest > limit:
        raise ValueError(
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
        _check_pad_width(padding_mode, size, before, after, axis)
    if not any(before or after for before, after in pads):
        return array
    widths = [(0, 0)] * (array.ndim - len(pads)) + [tuple(p) for p in pads]
    if padding_mode == "zeros":
        return np.pad(array, widths, mode="constant", constant_values=fill)
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


def tap_slices(
    kernel_size: Sequence[int],
    out_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    *,
    offset: Sequence[int] | None = None,
):
    """Yield ``(tap, slices)`` for every kernel position, in row-major order.

    ``slices`` index the trailing spatial axes of a padded input so that
    ``padded[..., *slices]`` has the output's spatial shape and holds, at each output position,
    the input element that tap ``tap`` of the window sees. ``offset`` shifts the first window
    (used to process a band of output rows).

    >>> [(tap, s) for tap, s in tap_slices((2,), (3,), (2,), (1,))]
    [((0,), (slice(0, 5, 2),)), ((1,), (slice(1, 6, 2),))]
    """
    offset = offset if offset is not None else (0,) * len(kernel_size)
    for tap in np.ndindex(*kernel_size):
        slices = tuple(
            slice(o * s + t * d, o * s + t * d + (n - 1) * s + 1, s)
            for t, n, s, d, o in zip(tap, out_shape, stride, dilation, offset)
        )
        yield tap, slices
