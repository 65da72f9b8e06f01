"""cnnkit: convolutional neural networks from first principles to a trained model.

The top level holds the NumPy primitives and the shape arithmetic, as ``torch.nn.functional``
does; image filters live in :mod:`cnnkit.filters`, image files in :mod:`cnnkit.imageio`.
"""

__version__ = "0.1.0"

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
    "explain_output_size",
    "global_avg_pool2d",
    "max_pool2d",
    "max_pool2d_backward",
    "output_shape",
    "output_size",
    "pad",
    "resolve_padding",
]
