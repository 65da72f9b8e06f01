"""Pooling: ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d`` and their backward passes.

PyTorch's semantics on (N, C, H, W) or (C, H, W). ``stride`` defaults to ``kernel_size`` (not
1). Windows come from :func:`cnnkit.ops.windows.tap_windows`, and the reduction runs tap by tap:
a running maximum (with the arg-max) or a running sum, so no window array is ever built. Padding
is virtual: a tap skips the outputs whose read falls into it (-inf for max, 0 for the average).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validate import as_float_array, check_int, int_tuple
from cnnkit.errors import InvalidArgument
from cnnkit.ops.windows import tap_windows
from cnnkit.shapes import output_size

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool2d_divisor",
    "global_avg_pool2d",
    "max_pool2d",
    "max_pool2d_backward",
]


@dataclass(frozen=True)
class _PoolPlan:
    x: np.ndarray  # (N, C, H, W)
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    out_shape: tuple[int, int]
    batched: bool

    def windows(self):
        """``(tap, target, source)`` for every tap: see :func:`tap_windows`."""
        return tap_windows(
            self.x.shape[2:],
            self.kernel_size,
            self.stride,
            self.dilation,
            [(p, p) for p in self.padding],
            [(0, o) for o in self.out_shape],
        )

    def restore(self, array: np.ndarray) -> np.ndarray:
        return array if self.batched else array[0]


def _plan(x, kernel_size, stride, padding, dilation, ceil_mode, limit_name) -> _PoolPlan:
    x = as_float_array(x, "input", ndims=(3, 4))
    batched = x.ndim == 4
    if not batched:
        x = x[np.newaxis]
    kernel = int_tuple(kernel_size, "kernel_size", 2, minimum=1)
    strides = kernel if stride is None else int_tuple(stride, "stride", 2, minimum=1)
    if isinstance(padding, str):
        raise InvalidArgument(f"padding must be a non-negative integer or a pair, got {padding!r}")
    pads = int_tuple(padding, "padding", 2, minimum=0)
    dilations = int_tuple(dilation, "dilation", 2, minimum=1)
    for p, k, d in zip(pads, kernel, dilations):
        half = (d * (k - 1) + 1) // 2 if limit_name == "max" else k // 2
        if p > half:
            extent = f" and dilation={dilations}" if limit_name == "max" else ""
            raise InvalidArgument(
                f"padding must be at most half of the kernel: got padding={pads} for "
                f"kernel_size={kernel}{extent}"
            )
    out = tuple(
        output_size(n, k, s, p, d, bool(ceil_mode))
        for n, k, s, p, d in zip(x.shape[2:], kernel, strides, pads, dilations)
    )
    return _PoolPlan(x, kernel, strides, pads, dilations, out, batched)


def _first_inside(plan: _PoolPlan) -> np.ndarray:
    """Flat input index of the first in-bounds element of every window (PyTorch's default)."""
    starts = []
    for o, s, p, d in zip(plan.out_shape, plan.stride, plan.padding, plan.dilation):
        start = np.arange(o) * s - p
        start = np.where(start < 0, start + (-start + d - 1) // d * d, start)
        starts.append(start)
    return starts[0][:, np.newaxis] * plan.x.shape[3] + starts[1][np.newaxis, :]


def _max_pool_tiled(plan: _PoolPlan) -> tuple[np.ndarray, np.ndarray] | None:
    """Max pooling where the windows tile the input, tap by tap without masked copies.

    With the stride equal to the kernel, no padding and no dilation (the usual 2×2 pooling),
    every window lies inside the input, so a running ``numpy.maximum`` and the number of the
    last tap that was strictly larger give the maximum and the first position holding it (the
    one PyTorch takes), in a few unmasked passes: several times faster than the general loop's
    masked copies. NaN (PyTorch takes the last one) and other geometries return None, for the
    general loop.
    """
    kh, kw = plan.kernel_size
    if plan.stride != plan.kernel_size or plan.padding != (0, 0) or plan.dilation != (1, 1):
        return None
    ho, wo = plan.out_shape
    x = plan.x
    if ho * kh > x.shape[2] or wo * kw > x.shape[3] or np.isnan(x.max()):
        return None  # ceil_mode's partial windows, or NaN
    width = x.shape[3]
    taps = list(np.ndindex(kh, kw))
    tap_type = np.int8 if len(taps) <= 127 else np.intp
    best = x[:, :, : ho * kh : kh, : wo * kw : kw].copy()
    taken = np.zeros(best.shape, dtype=tap_type)
    for tap, (i, j) in enumerate(taps[1:], start=1):
        candidate = x[:, :, i : ho * kh : kh, j : wo * kw : kw]
        taken += (candidate > best) * (tap_type(tap) - taken)
        np.maximum(best, candidate, out=best)
    # The flat index of each window's first element, plus that of the tap taken within it.
    corners = (np.arange(ho)[:, np.newaxis] * kh * width + np.arange(wo) * kw)
    offsets = np.array([i * width + j for i, j in taps])
    return best, offsets[taken] + corners


def max_pool2d(
    input: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Padding counts as -inf, and may be at most half the dilated kernel. NaN wins over numbers.
    With ``return_indices`` also returns, for every output, the flat index ``h * W + w`` of the
    chosen input element within its channel (the first maximum in row-major order).

    >>> x = np.arange(1.0, 26.0).reshape(1, 5, 5)
    >>> max_pool2d(x, 2)
    array([[[ 7.,  9.],
            [17., 19.]]])
    >>> max_pool2d(x, 2, ceil_mode=True)[0, -1]
    array([22., 24., 25.])
    """
    plan = _plan(input, kernel_size, stride, padding, dilation, ceil_mode, "max")
    tiled = _max_pool_tiled(plan)
    if tiled is not None:
        best, index = tiled
        if return_indices:
            return plan.restore(best), plan.restore(index)
        return plan.restore(best)
    n, c, width = plan.x.shape[0], plan.x.shape[1], plan.x.shape[3]
    best = np.full((n, c, *plan.out_shape), -np.inf, dtype=plan.x.dtype)
    index = np.broadcast_to(_first_inside(plan), best.shape).copy()
    for _, target, source in plan.windows():
        if target is None:
            continue
        candidate = plan.x[(Ellipsis, *source)]
        current = best[(Ellipsis, *target)]
        # PyTorch's comparison: take a later value if it is larger or NaN.
        better = (candidate > current) | np.isnan(candidate)
        np.copyto(current, candidate, where=better)
        rows = np.arange(source[0].start, source[0].stop, source[0].step)[:, np.newaxis]
        cols = np.arange(source[1].start, source[1].stop, source[1].step)[np.newaxis, :]
        np.copyto(
            index[(Ellipsis, *target)], np.broadcast_to(rows * width + cols, better.shape),
            where=better,
        )
    if return_indices:
        return plan.restore(best), plan.restore(index)
    return plan.restore(best)


def max_pool2d_backward(
    grad_output: np.ndarray, input: np.ndarray, kernel_size: int | tuple[int, int], **kwargs
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each output's gradient goes to the element it took; overlapping windows add up. Keyword
    arguments are those of the forward call (``stride``, ``padding``, ``dilation``,
    ``ceil_mode``).

    >>> x = np.array([[[1.0, 3.0], [2.0, 0.0]]])
    >>> max_pool2d_backward(np.array([[[5.0]]]), x, 2)
    array([[[0., 5.],
            [0., 0.]]])
    """
    kwargs.pop("return_indices", None)
    output, index = max_pool2d(input, kernel_size, return_indices=True, **kwargs)
    grad = _grad_like(grad_output, output)
    x = as_float_array(input, "input", ndims=(3, 4))
    height, width = x.shape[-2:]
    planes = int(np.prod(x.shape[:-2]))
    flat_index = index.reshape(planes, -1) + (np.arange(planes) * height * width)[:, np.newaxis]
    grad_input = np.bincount(
        flat_index.ravel(), weights=grad.reshape(-1), minlength=planes * height * width
    )
    return grad_input.reshape(x.shape).astype(x.dtype, copy=False)


def _grad_like(grad_output: object, output: np.ndarray) -> np.ndarray:
    grad = as_float_array(grad_output, "grad_output", ndims=(output.ndim,))
    if grad.shape != output.shape:
        raise InvalidArgument(
            f"grad_output must have the output's shape {output.shape}, got {grad.shape}"
        )
    return grad.astype(output.dtype, copy=False)


def _avg_divisor(plan: _PoolPlan, count_include_pad: bool, divisor_override) -> np.ndarray:
    """Per-output divisor, following PyTorch's rules for padding and ceil_mode windows."""
    if divisor_override is not None:
        return np.asarray(float(check_int(divisor_override, "divisor_override", minimum=1)))
    counts = []
    for n, k, s, p, o in zip(
        plan.x.shape[2:], plan.kernel_size, plan.stride, plan.padding, plan.out_shape
    ):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, n) - np.maximum(start, 0))
    return (counts[0][:, np.newaxis] * counts[1][np.newaxis, :]).astype(plan.x.dtype)


def avg_pool2d_divisor(
    input: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """What :func:`avg_pool2d` divides each output's window sum by, ``(H_out, W_out)``.

    The window's size, less the padded positions with ``count_include_pad=False``, and less
    the part of a ``ceil_mode`` window that lies beyond the right padding (PyTorch's rules).

    >>> avg_pool2d_divisor(np.zeros((1, 1, 3, 3)), 2, padding=1, count_include_pad=False)
    array([[1., 2.],
           [2., 4.]])
    """
    plan = _plan(input, kernel_size, stride, padding, 1, ceil_mode, "avg")
    return np.broadcast_to(_avg_divisor(plan, bool(count_include_pad), None),
                           plan.out_shape).astype(np.float64)


def avg_pool2d(
    input: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Padded zeros count in the divisor unless ``count_include_pad=False``; a window of a
    ``ceil_mode`` output that reaches past the padding is divided by the part that lies inside
    the padded input. ``divisor_override`` replaces the divisor.

    >>> avg_pool2d(np.arange(1.0, 26.0).reshape(1, 5, 5), 2)
    array([[[ 4.,  6.],
            [14., 16.]]])
    """
    plan = _plan(input, kernel_size, stride, padding, 1, ceil_mode, "avg")
    total = np.zeros((*plan.x.shape[:2], *plan.out_shape), dtype=plan.x.dtype)
    for _, target, source in plan.windows():
        if target is not None:
            total[(Ellipsis, *target)] += plan.x[(Ellipsis, *source)]
    total /= _avg_divisor(plan, count_include_pad, divisor_override)
    return plan.restore(total)


def avg_pool2d_backward(
    grad_output: np.ndarray,
    input: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    >>> avg_pool2d_backward(np.array([[[4.0]]]), np.zeros((1, 2, 2)), 2)
    array([[[1., 1.],
            [1., 1.]]])
    """
    plan = _plan(input, kernel_size, stride, padding, 1, ceil_mode, "avg")
    grad = _grad_like(grad_output, plan.restore(np.empty((*plan.x.shape[:2], *plan.out_shape))))
    grad = grad if plan.batched else grad[np.newaxis]
    grad = grad / _avg_divisor(plan, count_include_pad, divisor_override)
    grad_input = np.zeros_like(plan.x)
    for _, target, source in plan.windows():
        if target is not None:
            grad_input[(Ellipsis, *source)] += grad[(Ellipsis, *target)]
    return plan.restore(grad_input)


def global_avg_pool2d(input: np.ndarray) -> np.ndarray:
    """Mean over height and width, keeping them as size 1: (N, C, H, W) -> (N, C, 1, 1).

    The same as ``torch.nn.functional.adaptive_avg_pool2d(input, 1)``.

    >>> global_avg_pool2d(np.arange(8.0).reshape(2, 2, 2))
    array([[[1.5]],
    <BLANKLINE>
           [[5.5]]])
    """
    x = as_float_array(input, "input", ndims=(3, 4))
    return x.mean(axis=(-2, -1), keepdims=True)
