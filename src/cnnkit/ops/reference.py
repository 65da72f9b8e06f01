"""Readable reference loops: convolution exactly as the tutorial computes it, pixel by pixel.

These functions are for teaching and for checking the fast paths in tests. They loop over every
output position in Python, so they are thousands of times slower than :mod:`cnnkit.ops`; do not
use them on real data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv2d_loop", "convolve2d_loop"]


def convolve2d_loop(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution with zero padding of ``kernel_size // 2``, one pixel at a time.

    The tutorial's algorithm: flip the kernel in both directions, pad the image with zeros so
    that the output keeps its size (for odd kernels), then take, for every output pixel, the
    sum of the window times the flipped kernel.

    Convolving with an impulse right of the centre shifts the image one column to the right:

    >>> convolve2d_loop(np.eye(3), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    array([[0., 1., 0.],
           [0., 0., 1.],
           [0., 0., 0.]])
    """
    image = np.asarray(image, dtype=np.float64)
    flipped = np.flip(np.asarray(kernel, dtype=np.float64))
    kernel_rows, kernel_cols = flipped.shape
    pad_rows, pad_cols = kernel_rows // 2, kernel_cols // 2
    padded = np.pad(image, ((pad_rows, pad_rows), (pad_cols, pad_cols)))
    rows = padded.shape[0] - kernel_rows + 1
    cols = padded.shape[1] - kernel_cols + 1
    output = np.zeros((rows, cols))
    for row in range(rows):
        for col in range(cols):
            window = padded[row : row + kernel_rows, col : col + kernel_cols]
            output[row, col] = np.sum(window * flipped)
    return output


def conv2d_loop(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """A convolution layer written as nested loops over images, filters and output pixels.

    ``input`` is (N, C, H, W), ``weight`` (O, C // groups, kh, kw); zero padding is given as
    ``((top, bottom), (left, right))``. Each output pixel is the sum, over the input channels of
    its group and over the kernel, of window times filter, plus the filter's bias.

    >>> conv2d_loop(np.ones((1, 2, 3, 3)), np.ones((1, 2, 2, 2)), bias=np.array([0.5]))
    array([[[[8.5, 8.5],
             [8.5, 8.5]]]])
    """
    input = np.asarray(input, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    batch, _, _, _ = input.shape
    out_channels, group_channels, kernel_rows, kernel_cols = weight.shape
    padded = np.pad(input, ((0, 0), (0, 0), *padding))
    span_rows = dilation[0] * (kernel_rows - 1) + 1
    span_cols = dilation[1] * (kernel_cols - 1) + 1
    rows = (padded.shape[2] - span_rows) // stride[0] + 1
    cols = (padded.shape[3] - span_cols) // stride[1] + 1
    filters_per_group = out_channels // groups
    output = np.zeros((batch, out_channels, rows, cols))
    for image in range(batch):
        for filter_index in range(out_channels):
            first = (filter_index // filters_per_group) * group_channels
            channels = padded[image, first : first + group_channels]
            for row in range(rows):
                for col in range(cols):
                    top, left = row * stride[0], col * stride[1]
                    window = channels[
                        :,
                        top : top + span_rows : dilation[0],
                        left : left + span_cols : dilation[1],
                    ]
                    output[image, filter_index, row, col] = np.sum(window * weight[filter_index])
            if bias is not None:
                output[image, filter_index] += bias[filter_index]
    return output
