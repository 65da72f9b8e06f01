"""Small architectures shared by the tests (fast to train on two cores)."""

from __future__ import annotations


def conv_pool_spec(name: str, channels: tuple[int, ...]) -> dict:
    """An architecture spec: for each entry of ``channels`` a 3×3 convolution (padding 1), ReLU
    and 2×2 max pooling, then a linear layer to the classes."""
    layers = []
    for count in channels:
        layers += [
            {"type": "conv2d", "out_channels": count, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": 2},
        ]
    layers += [{"type": "flatten"}, {"type": "linear", "out_features": "num_classes"}]
    return {"name": name, "layers": layers}
