"""One feature map of a trained network, followed back one layer: what made it, and how each of
its pixels is computed.

A feature map is channel ``c`` of the output of a layer with maps ``(C, H, W)``. Its
:class:`MapStep` says how that layer makes its maps from its input (the output of the layer
before, or the image for the first layer):

``convolution``
    filter ``c`` slides one kernel over each of its input channels (cross-correlation, as
    PyTorch's ``Conv2d``), sums the results and adds its bias;
``relu``, ``tanh``, ``sigmoid``
    the activation applied to map ``c`` of the input, pixel by pixel;
``max``, ``avg``
    pooling of map ``c`` of the input (padding counts as -inf for the maximum; the average
    divides as PyTorch does, :func:`cnnkit.ops.pool.avg_pool2d_divisor`);
``mean``
    global average pooling: the mean of map ``c``;
``batch_norm``
    ``scale * x + shift`` per channel, from the running statistics and the affine weights;
``identity``
    dropout, which does nothing at evaluation.

:func:`explain_pixel` writes one output pixel out as the tutorial's loop computes it: the window
of the padded input that the loop visits (``start = index * stride``, then every
``dilation``-th element), padding marked, the products and their sum (or the maximum, or the
mean), in float64, next to the value the network computed, so that a view shows that the two
agree. The convolution playground of ``cnnkit serve`` explains its elements with the same
helpers (:func:`window_slices`, :func:`explain_window`). :func:`map_detail` gathers everything a
view shows of one map of one image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnkit.errors import InvalidArgument
from cnnkit.model import TrainedModel
from cnnkit.ops import pad
from cnnkit.ops.pool import avg_pool2d_divisor
from cnnkit.pictures import coloured, flat_map, png_data_uri

__all__ = [
    "OPERATIONS",
    "ROUNDING",
    "MapStep",
    "explain_pixel",
    "explain_window",
    "map_detail",
    "map_steps",
    "rounded",
    "window_slices",
    "written_sum",
]

#: How a layer makes its maps from its input, by layer kind.
OPERATIONS = {"conv2d": "convolution", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
              "max_pool2d": "max", "avg_pool2d": "avg", "global_avg_pool2d": "mean",
              "batch_norm2d": "batch_norm", "dropout": "identity"}

#: How far the network's float32 value may lie from the float64 formula, relative to the size
#: of the terms summed: float32 keeps about 7 significant digits, and engines sum in their own
#: order.
ROUNDING = 1e-5

_ACTIVATIONS = {"relu": lambda x: max(0.0, x), "tanh": math.tanh,
                "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "identity": lambda x: x}


def rounded(values: np.ndarray) -> list:
    """An array as nested lists of float64 numbers rounded to 10 decimals (JSON's form)."""
    return np.round(np.asarray(values, np.float64), 10).tolist()


# --- One window, the tutorial's loop -----------------------------------------------------------


def window_slices(index: Sequence[int], kernel_shape: Sequence[int], strides: Sequence[int],
                  dilations: Sequence[int]) -> tuple[slice, ...]:
    """The positions of the padded input that output element ``index`` reads.

    >>> window_slices((2,), (3,), (2,), (1,))
    (slice(4, 7, 1),)
    """
    return tuple(slice(i * s, i * s + d * (k - 1) + 1, d)
                 for i, k, s, d in zip(index, kernel_shape, strides, dilations))


def _short(value: float) -> str:
    """A number in at most 6 significant digits, in parentheses when negative."""
    text = f"{value:.6g}"
    return f"({text})" if value < 0 else text


def written_sum(window: np.ndarray, kernel: np.ndarray) -> str:
    """``a×b + c×d + ...``: the sum written out, numbers as short as they are exact.

    >>> written_sum(np.array([1.0, -2.0]), np.array([0.5, 3.0]))
    '1×0.5 + (-2)×3'
    """
    return " + ".join(f"{_short(a)}×{_short(b)}" for a, b in zip(window.ravel(), kernel.ravel()))


def explain_window(padded: np.ndarray, kernel: np.ndarray, index: Sequence[int],
                   strides: Sequence[int], dilations: Sequence[int], value: float,
                   origin: Sequence[int]) -> dict:
    """One output element of a correlation of ``padded`` with ``kernel`` (as applied), written
    out: its window, the products, their sum and the ``value`` a library computed there.

    ``origin`` is where the unpadded input starts in ``padded``.
    """
    window = padded[window_slices(index, kernel.shape, strides, dilations)]
    products = window * kernel
    return {
        "index": list(index),
        "start": [i * s for i, s in zip(index, strides)],  # in the padded input
        "origin": list(origin),
        "window": rounded(window),
        "kernel": rounded(kernel),
        "products": rounded(products),
        "sum": float(products.sum()),
        "expression": written_sum(window, kernel),
        "value": float(value),
    }


# --- What makes a layer's maps ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MapStep:
    """How layer ``layer`` makes its maps from its input (see the module's notes).

    ``source`` is the index of the layer whose output is the input, -1 for the image.
    ``pads`` are ``((top, bottom), (left, right))``. A convolution has ``weight``
    ``(out, in / groups, kh, kw)`` and ``bias``; a batch normalisation ``scale`` and ``shift``.
    """

    layer: int
    name: str
    kind: str
    operation: str
    source: int
    source_name: str
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    dilation: tuple[int, int] = (1, 1)
    padding_mode: str = "zeros"
    ceil_mode: bool = False
    count_include_pad: bool = True
    groups: int = 1
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None

    def input_channels(self, channel: int, in_channels: int) -> list[int]:
        """The channels of the input that map ``channel`` is made from."""
        if self.operation == "convolution":
            per_group = in_channels // self.groups
            group = channel // (len(self.weight) // self.groups)
            return list(range(group * per_group, (group + 1) * per_group))
        return [channel]

    def describe(self, channel: int) -> str:
        """``relu2 map 5 = max(0, conv2 map 5)``: the map as a formula of its input."""
        target, source = f"{self.name} map {channel}", f"{self.source_name} map {channel}"
        if self.operation == "convolution":
            size, bias = "×".join(map(str, self.kernel_size)), f"{self.bias[channel]:.4g}"
            if self.weight.shape[1] == 1:
                only = self.input_channels(channel, self.groups)[0]
                source = ("the input" if self.source < 0 and self.groups == 1
                          else f"{self.source_name} map {only}")
                return f"{target} = {source} ⋆ kernel {channel} ({size}) + bias {bias}"
            return (f"{target} = Σ over the {self.weight.shape[1]} {self.source_name} maps c "
                    f"of ({self.source_name} map c ⋆ kernel {channel},c ({size})) + bias {bias}")
        formulas = {"relu": f"max(0, {source})", "tanh": f"tanh({source})",
                    "sigmoid": f"1 / (1 + exp(−{source}))",
                    "max": f"the maximum of each {self._window()} of {source}",
                    "avg": f"the mean of each {self._window()} of {source}",
                    "mean": f"the mean of {source}", "identity": f"{source} (dropout is "
                    "off at evaluation)",
                    "batch_norm": f"{source} × {self.scale[channel]:.4g} + "
                                  f"{self.shift[channel]:.4g}" if self.scale is not None else ""}
        return f"{target} = {formulas[self.operation]}"

    def _window(self) -> str:
        (top, _), (left, _) = self.pads
        padding = f", padding {top}" if top or left else ""
        return (f"{self.kernel_size[0]}×{self.kernel_size[1]} window (stride "
                f"{self.stride[0]}{padding})")

    def to_json(self) -> dict:
        """The step's numbers, JSON-ready (weights rounded to 10 decimals)."""
        return {"layer": self.layer, "name": self.name, "kind": self.kind,
                "operation": self.operation, "source": self.source,
                "source_name": self.source_name, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "pads": [list(p) for p in self.pads],
                "dilation": list(self.dilation), "padding_mode": self.padding_mode,
                "ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad,
                "groups": self.groups}


def map_steps(model: TrainedModel) -> dict[int, MapStep]:
    """The :class:`MapStep` of every layer with feature maps, by layer index."""
    info = model.info
    weights = model.network.weights()
    names = info.names
    steps = {}
    for index in info.spatial_layers:
        row = info.layers[index]
        arguments = row.arguments
        common = {"layer": index, "name": names[index], "kind": row.type,
                  "operation": OPERATIONS[row.type], "source": index - 1,
                  "source_name": names[index - 1] if index else "input"}
        if "kernel_size" in arguments:
            size = arguments["kernel_size"]
            padding = arguments.get("padding", 0)
            stride = arguments.get("stride") or size
            common.update(kernel_size=(size, size), stride=(stride, stride),
                          pads=((padding, padding),) * 2,
                          dilation=(arguments.get("dilation", 1),) * 2,
                          ceil_mode=bool(arguments.get("ceil_mode", False)),
                          count_include_pad=bool(arguments.get("count_include_pad", True)))
        if row.type == "conv2d":
            weight = np.asarray(weights[f"{index}.weight"], np.float64)
            bias = weights.get(f"{index}.bias")
            steps[index] = MapStep(
                **common, padding_mode=arguments.get("padding_mode", "zeros"),
                groups=arguments.get("groups", 1), weight=weight,
                bias=np.zeros(len(weight)) if bias is None else np.asarray(bias, np.float64))
        elif row.type == "batch_norm2d":
            mean = np.asarray(weights[f"{index}.running_mean"], np.float64)
            variance = np.asarray(weights[f"{index}.running_var"], np.float64)
            scale = 1.0 / np.sqrt(variance + arguments.get("eps", 1e-5))
            gamma = weights.get(f"{index}.weight")
            beta = weights.get(f"{index}.bias")
            if gamma is not None:
                scale = scale * np.asarray(gamma, np.float64)
            shift = -mean * scale + (0.0 if beta is None else np.asarray(beta, np.float64))
            steps[index] = MapStep(**common, scale=scale, shift=shift)
        else:
            steps[index] = MapStep(**common)
    return steps


# --- One pixel, written out --------------------------------------------------------------------


def _window_of(values: np.ndarray, step: MapStep, index: tuple[int, int],
               fill: float) -> tuple[np.ndarray, np.ndarray]:
    """The window of ``values`` (H, W) that output ``index`` reads, padded by the step's padding
    mode (or ``fill`` for pooling), and a mask of the cells outside the input.

    A pooling window of ``ceil_mode`` may reach past the right padding: those cells are
    ``fill`` and marked too.
    """
    values = np.asarray(values, np.float64)
    (top, bottom), (left, right) = step.pads
    reach = [i * s + d * (k - 1) + 1 for i, s, d, k in
             zip(index, step.stride, step.dilation, step.kernel_size)]
    beyond = [max(0, r - (n + b + a)) for r, n, (b, a) in zip(reach, values.shape, step.pads)]
    if step.operation == "convolution":
        padded = pad(values, step.pads, step.padding_mode)
    else:
        padded = pad(values, ((top, bottom + beyond[0]), (left, right + beyond[1])), fill=fill)
    slices = window_slices(index, step.kernel_size, step.stride, step.dilation)
    inside = np.zeros(padded.shape, bool)
    inside[top:top + values.shape[0], left:left + values.shape[1]] = True
    return padded[slices], ~inside[slices]


def explain_pixel(step: MapStep, inputs: np.ndarray, output: np.ndarray, channel: int,
                  pixel: Sequence[int]) -> dict:
    """Output pixel ``pixel`` of map ``channel`` written out as the tutorial computes it.

    Parameters
    ----------
    step : MapStep
        The layer.
    inputs : numpy.ndarray
        The layer's input for one image, ``(C_in, H, W)``.
    output : numpy.ndarray
        The layer's output for the same image, ``(C, H_out, W_out)``.

    Returns
    -------
    dict
        ``index``, ``start`` (the window's first position in the padded input) and ``origin``
        (where the input starts in it), ``padding`` (a mask of the window's cells that are
        padding), then by operation: a convolution's ``channels`` (each input channel's
        ``window``, ``kernel``, ``products``, ``sum`` and ``expression``) and ``bias``; a
        pooling's ``window`` (None for padding), ``chosen`` (the maximum's cell) or ``sum``
        and ``divisor``; a global mean's ``sum`` and ``divisor``; an activation's or batch
        normalisation's ``source`` value. Always ``computed`` (the formula's result in
        float64), ``value`` (what the network computed), ``tolerance`` (:data:`ROUNDING`
        times the size of the terms: how far float32 rounding may move the value) and
        ``expression``.
    """
    if not isinstance(pixel, (list, tuple)) or len(pixel) != 2:
        raise InvalidArgument(f"pixel must be [row, column], got {pixel!r}")
    channel = _check_index(channel, len(output), "channel")
    index = tuple(_check_index(i, n, "pixel") for i, n in zip(pixel, output.shape[1:]))
    value = float(output[channel][index])
    result = {"index": list(index),
              "start": [i * s for i, s in zip(index, step.stride)],
              "origin": [b for b, _ in step.pads], "value": value}
    operation = step.operation
    if operation == "convolution":
        channels, mask, magnitude = [], None, abs(float(step.bias[channel]))
        for source in step.input_channels(channel, len(inputs)):
            kernel = step.weight[channel, source % step.weight.shape[1]]
            window, mask = _window_of(inputs[source], step, index, 0.0)
            products = window * kernel
            magnitude += float(np.abs(products).sum())
            channels.append({"channel": source, "window": rounded(window),
                             "kernel": rounded(kernel), "products": rounded(products),
                             "sum": float(products.sum()),
                             "expression": written_sum(window, kernel)})
        bias = float(step.bias[channel])
        computed = math.fsum(part["sum"] for part in channels) + bias
        parts = " + ".join(_short(part["sum"]) for part in channels)
        result.update(padding=mask.tolist(), channels=channels, bias=bias,
                      expression=f"{parts} + bias {_short(bias)} = {computed:.6g}")
    elif operation in ("max", "avg"):
        window, mask = _window_of(inputs[channel], step, index, np.nan)
        cells = [[None if np.isnan(v) else v for v in row] for row in rounded(window)]
        result.update(padding=mask.tolist(), window=cells)
        if operation == "max":
            chosen = np.unravel_index(np.nanargmax(window), window.shape)
            computed = magnitude = float(window[chosen])
            result.update(chosen=[int(i) for i in chosen],
                          expression=f"max of the {int((~np.isnan(window)).sum())} input "
                                     f"values = {computed:.6g}")
        else:
            divisor = float(avg_pool2d_divisor(
                inputs[np.newaxis, :1], step.kernel_size[0], step.stride[0], step.pads[0][0],
                step.ceil_mode, step.count_include_pad)[index])
            total = float(np.nansum(window))
            computed, magnitude = total / divisor, float(np.nansum(np.abs(window))) / divisor
            result.update(sum=total, divisor=divisor,
                          expression=f"{total:.6g} / {divisor:g} = {computed:.6g}")
    elif operation == "mean":
        values = inputs[channel].astype(np.float64)
        total = float(values.sum())
        computed, magnitude = total / values.size, float(np.abs(values).mean())
        result.update(sum=total, divisor=float(values.size),
                      expression=f"{total:.6g} / {values.size} = {computed:.6g}")
    else:
        source = float(inputs[channel][index])
        if operation == "batch_norm":
            scale, shift = float(step.scale[channel]), float(step.shift[channel])
            computed = source * scale + shift
            magnitude = abs(source * scale) + abs(shift)
            expression = f"{_short(source)} × {_short(scale)} + {_short(shift)} = {computed:.6g}"
        else:
            computed, magnitude = _ACTIVATIONS[operation](source), abs(source)
            written = {"relu": f"max(0, {source:.6g})", "tanh": f"tanh({source:.6g})",
                       "sigmoid": f"1 / (1 + exp(−({source:.6g})))",
                       "identity": f"{source:.6g}"}[operation]
            expression = f"{written} = {computed:.6g}"
        result.update(source=source, expression=expression)
    result.update(computed=computed, tolerance=ROUNDING * max(magnitude, abs(value)))
    return result


def _check_index(value: object, size: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
        0 <= value < size
    ):
        raise InvalidArgument(f"{name} must be an index from 0 to {size - 1}, got {value!r}")
    return int(value)


# --- Everything a view shows of one map ----------------------------------------------------------


def _picture(values: np.ndarray) -> dict:
    """A map on its own colour scale (viridis), or the note that it is flat."""
    low, high = float(values.min()), float(values.max())
    return {"png": png_data_uri(coloured(values, "viridis", low, high)), "min": low, "max": high,
            "flat": flat_map(values)}


def map_detail(model: TrainedModel, inputs: np.ndarray, layer: int, channel: int,
               pixel: Sequence[int] | None = None) -> dict:
    """What a view shows of map ``channel`` of layer ``layer`` for one normalised image.

    ``inputs`` is ``(1, C, H, W)``. The answer holds the step (:meth:`MapStep.to_json`), the
    map's ``name`` and formula (``text``), its picture and range (``map``), the input maps it is
    made from (``sources``), for a convolution the ``kernels`` of the filter (one per input
    channel, their sum and the bias), for a batch normalisation its ``scale`` and ``shift``,
    and with ``pixel`` the pixel written out (:func:`explain_pixel`).
    """
    layer = model.info.check_map_layer(layer)
    step = map_steps(model)[layer]
    keep = [layer] if step.source < 0 else [step.source, layer]
    outputs, _ = model.layer_outputs(inputs, keep)
    source = np.asarray(inputs[0] if step.source < 0 else outputs[step.source][0])
    output = outputs[layer][0]
    channel = _check_index(channel, len(output), "channel")
    channels = step.input_channels(channel, len(source))
    detail = {**step.to_json(), "channel": channel, "channels": len(output),
              "shape": list(output.shape[1:]), "source_shape": list(source.shape[1:]),
              "text": step.describe(channel),
              "map": _picture(output[channel]),
              "sources": [{"channel": c, **_picture(source[c])} for c in channels]}
    if step.operation == "convolution":
        kernels = step.weight[channel]
        detail["kernels"] = {"weights": rounded(kernels), "sum": rounded(kernels.sum(axis=0)),
                             "bias": float(step.bias[channel]), "channels": channels}
    if step.operation == "batch_norm":
        detail.update(scale=float(step.scale[channel]), shift=float(step.shift[channel]))
    if pixel is not None:
        detail["pixel"] = explain_pixel(step, source, output, channel, pixel)
    return detail
