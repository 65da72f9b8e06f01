"""cnnkit: convolutional neural networks from first principles to a trained model."""

__version__ = "0.1.0"

from cnnkit.filters import (
    edge_magnitude,
    filter_image,
    gaussian_blur,
    gaussian_kernel,
    make_kernel,
    sobel,
    sobel_kernel,
)
from cnnkit.imageio import read_image, write_image
from cnnkit.ops import (
    PADDING_MODES,
    avg_pool2d,
    avg_pool2d_backward,
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    convolve1d,
    convolve2d,
    correlate1d,
    correlate2d,
    global_avg_pool2d,
    max_pool2d,
    max_pool2d_backward,
    pad,
)
from cnnkit.shapes import explain_output_size, output_shape, output_size, resolve_padding

__all__ = [
    "PADDING_MODES",
    "__version__",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "convolve1d",
    "convolve2d",
    "correlate1d",
    "correlate2d",
    "edge_magnitude",
    "explain_output_size",
    "filter_image",
    "gaussian_blur",
    "gaussian_kernel",
    "global_avg_pool2d",
    "make_kernel",
    "max_pool2d",
    "max_pool2d_backward",
    "output_shape",
    "output_size",
    "pad",
    "read_image",
    "resolve_padding",
    "sobel",
    "sobel_kernel",
    "write_image",
]
