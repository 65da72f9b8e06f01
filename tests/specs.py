"""The architectures that the tests train, all built by one helper, and what a view of one of
them should show, worked out by hand.

Every suite takes its networks from here: ``SMALL`` is the network of the session's shared
trained run (``trained_run`` in tests/conftest.py); the others are for tests that train
themselves and need something particular (dropout, a network that is quick in a subprocess).
"""

from __future__ import annotations

import json
from pathlib import Path


def conv_pool_spec(name: str, channels: tuple[int, ...], *, pool: int = 2,
                   hidden: int | None = None, dropout: float | None = None) -> dict:
    """An architecture spec: for each entry of ``channels`` a 3×3 convolution (padding 1), ReLU
    and max pooling by ``pool``; then, with ``hidden``, a linear layer of that width and ReLU
    (and dropout ``p=dropout`` after it); then a linear layer to the classes."""
    layers = []
    for count in channels:
        layers += [
            {"type": "conv2d", "out_channels": count, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": pool},
        ]
    layers.append({"type": "flatten"})
    if hidden is not None:
        layers += [{"type": "linear", "out_features": hidden}, {"type": "relu"}]
    if dropout is not None:
        layers.append({"type": "dropout", "p": dropout})
    layers.append({"type": "linear", "out_features": "num_classes"})
    return {"name": name, "layers": layers}


#: The shared trained run's network: two convolution blocks (6 and 8 channels), then the classes.
SMALL = conv_pool_spec("small", (6, 8))
#: The engine tests' network: wider blocks, a hidden layer and dropout (resume must restore the
#: dropout draws).
SMALL_DROPOUT = conv_pool_spec("small", (8, 16), hidden=32, dropout=0.25)
#: The same without dropout: both engines then compute the same function step by step.
SMALL_NO_DROPOUT = conv_pool_spec("small-no-dropout", (8, 16), hidden=32)
#: One block pooled by 4: the quickest network, for runs trained in a subprocess.
TINY = conv_pool_spec("tiny", (4,), pool=4)


def write_spec(spec: dict, folder: Path) -> Path:
    """``spec`` written as ``folder/<name>.json``, the file that ``--arch`` reads."""
    path = Path(folder) / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    return path


def shown_layers(spec: dict) -> list[int]:
    """The layers whose feature maps a view shows by default: each activation and pooling
    before ``flatten`` (a convolution is shown through the ReLU that follows it)."""
    shown = []
    for index, layer in enumerate(spec["layers"]):
        if layer["type"] == "flatten":
            break
        if layer["type"] in ("relu", "max_pool2d"):
            shown.append(index)
    return shown


def feature_map_shapes(spec: dict, input_shape: tuple[int, int, int]) -> dict[int, tuple]:
    """The ``(channels, rows, columns)`` of every layer before ``flatten`` of a
    :func:`conv_pool_spec` network, by hand: a 3×3 convolution with padding 1 keeps the size
    and sets the channels, pooling by ``k`` divides the size by ``k`` (rounding down)."""
    channels, rows, columns = input_shape
    shapes = {}
    for index, layer in enumerate(spec["layers"]):
        if layer["type"] == "flatten":
            break
        if layer["type"] == "conv2d":
            channels = layer["out_channels"]
        elif layer["type"] == "max_pool2d":
            rows, columns = rows // layer["kernel_size"], columns // layer["kernel_size"]
        shapes[index] = (channels, rows, columns)
    return shapes

