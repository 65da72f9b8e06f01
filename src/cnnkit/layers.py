"""The layer registry: every layer type of an architecture spec, described once.

A :class:`LayerType` holds all that cnnkit knows about one ``"type"`` of a layer spec: its keys
and their defaults, the checks of their values, the constructor arguments of its module for a
given input shape (channels and feature counts are derived, never written in a spec), the output
shape (through :mod:`cnnkit.shapes`), the parameter count with the formula that
``cnnkit summary`` prints, and the name of its module class. :func:`cnnkit.arch.trace` is a loop
over :data:`LAYER_TYPES`, so adding a layer type is one entry here plus its NumPy layer.

The registry describes; it builds nothing and imports neither PyTorch nor :mod:`cnnkit.nn`. Each
engine builds its modules from the description: :func:`cnnkit.nn.build_model` calls
``cnnkit.nn.<module>(**arguments)`` with the ``factory`` keywords it fills in, and
:func:`cnnkit.engines.model.build_model` calls ``torch.nn.<module>(**arguments)`` (or, for the
``GlobalAvgPool2d`` that ``torch.nn`` lacks, its equivalent). Both module classes take the same
constructor arguments (PyTorch's names and defaults), so one ``arguments`` function serves both
engines.

>>> LAYER_TYPES["conv2d"].keys["stride"]
1
>>> sorted(LAYER_TYPES)[:3]
['avg_pool2d', 'batch_norm2d', 'conv2d']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cnnkit._validate import check_int
from cnnkit.errors import InvalidArgument, InvalidType, ShapeError
from cnnkit.shapes import explain_output_size, output_size

__all__ = [
    "LAYER_TYPES",
    "NUM_CLASSES",
    "REQUIRED",
    "LayerType",
    "Traced",
    "complete_layer",
    "trace_layer",
]

#: The value of ``out_features`` that stands for the number of classes of the data set.
NUM_CLASSES = "num_classes"

#: Marks a key without a default.
REQUIRED = "<required>"

#: Padding modes of a ``conv2d`` layer (those both engines have).
CONV_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class Traced:
    """What one layer does to the shape of one example, and what it costs in parameters."""

    shape: tuple[int, ...]
    parameters: int
    formula: str


@dataclass(frozen=True)
class LayerType:
    """One layer type of an architecture spec.

    ``arguments(spec, input_shape, num_classes)`` gives the constructor arguments of the module
    (the same for ``torch.nn.<module>`` and ``cnnkit.nn.<module>``); ``trace(arguments,
    input_shape)`` gives the :class:`Traced` output. ``needs`` is ``"image"`` for a CxHxW input,
    ``"flat"`` for a vector, ``""`` for any. ``module`` names the module class, and ``factory``
    the keywords of the NumPy layer that its model builder fills in (``generator``, ``dtype``);
    the engines build the modules (:mod:`cnnkit.nn.build`, :mod:`cnnkit.engines.model`).
    """

    name: str
    module: str
    keys: Mapping[str, object]
    arguments: Callable[[dict, tuple, int], dict]
    trace: Callable[[dict, tuple], Traced]
    check: Callable[[dict, str], None] = lambda spec, where: None
    needs: str = ""
    factory: tuple[str, ...] = ()


# --- checks of spec values ---------------------------------------------------------------------


def _check_bool(spec: dict, where: str, *keys: str) -> None:
    for key in keys:
        if not isinstance(spec[key], bool):
            raise InvalidType(f"{where} {key} must be true or false, got {spec[key]!r}")


def _check_positive(spec: dict, where: str, *keys: str) -> None:
    for key in keys:
        if spec[key] is not None:
            check_int(spec[key], f"{where} {key}", minimum=1)


def _check_conv(spec: dict, where: str) -> None:
    _check_positive(spec, where, "out_channels", "kernel_size", "stride", "dilation", "groups")
    check_int(spec["padding"], f"{where} padding", minimum=0)
    _check_bool(spec, where, "bias")
    if spec["padding_mode"] not in CONV_PADDING_MODES:
        allowed = ", ".join(repr(m) for m in CONV_PADDING_MODES)
        raise InvalidArgument(
            f"{where} padding_mode must be one of {allowed}, got {spec['padding_mode']!r}"
        )


def _check_pool(spec: dict, where: str) -> None:
    _check_positive(spec, where, "kernel_size", "stride")
    check_int(spec["padding"], f"{where} padding", minimum=0)
    _check_bool(spec, where, *(k for k in ("ceil_mode", "count_include_pad") if k in spec))


def _check_fraction(spec: dict, where: str, key: str, *, closed: bool) -> None:
    value = spec[key]
    is_number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (is_number and 0 <= value and (value <= 1 if closed else value < 1)):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise InvalidArgument(f"{where} {key} must be a number in {interval}, got {value!r}")


def _check_linear(spec: dict, where: str) -> None:
    if spec["out_features"] != NUM_CLASSES:
        check_int(spec["out_features"], f"{where} out_features", minimum=1)
    _check_bool(spec, where, "bias")


def _check_batch_norm(spec: dict, where: str) -> None:
    eps = spec["eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise InvalidArgument(f"{where} eps must be a positive number, got {eps!r}")
    if spec["momentum"] is not None:
        _check_fraction(spec, where, "momentum", closed=True)
    _check_bool(spec, where, "affine")


# --- shapes, parameter counts and formulas -----------------------------------------------------


def _window_sizes(arguments: dict, shape: tuple, dilation: int = 1) -> tuple[int, int]:
    kernel, padding = arguments["kernel_size"], arguments["padding"]
    stride = arguments["stride"] if arguments["stride"] is not None else kernel
    ceil_mode = arguments.get("ceil_mode", False)
    try:
        return tuple(
            output_size(n, kernel, stride, padding, dilation, ceil_mode) for n in shape[1:]
        )
    except ValueError as exc:
        raise ShapeError(f"does not fit its {shape[1]}x{shape[2]} input: {exc}") from None


def _explain(arguments: dict, shape: tuple, dilation: int = 1) -> str:
    kernel = arguments["kernel_size"]
    stride = arguments["stride"] if arguments["stride"] is not None else kernel
    return explain_output_size(
        shape[1], kernel, stride, arguments["padding"], dilation, arguments.get("ceil_mode", False)
    )


def _conv_arguments(spec: dict, shape: tuple, num_classes: int) -> dict:
    in_channels, groups = shape[0], spec["groups"]
    if in_channels % groups or spec["out_channels"] % groups:
        raise ShapeError(
            f"groups={groups} must divide both the input channels ({in_channels}) and "
            f"out_channels ({spec['out_channels']})"
        )
    return {"in_channels": in_channels, **{k: v for k, v in spec.items() if k != "type"}}


def _conv_trace(arguments: dict, shape: tuple) -> Traced:
    dilation = arguments["dilation"]
    height, width = _window_sizes(arguments, shape, dilation)
    out, kernel = arguments["out_channels"], arguments["kernel_size"]
    per_filter = arguments["in_channels"] // arguments["groups"]
    params = out * per_filter * kernel * kernel + (out if arguments["bias"] else 0)
    bias_text = f" + {out}" if arguments["bias"] else ""
    formula = (
        f"{_explain(arguments, shape, dilation)}; {out}*{per_filter}*{kernel}*{kernel}"
        f"{bias_text} = {params}"
    )
    return Traced((out, height, width), params, formula)


def _pool_arguments(spec: dict, shape: tuple, num_classes: int) -> dict:
    if 2 * spec["padding"] > spec["kernel_size"]:
        raise ShapeError(
            f"padding {spec['padding']} is more than half the kernel size {spec['kernel_size']}"
        )
    return {k: v for k, v in spec.items() if k != "type"}


def _pool_trace(arguments: dict, shape: tuple) -> Traced:
    height, width = _window_sizes(arguments, shape)
    return Traced((shape[0], height, width), 0, _explain(arguments, shape))


def _spec_arguments(spec: dict, shape: tuple, num_classes: int) -> dict:
    return {k: v for k, v in spec.items() if k != "type"}


def _same_shape(arguments: dict, shape: tuple) -> Traced:
    return Traced(shape, 0, "")


def _flatten_trace(arguments: dict, shape: tuple) -> Traced:
    features = math.prod(shape)
    return Traced((features,), 0, "*".join(str(n) for n in shape) + f" = {features}")


def _linear_arguments(spec: dict, shape: tuple, num_classes: int) -> dict:
    out = num_classes if spec["out_features"] == NUM_CLASSES else spec["out_features"]
    return {"in_features": shape[0], "out_features": out, "bias": spec["bias"]}


def _linear_trace(arguments: dict, shape: tuple) -> Traced:
    out, bias = arguments["out_features"], arguments["bias"]
    params = out * shape[0] + (out if bias else 0)
    bias_text = f" + {out}" if bias else ""
    return Traced((out,), params, f"{out}*{shape[0]}{bias_text} = {params}")


def _batch_norm_arguments(spec: dict, shape: tuple, num_classes: int) -> dict:
    return {"num_features": shape[0], **{k: v for k, v in spec.items() if k != "type"}}


def _batch_norm_trace(arguments: dict, shape: tuple) -> Traced:
    channels = shape[0]
    params = 2 * channels if arguments["affine"] else 0
    formula = f"2*{channels} = {params} (+ running mean and var)" if params else ""
    return Traced(shape, params, formula)


def _global_pool_trace(arguments: dict, shape: tuple) -> Traced:
    return Traced((shape[0], 1, 1), 0, f"mean over {shape[1]}x{shape[2]}")


def _activation(name: str, module: str) -> LayerType:
    return LayerType(name, module, {}, _spec_arguments, _same_shape)


#: Every layer type by its spec name. Defaults are those of ``torch.nn``.
LAYER_TYPES: dict[str, LayerType] = {
    layer.name: layer
    for layer in [
        LayerType(
            "conv2d",
            "Conv2d",
            {
                "out_channels": REQUIRED,
                "kernel_size": REQUIRED,
                "stride": 1,
                "padding": 0,
                "dilation": 1,
                "groups": 1,
                "bias": True,
                "padding_mode": "zeros",
            },
            _conv_arguments,
            _conv_trace,
            _check_conv,
            needs="image",
            factory=("generator", "dtype"),
        ),
        LayerType(
            "max_pool2d",
            "MaxPool2d",
            {"kernel_size": REQUIRED, "stride": None, "padding": 0, "ceil_mode": False},
            _pool_arguments,
            _pool_trace,
            _check_pool,
            needs="image",
        ),
        LayerType(
            "avg_pool2d",
            "AvgPool2d",
            {
                "kernel_size": REQUIRED,
                "stride": None,
                "padding": 0,
                "ceil_mode": False,
                "count_include_pad": True,
            },
            _pool_arguments,
            _pool_trace,
            _check_pool,
            needs="image",
        ),
        LayerType(
            "global_avg_pool2d",
            "GlobalAvgPool2d",
            {},
            _spec_arguments,
            _global_pool_trace,
            needs="image",
        ),
        LayerType(
            "batch_norm2d",
            "BatchNorm2d",
            {"eps": 1e-5, "momentum": 0.1, "affine": True},
            _batch_norm_arguments,
            _batch_norm_trace,
            _check_batch_norm,
            needs="image",
            factory=("dtype",),
        ),
        _activation("relu", "ReLU"),
        _activation("tanh", "Tanh"),
        _activation("sigmoid", "Sigmoid"),
        LayerType("flatten", "Flatten", {}, _spec_arguments, _flatten_trace),
        LayerType(
            "linear",
            "Linear",
            {"out_features": REQUIRED, "bias": True},
            _linear_arguments,
            _linear_trace,
            _check_linear,
            needs="flat",
            factory=("generator", "dtype"),
        ),
        LayerType(
            "dropout",
            "Dropout",
            {"p": 0.5},
            _spec_arguments,
            _same_shape,
            lambda spec, where: _check_fraction(spec, where, "p", closed=False),
            factory=("generator",),
        ),
    ]
}


def complete_layer(layer: object, index: int) -> dict:
    """Check one layer spec and fill in its defaults.

    >>> complete_layer({"type": "dropout"}, 0)
    {'type': 'dropout', 'p': 0.5}
    """
    where = f"layer {index}"
    if not isinstance(layer, Mapping):
        raise InvalidType(f"{where} must be a dict with a 'type' key, got {layer!r}")
    kind = layer.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        allowed = ", ".join(repr(k) for k in LAYER_TYPES)
        problem = "has no 'type' key" if "type" not in layer else f"has type {kind!r}"[:120]
        raise InvalidArgument(f"{where} {problem}; allowed types are {allowed}")
    keys = LAYER_TYPES[kind].keys
    unknown = sorted(set(layer) - set(keys) - {"type"})
    if unknown:
        allowed = ", ".join(keys) or "none"
        raise InvalidArgument(
            f"{where} ({kind}) has unknown keys {unknown}; allowed keys: {allowed}"
        )
    completed: dict[str, object] = {"type": kind}
    for key, default in keys.items():
        if key not in layer and default == REQUIRED:
            raise InvalidArgument(f"{where} ({kind}) needs the key {key!r}")
        completed[key] = layer.get(key, default)
    LAYER_TYPES[kind].check(completed, f"{where} ({kind})")
    return completed


def trace_layer(
    layer_type: LayerType, spec: dict, shape: tuple, num_classes: int, where: str
) -> tuple[dict, Traced]:
    """The module's constructor arguments and the traced output of one layer on ``shape``.

    A layer whose input does not fit is refused with a :class:`~cnnkit.errors.ShapeError` that
    starts with ``where``.
    """
    if layer_type.needs == "image" and len(shape) != 3:
        raise ShapeError(f"{where} needs a CxHxW input, got the flat shape {shape}")
    if layer_type.needs == "flat" and len(shape) != 1:
        raise ShapeError(
            f"{where} needs a flat input; add a flatten layer before it (input {shape})"
        )
    try:
        arguments = layer_type.arguments(spec, shape, num_classes)
        return arguments, layer_type.trace(arguments, shape)
    except ShapeError as exc:
        raise ShapeError(f"{where} {exc}") from None
