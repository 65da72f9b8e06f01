"""Framework-neutral architecture specs, shape tracing and parameter counts.

A network is a list of layer specs, each a small dict such as
``{"type": "conv2d", "out_channels": 32, "kernel_size": 5, "padding": 2}``. The same list builds a
PyTorch model (``cnnkit.engines``) or a NumPy one; here it is only checked and traced. Channel
counts and the size a ``flatten`` produces are derived from the input shape with
:func:`cnnkit.shapes.output_size`, never written down, so one spec serves 1×28×28, 3×32×32 or
1×64×64 inputs alike. A ``linear`` layer whose ``out_features`` is ``"num_classes"`` takes the
number of classes of the data set it is trained on.

Layer types and their keys (defaults as in ``torch.nn``; the registry in :mod:`cnnkit.layers`
defines each type once):

=====================  ==================================================================
``conv2d``             ``out_channels``, ``kernel_size``, ``stride=1``, ``padding=0``,
                       ``dilation=1``, ``groups=1``, ``bias=True``, ``padding_mode="zeros"``
``max_pool2d``         ``kernel_size``, ``stride=kernel_size``, ``padding=0``, ``ceil_mode=False``
``avg_pool2d``         ``kernel_size``, ``stride=kernel_size``, ``padding=0``, ``ceil_mode=False``,
                       ``count_include_pad=True``
``global_avg_pool2d``  no keys (the mean over height and width; output Cx1x1)
``batch_norm2d``       ``eps=1e-5``, ``momentum=0.1``, ``affine=True``
``relu``, ``tanh``,    no keys
``sigmoid``
``flatten``            no keys
``linear``             ``out_features`` (an integer or ``"num_classes"``), ``bias=True``
``dropout``            ``p=0.5``
=====================  ==================================================================

A JSON spec file is ``{"name": "...", "layers": [...]}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cnnkit._json import read_json
from cnnkit._validate import check_int
from cnnkit.errors import (
    InvalidArgument,
    InvalidType,
    ShapeError,
)
from cnnkit.layers import LAYER_TYPES, NUM_CLASSES, complete_layer, trace_layer
from cnnkit.shapes import parse_input_shape  # re-exported: its home is cnnkit.shapes

__all__ = [
    "ARCHITECTURES",
    "NUM_CLASSES",
    "Architecture",
    "LayerTrace",
    "format_summary",
    "load_architecture",
    "parse_input_shape",
    "trace",
]


#: The largest spec file read; real specs are a few hundred bytes.
MAX_SPEC_BYTES = 1 << 20


@dataclass(frozen=True)
class Architecture:
    """A named list of layer specs, each a dict with a ``type`` key and that type's keys.

    Layers are completed with their defaults and checked on construction.

    >>> arch = Architecture("tiny", [{"type": "flatten"}, {"type": "linear", "out_features": 3}])
    >>> arch.layers[1]
    {'type': 'linear', 'out_features': 3, 'bias': True}
    """

    name: str
    layers: tuple

    def __init__(self, name: str, layers: Sequence[Mapping[str, object]]) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidType(f"name must be a non-empty string, got {name!r}")
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
            raise InvalidArgument(f"layers must be a non-empty list of layer specs, got {layers!r}")
        completed = tuple(complete_layer(layer, index) for index, layer in enumerate(layers))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "layers", completed)

    def to_dict(self) -> dict:
        """The JSON-ready form ``{"name": ..., "layers": [...]}``."""
        return {"name": self.name, "layers": [dict(layer) for layer in self.layers]}


def _tutorial() -> Architecture:
    """The tutorial's multilayer CNN (99.14% on MNIST after 20 epochs).

    The spec names no input channels or sizes, so the same layers serve MNIST's 1×28×28 and
    CIFAR-10's 3×32×32 (RGB): there the first convolution takes 3 channels and the flatten
    gives 64×8×8 = 4,096 features.

    >>> rows = trace(_tutorial(), (3, 32, 32))
    >>> rows[0].arguments["in_channels"], rows[6].output_shape, sum(r.parameters for r in rows)
    (3, (4096,), 4259274)
    """
    return Architecture(
        "tutorial",
        [
            {"type": "conv2d", "out_channels": 32, "kernel_size": 5, "padding": 2},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": 2},
            {"type": "conv2d", "out_channels": 64, "kernel_size": 5, "padding": 2},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 1024},
            {"type": "relu"},
            {"type": "dropout", "p": 0.5},
            {"type": "linear", "out_features": NUM_CLASSES},
        ],
    )


#: Built-in architectures by name.
ARCHITECTURES = {"tutorial": _tutorial}


def load_architecture(source: str | os.PathLike | Mapping) -> Architecture:
    """An architecture from a built-in name, a JSON file path, or an already parsed dict.

    >>> load_architecture("tutorial").layers[0]["out_channels"]
    32
    """
    if isinstance(source, Mapping):
        return _from_dict(source, "the spec")
    if isinstance(source, str) and source in ARCHITECTURES:
        return ARCHITECTURES[source]()
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidType(f"arch must be a name, a path or a dict, got {type(source).__name__}")
    path = os.fspath(source)
    if not path.endswith(".json") and not os.path.exists(path):
        names = ", ".join(repr(n) for n in ARCHITECTURES)
        raise InvalidArgument(f"arch must be one of {names} or a .json spec file, got {path!r}")
    # A regular file only (a FIFO or a device would block or never end), bounded and typed.
    data = read_json(path, "arch file", max_bytes=MAX_SPEC_BYTES)
    return _from_dict(data, path)


def _from_dict(data: object, where: str) -> Architecture:
    if not isinstance(data, Mapping) or "layers" not in data:
        raise InvalidArgument(f"{where} must be a JSON object with a 'layers' list")
    return Architecture(str(data.get("name", "custom")), data["layers"])


@dataclass(frozen=True)
class LayerTrace:
    """One layer's place in a traced network.

    ``output_shape`` is ``(C, H, W)`` before a ``flatten`` and ``(features,)`` after it;
    ``formula`` shows how the shape (and the parameter count, when there are parameters) follow
    from the numbers; ``arguments`` are the constructor arguments of the layer's module (the same
    in ``torch.nn`` and :mod:`cnnkit.nn`), input channels and features included.
    """

    index: int
    type: str
    output_shape: tuple[int, ...]
    parameters: int
    formula: str
    arguments: dict = field(default_factory=dict, compare=False)


def trace(
    arch: Architecture, input_shape: Sequence[int], num_classes: int = 10
) -> list[LayerTrace]:
    """Follow the input shape through every layer; refuse a spec whose shapes do not fit.

    Parameters
    ----------
    arch : Architecture
        The network.
    input_shape : sequence of 3 ints
        ``(channels, height, width)`` of one input image.
    num_classes : int
        The value of ``out_features: "num_classes"``.

    Returns
    -------
    list of LayerTrace
        One entry per layer.

    Examples
    --------
    >>> rows = trace(load_architecture("tutorial"), (1, 28, 28))
    >>> rows[6].output_shape, sum(row.parameters for row in rows)
    ((3136,), 3274634)
    """
    if not isinstance(arch, Architecture):
        raise InvalidType(f"arch must be an Architecture, got {type(arch).__name__}")
    shape: tuple[int, ...] = parse_input_shape(input_shape)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    rows = []
    for index, layer in enumerate(arch.layers):
        kind = layer["type"]
        arguments, traced = trace_layer(
            LAYER_TYPES[kind], layer, shape, num_classes, f"layer {index} ({kind})"
        )
        rows.append(
            LayerTrace(index, kind, traced.shape, traced.parameters, traced.formula, arguments)
        )
        shape = traced.shape
    if len(shape) != 1:
        raise ShapeError(
            f"the network must end in a flat vector of class scores, but it ends with shape "
            f"{shape}; add flatten and linear layers"
        )
    if shape[0] != num_classes:
        raise ShapeError(
            f"the last layer gives {shape[0]} outputs but there are {num_classes} classes; use "
            f'"out_features": "num_classes" in the last linear layer'
        )
    return rows


def format_summary(
    arch: Architecture, input_shape: Sequence[int], num_classes: int = 10
) -> str:
    """A table with one row per layer: output shape, parameter count and formula, then totals.

    >>> print(format_summary(load_architecture("tutorial"), (1, 28, 28)).splitlines()[-1])
    total parameters: 3,274,634 (trainable 3,274,634)
    """
    input_shape = parse_input_shape(input_shape)
    rows = trace(arch, input_shape, num_classes)
    width = max(10, *(len(row.type) for row in rows))
    header = f"{'#':>2}  {'layer':<{width}}  {'output':<12}  {'params':>10}  formula"
    lines = [
        f"architecture {arch.name!r}, input {'x'.join(map(str, input_shape))}, "
        f"{num_classes} classes",
        header,
        "-" * len(header),
        f"{'':>2}  {'input':<{width}}  {'x'.join(map(str, input_shape)):<12}  {0:>10,}",
    ]
    for row in rows:
        shape_text = "x".join(str(n) for n in row.output_shape)
        lines.append(
            f"{row.index:>2}  {row.type:<{width}}  {shape_text:<12}  {row.parameters:>10,}  "
            f"{row.formula}".rstrip()
        )
    total = sum(row.parameters for row in rows)
    lines.append(f"total parameters: {total:,} (trainable {total:,})")
    return "\n".join(lines)
