"""Image filters: named kernels, kernels given as text or files, applying them to images, and
built-in sample images.

>>> from cnnkit.filters import grid_lines, sobel
>>> edges = sobel(grid_lines(64), 1)          # vertical edges of the tutorial's grid
>>> edges.shape
(64, 64)
"""

from __future__ import annotations

from cnnkit.filters.apply import (
    OPERATIONS,
    box_blur,
    edge_magnitude,
    edge_orientation,
    filter_image,
    gaussian_blur,
    laplacian,
    prewitt,
    scharr,
    separable_factors,
    sharpen,
    sobel,
)
from cnnkit.filters.kernel_text import MAX_KERNEL_FILE_BYTES, parse_kernel
from cnnkit.filters.kernels import (
    AXES,
    KERNEL_NAMES,
    MAX_GAUSSIAN_RADIUS,
    MAX_KERNEL_SIDE,
    binomial_kernel,
    box_kernel,
    check_kernel_side,
    emboss_kernel,
    gaussian_kernel,
    gaussian_kernel1d,
    identity_kernel,
    kernel_defaults,
    kernel_parameters,
    laplacian_kernel,
    make_kernel,
    prewitt_kernel,
    scharr_kernel,
    sharpen_kernel,
    sobel_kernel,
    sobel_kernels1d,
)
from cnnkit.filters.samples import (
    SAMPLE_NAMES,
    checkerboard,
    concentric_circles,
    grid_lines,
    noisy_gradient,
    sample_image,
    step_edge,
)
from cnnkit.ops import PADDING_MODES

__all__ = [
    "AXES",
    "KERNEL_NAMES",
    "MAX_GAUSSIAN_RADIUS",
    "MAX_KERNEL_FILE_BYTES",
    "MAX_KERNEL_SIDE",
    "OPERATIONS",
    "PADDING_MODES",
    "SAMPLE_NAMES",
    "binomial_kernel",
    "box_blur",
    "box_kernel",
    "check_kernel_side",
    "checkerboard",
    "concentric_circles",
    "edge_magnitude",
    "edge_orientation",
    "emboss_kernel",
    "filter_image",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_kernel1d",
    "grid_lines",
    "identity_kernel",
    "kernel_defaults",
    "kernel_parameters",
    "laplacian",
    "laplacian_kernel",
    "make_kernel",
    "noisy_gradient",
    "parse_kernel",
    "prewitt",
    "prewitt_kernel",
    "sample_image",
    "scharr",
    "scharr_kernel",
    "separable_factors",
    "sharpen",
    "sharpen_kernel",
    "sobel",
    "sobel_kernel",
    "sobel_kernels1d",
    "step_edge",
]
