"""The correlation workhorse shared by the signal and neural families.

All convolution-like functions end here, with an input that is already padded, in NCHW layout
(1-D signals carry a unit height axis) and a weight of shape ``(O, C // groups, kh, kw)``.
Two algorithms, chosen by :func:`correlate_padded`:

- **direct** (the default): the input is cut into tiles of whole output rows; each tile's
  columns (one row per tap and input channel, "im2col") are gathered tap by tap and multiplied
  with the weight matrix by BLAS. Tiles are sized so the column matrix stays under
  ``BLOCK_BYTES``, which keeps it in cache and bounds the extra memory whatever the kernel.
- **FFT**: for stride 1 when every output channel reads exactly one input channel (a single
  image, or a depthwise filter bank) and the kernel is large: the correlation is a product of
  spectra. Chosen when it is predicted cheaper (see :func:`prefers_fft`), and never when the data
  holds NaN or inf, which an FFT would spread over the whole output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from cnnkit.ops.windows import tap_slices

__all__ = [
    "BLOCK_BYTES",
    "column_tiles",
    "correlate_padded",
    "correlate_padded_backward",
    "prefers_fft",
]

#: Upper bound of one tile's column matrix, in bytes.
BLOCK_BYTES = 8 * 2**20


def _tiles(n_batch: int, n_rows: int, row_bytes: int) -> Iterator[tuple[slice, int, int]]:
    """Split (batch, output rows) into tiles whose column matrix fits in ``BLOCK_BYTES``."""
    image_bytes = row_bytes * n_rows
    if image_bytes <= BLOCK_BYTES:
        batch_step, row_step = max(1, min(n_batch, BLOCK_BYTES // image_bytes)), n_rows
    else:
        batch_step, row_step = 1, max(1, BLOCK_BYTES // row_bytes)
    for b0 in range(0, n_batch, batch_step):
        for r0 in range(0, n_rows, row_step):
            yield slice(b0, min(b0 + batch_step, n_batch)), r0, min(r0 + row_step, n_rows)


def column_tiles(
    xpad: np.ndarray,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    out_shape: tuple[int, int],
) -> Iterator[tuple[slice, int, int, np.ndarray]]:
    """Yield ``(batch, r0, r1, columns)`` tiles of the im2col matrix of ``xpad``.

    ``columns`` has shape ``(nb, groups, C//groups * kh * kw, (r1 - r0) * Wo)``: for each image of
    the batch slice and each group, one row per (input channel, tap) and one column per output
    position of output rows ``r0:r1``. The buffer is reused between tiles.
    """
    n, c = xpad.shape[:2]
    cg = c // groups
    kh, kw = kernel_size
    ho, wo = out_shape
    row_bytes = c * kh * kw * wo * xpad.itemsize
    grouped = xpad.reshape(n, groups, cg, *xpad.shape[2:])
    buffer = None
    for batch, r0, r1 in _tiles(n, ho, row_bytes):
        nb = batch.stop - batch.start
        shape = (nb, groups, cg, kh, kw, r1 - r0, wo)
        if buffer is None:
            buffer = np.empty(math.prod(shape), dtype=xpad.dtype)
        columns = buffer[: math.prod(shape)].reshape(shape)
        for (i, j), (rows, cols) in tap_slices(
            kernel_size, (r1 - r0, wo), stride, dilation, offset=(r0, 0)
        ):
            columns[:, :, :, i, j] = grouped[batch, :, :, rows, cols]
        yield batch, r0, r1, columns.reshape(nb, groups, cg * kh * kw, (r1 - r0) * wo)


def _fast_length(n: int) -> int:
    """Smallest 5-smooth integer >= n (a length the FFT handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def prefers_fft(
    padded_shape: tuple[int, int], kernel_size: tuple[int, int], out_shape: tuple[int, int]
) -> bool:
    """Predict whether the FFT path beats the direct one for a single-channel correlation.

    The direct path costs about one multiply-add per tap and output element; the FFT path about
    three real transforms of the padded size. The constant was fitted on 2 x86-64 cores
    (``benchmarks/bench_primitives.py``): the crossover lies near 11×11 kernels on a 2048² image.
    """
    taps = kernel_size[0] * kernel_size[1]
    direct = taps * out_shape[0] * out_shape[1]
    size = _fast_length(padded_shape[0]) * _fast_length(padded_shape[1])
    fft = 12.0 * size * math.log2(max(size, 2))
    return fft < direct


def _correlate_fft(
    xpad: np.ndarray, weight: np.ndarray, dilation: tuple[int, int], out_shape: tuple[int, int]
) -> np.ndarray:
    """Depthwise correlation by FFT: channel ``c`` of the output reads channel ``c`` only."""
    dh, dw = dilation
    kh, kw = weight.shape[2:]
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    kernel = np.zeros((weight.shape[0], span_h, span_w), dtype=xpad.dtype)
    kernel[:, ::dh, ::dw] = weight[:, 0]
    size = (_fast_length(xpad.shape[2]), _fast_length(xpad.shape[3]))
    # Correlation is convolution with the flipped kernel; outputs span_h-1 ... of the circular
    # convolution are free of wrap-around because the transform is at least as long as xpad.
    spectrum = np.fft.rfft2(xpad, s=size) * np.fft.rfft2(kernel[:, ::-1, ::-1], s=size)
    full = np.fft.irfft2(spectrum, s=size)
    ho, wo = out_shape
    return np.ascontiguousarray(
        full[..., span_h - 1 : span_h - 1 + ho, span_w - 1 : span_w - 1 + wo], dtype=xpad.dtype
    )


def correlate_padded(
    xpad: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    out_shape: tuple[int, int],
    *,
    method: str = "auto",
) -> np.ndarray:
    """Cross-correlate a padded NCHW batch with a weight; return ``(N, O, Ho, Wo)``.

    ``method`` is ``'auto'``, ``'direct'`` or ``'fft'`` (the last only where it applies).
    """
    n, c = xpad.shape[:2]
    o, _, kh, kw = weight.shape
    depthwise = weight.shape[1] == 1 and groups == c == o
    if method == "fft" or (
        method == "auto"
        and depthwise
        and stride == (1, 1)
        and prefers_fft(xpad.shape[2:], (kh, kw), out_shape)
        and np.isfinite(xpad).all()
        and np.isfinite(weight).all()
    ):
        if not (depthwise and stride == (1, 1)):
            raise ValueError("method='fft' needs stride 1 and one input channel per output channel")
        return _correlate_fft(xpad, weight, dilation, out_shape)

    ho, wo = out_shape
    weight_matrix = weight.reshape(groups, o // groups, -1)
    out = np.empty((n, o, ho, wo), dtype=xpad.dtype)
    for batch, r0, r1, columns in column_tiles(xpad, (kh, kw), stride, dilation, groups, out_shape):
        nb = batch.stop - batch.start
        if r0 == 0 and r1 == ho:
            np.matmul(weight_matrix, columns, out=out[batch].reshape(nb, groups, o // groups, -1))
        else:
            product = np.matmul(weight_matrix, columns)
            out[batch, :, r0:r1] = product.reshape(nb, o, r1 - r0, wo)
    return out


def correlate_padded_backward(
    grad_output: np.ndarray,
    xpad: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`correlate_padded` with respect to ``xpad`` and ``weight``.

    The weight gradient is the grad-output matrix times the transposed columns; the input
    gradient multiplies the transposed weight matrix by the grad-output and scatters the resulting
    columns back tap by tap ("col2im"), the adjoint of gathering them.
    """
    n = xpad.shape[0]
    o, cg, kh, kw = weight.shape
    og = o // groups
    ho, wo = grad_output.shape[2:]
    weight_matrix = weight.reshape(groups, og, cg * kh * kw)
    weight_matrix_t = weight_matrix.transpose(0, 2, 1)
    grad_weight = np.zeros_like(weight_matrix)
    grad_xpad = np.zeros_like(xpad)
    grad_grouped = grad_xpad.reshape(n, groups, cg, *xpad.shape[2:])
    for batch, r0, r1, columns in column_tiles(
        xpad, (kh, kw), stride, dilation, groups, (ho, wo)
    ):
        nb = batch.stop - batch.start
        grad_tile = grad_output[batch, :, r0:r1].reshape(nb, groups, og, (r1 - r0) * wo)
        grad_weight += np.matmul(grad_tile, columns.transpose(0, 1, 3, 2)).sum(axis=0)
        grad_columns = np.matmul(weight_matrix_t, grad_tile).reshape(
            nb, groups, cg, kh, kw, r1 - r0, wo
        )
        for (i, j), (rows, cols) in tap_slices(
            (kh, kw), (r1 - r0, wo), stride, dilation, offset=(r0, 0)
        ):
            grad_grouped[batch, :, :, rows, cols] += grad_columns[:, :, :, i, j]
    return grad_xpad, grad_weight.reshape(weight.shape)
