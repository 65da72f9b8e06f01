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
from cnnkit.shapes import explain_output_size, output_shape, output_size, resolve_padding

__all__ = [
    "__version__",
    "edge_magnitude",
    "explain_output_size",
    "filter_image",
    "gaussian_blur",
    "gaussian_kernel",
    "make_kernel",
    "output_shape",
    "output_size",
    "resolve_padding",
    "sobel",
    "sobel_kernel",
]
