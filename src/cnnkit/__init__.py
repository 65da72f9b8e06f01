"""cnnkit: convolutional neural networks from first principles to a trained model."""

__version__ = "0.1.0"

from cnnkit.shapes import explain_output_size, output_shape, output_size, resolve_padding

__all__ = [
    "__version__",
    "explain_output_size",
    "output_shape",
    "output_size",
    "resolve_padding",
]
