"""NumPy primitives: convolution, correlation and pooling, exact and fast, with backward passes.

Two families (see CONVENTIONS.md): the *signal* family (``convolve1d``, ``correlate1d``,
``convolve2d``, ``correlate2d``) works on one array with numpy/scipy semantics; the *neural*
family (``conv1d``, ``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``) works on
batches of multi-channel images with PyTorch semantics. Large arrays are processed in tiles on
:func:`get_num_threads` threads (:func:`set_num_threads` changes it; results do not depend on
it), with BLAS held to one thread while cnnkit runs and restored afterwards.
"""

from cnnkit.ops._parallel import get_num_threads, set_num_threads
from cnnkit.ops.conv import conv1d, conv1d_backward, conv2d, conv2d_backward
from cnnkit.ops.pool import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    max_pool2d,
    max_pool2d_backward,
)
from cnnkit.ops.signal import convolve1d, convolve2d, correlate1d, correlate2d
from cnnkit.ops.windows import PADDING_MODES, pad

__all__ = [
    "PADDING_MODES",
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
    "get_num_threads",
    "global_avg_pool2d",
    "max_pool2d",
    "max_pool2d_backward",
    "pad",
    "set_num_threads",
]
