"""The computations behind the convolution playground, as JSON-ready dictionaries.

Every number here comes from cnnkit's own functions: the outputs from
:func:`cnnkit.correlate2d`, :func:`cnnkit.convolve2d`, :func:`cnnkit.ops.conv2d` and the pooling
functions, the padded input from :func:`cnnkit.ops.pad` with the padding that
:func:`cnnkit.shapes.resolve_padding` gives, and the formula from
:func:`cnnkit.shapes.explain_output_size`. The window of one output element is read from the
padded input at the positions the tutorial's loop visits (``start = index * stride``, then every
``dilation``-th element); its products and their sum are shown next to the output element that
the library computed, so the page shows the loop and its agreement with the fast path
(:func:`cnnkit.featuremaps.explain_window`, which also explains the maps of a trained network).

Requests are plain dictionaries (parsed JSON). Every value is checked here and a bad one raises
a :class:`cnnkit.errors.CnnkitError` whose message the page shows. Sizes are bounded so that no
request can make the server allocate much: images at most :data:`MAX_IMAGE_SIDE` pixels a side,
kernels at most :data:`MAX_KERNEL_SIDE`, and padding, stride and dilation at most
:data:`MAX_STEP`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument, InvalidType, TooLarge
from cnnkit.featuremaps import explain_window, rounded, window_slices
from cnnkit.filters import KERNEL_NAMES, SAMPLE_NAMES, kernel_parameters, make_kernel, sample_image
from cnnkit.imageio import to_uint8
from cnnkit.ops import (
    PADDING_MODES,
    avg_pool2d,
    conv2d,
    convolve1d,
    convolve2d,
    correlate1d,
    correlate2d,
    max_pool2d,
    pad,
)
from cnnkit.ops.pool import avg_pool2d_divisor
from cnnkit.pictures import png_data_uri
from cnnkit.shapes import PADDING_NAMES, explain_output_size, resolve_padding

__all__ = [
    "MAX_CHANNEL_FILTERS",
    "MAX_IMAGE_SIDE",
    "MAX_KERNEL_SIDE",
    "MAX_STEP",
    "OPERATIONS",
    "POOLS",
    "TUTORIAL_KERNEL",
    "TUTORIAL_SIGNAL",
    "convolution",
    "multichannel",
    "options",
    "pooling",
    "signal1d",
]

#: Largest side of a playground image (samples are made at most this large, uploads shrunk).
MAX_IMAGE_SIDE = 256
#: Largest side of a playground kernel.
MAX_KERNEL_SIDE = 15
#: Largest padding, stride or dilation.
MAX_STEP = 64
#: Largest number of filters in the multi-channel view.
MAX_CHANNEL_FILTERS = 8
#: Longest 1-D signal or kernel.
MAX_SIGNAL_LENGTH = 64
#: The two ways to slide a kernel; convolution flips it first.
OPERATIONS = ("correlate", "convolve")
#: Pooling kinds.
POOLS = ("max", "avg")
#: The tutorial's 1-D example.
TUTORIAL_SIGNAL = (1.0, 3.0, 2.0, 4.0, 5.0, 6.0, 1.0, 3.0)
TUTORIAL_KERNEL = (1.0, 0.0, 3.0, 1.0, 2.0)

_SIGNAL = {"correlate": correlate1d, "convolve": convolve1d}
_IMAGE = {"correlate": correlate2d, "convolve": convolve2d}


# --- Reading a request -----------------------------------------------------------------------


def _int(request: dict, key: str, default: int, *, minimum: int, maximum: int) -> int:
    value = check_int(request.get(key, default), key, minimum=minimum)
    if value > maximum:
        raise TooLarge(f"{key} must be at most {maximum} here, got {value}")
    return value


def _bool(request: dict, key: str, default: bool) -> bool:
    value = request.get(key, default)
    if not isinstance(value, bool):
        raise InvalidType(f"{key} must be true or false, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must hold finite numbers, got {value!r}")
    return float(value)


def _vector(value: object, name: str, *, maximum: int) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise InvalidType(f"{name} must be a non-empty list of numbers, got {value!r}")
    if len(value) > maximum:
        raise TooLarge(f"{name} may hold at most {maximum} numbers, got {len(value)}")
    return np.array([_number(v, name) for v in value])


def _matrix(value: object, name: str, *, maximum: int) -> np.ndarray:
    """A rectangular list of lists of finite numbers, at most ``maximum`` a side."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise InvalidType(f"{name} must be a non-empty list of rows of numbers, got {value!r}")
    rows = [_vector(row, name, maximum=maximum) for row in value]
    if len(rows) > maximum:
        raise TooLarge(f"{name} may have at most {maximum} rows, got {len(rows)}")
    if len({len(row) for row in rows}) != 1:
        raise InvalidArgument(
            f"{name} must be rectangular, got rows of lengths {[len(r) for r in rows]}")
    return np.stack(rows)


def _padding(request: dict, ndim: int) -> str | int | tuple[int, ...]:
    """'full', 'same', 'valid', a number per side, or one number per axis."""
    value = request.get("padding", "valid")
    if isinstance(value, str):
        return check_choice(value, "padding", PADDING_NAMES)
    if isinstance(value, list) and len(value) == ndim:
        return tuple(_int({"padding": v}, "padding", 0, minimum=0, maximum=MAX_STEP)
                     for v in value)
    if isinstance(value, list):
        raise InvalidArgument(
            f"padding must be 'full', 'same', 'valid', a number or {ndim} numbers, got {value!r}")
    return _int(request, "padding", 0, minimum=0, maximum=MAX_STEP)


def image_from(request: dict, uploads) -> np.ndarray:
    """The float64 grayscale image in [0, 1] a request names: a sample or an upload."""
    spec = request.get("image", {"sample": "grid", "size": 32})
    if not isinstance(spec, dict):
        raise InvalidType(f"image must be an object with 'sample' or 'upload', got {spec!r}")
    if "upload" in spec:
        return uploads.get(spec["upload"]).gray
    name = check_choice(spec.get("sample"), "image sample", SAMPLE_NAMES)
    size = _int(spec, "size", 32, minimum=4, maximum=MAX_IMAGE_SIDE)
    return sample_image(name, size)


def kernel_from(request: dict) -> np.ndarray:
    """A kernel by name (``{"name": "sobel-x", "params": {...}}``) or by its weights.

    Only names and numbers are accepted: a text that :func:`cnnkit.filters.parse_kernel` would
    read as a file name never reaches it.
    """
    spec = request.get("kernel", {"name": "sobel-x"})
    if not isinstance(spec, dict):
        raise InvalidType(f"kernel must be an object with 'name' or 'weights', got {spec!r}")
    if "weights" in spec:
        return _matrix(spec["weights"], "kernel weights", maximum=MAX_KERNEL_SIDE)
    name = check_choice(spec.get("name"), "kernel name", KERNEL_NAMES)
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise InvalidType(f"kernel params must be an object, got {params!r}")
    allowed = kernel_parameters(name)
    for key, value in params.items():
        if key not in allowed:
            raise InvalidArgument(
                f"kernel {name!r} takes {', '.join(allowed) or 'no parameters'}, got {key!r}")
        if key in ("size", "radius") and isinstance(value, int) and value > MAX_KERNEL_SIDE:
            raise TooLarge(f"kernel {key} must be at most {MAX_KERNEL_SIDE} here, got {value}")
    kernel = make_kernel(name, **params)
    if max(kernel.shape) > MAX_KERNEL_SIDE:
        raise TooLarge(
            f"kernel {name!r} with {params} is {kernel.shape[0]}×{kernel.shape[1]}, larger than "
            f"{MAX_KERNEL_SIDE}×{MAX_KERNEL_SIDE}; choose smaller parameters")
    return kernel


# --- Pictures --------------------------------------------------------------------------------


def picture(values: np.ndarray, method: str = "rescale") -> str:
    """A 2-D array as a PNG data URI through :func:`cnnkit.imageio.to_uint8`."""
    return png_data_uri(to_uint8(values, method))


def _formula(shape: tuple[int, ...], kernel_shape: tuple[int, ...], strides, pads, dilations,
             ceil_mode: bool = False) -> list[str]:
    return [explain_output_size(n, k, s, p, d, ceil_mode)
            for n, k, s, p, d in zip(shape, kernel_shape, strides, pads, dilations)]


def _pixel(request: dict, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    value = request.get("pixel")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != len(shape):
        raise InvalidArgument(f"pixel must be a list of {len(shape)} indices, got {value!r}")
    for position, (axis_index, size) in enumerate(zip(value, shape)):
        check_int(axis_index, "pixel", minimum=0)
        if axis_index >= size:
            raise InvalidArgument(
                f"pixel index {axis_index} on axis {position} is outside the output "
                f"({size} long)")
    return tuple(value)


# --- The views -------------------------------------------------------------------------------


def options() -> dict:
    """The choices the pages offer, from cnnkit's own lists."""
    return {
        "samples": list(SAMPLE_NAMES),
        "kernels": {name: list(kernel_parameters(name)) for name in KERNEL_NAMES},
        "operations": list(OPERATIONS),
        "paddings": list(PADDING_NAMES),
        "padding_modes": list(PADDING_MODES),
        "pools": list(POOLS),
        "limits": {"image_side": MAX_IMAGE_SIDE, "kernel_side": MAX_KERNEL_SIDE,
                   "step": MAX_STEP, "filters": MAX_CHANNEL_FILTERS,
                   "signal_length": MAX_SIGNAL_LENGTH},
        "tutorial_signal": {"x": list(TUTORIAL_SIGNAL), "kernel": list(TUTORIAL_KERNEL)},
    }


def _sliding(request: dict, ndim: int):
    operation = check_choice(request.get("operation", "correlate"), "operation", OPERATIONS)
    padding_mode = check_choice(request.get("padding_mode", "zeros"), "padding_mode",
                                PADDING_MODES)
    stride = _int(request, "stride", 1, minimum=1, maximum=MAX_STEP)
    dilation = _int(request, "dilation", 1, minimum=1, maximum=MAX_STEP)
    return operation, padding_mode, (stride,) * ndim, (dilation,) * ndim


def convolution(request: dict, uploads) -> dict:
    """One image and one kernel: the output, its size formula and (optionally) one element.

    ``request``: ``image``, ``kernel``, ``operation`` ('correlate' or 'convolve'), ``padding``
    ('full', 'same', 'valid', a number or ``[rows, columns]``), ``padding_mode``, ``stride``,
    ``dilation`` and optionally ``pixel`` ``[row, column]`` of the output to explain.
    """
    image = image_from(request, uploads)
    kernel = kernel_from(request)
    operation, padding_mode, strides, dilations = _sliding(request, 2)
    padding = _padding(request, 2)
    output = _IMAGE[operation](image, kernel, padding, padding_mode=padding_mode,
                               stride=strides, dilation=dilations)
    flip = operation == "convolve"
    pads = resolve_padding(padding, kernel.shape, stride=strides, dilation=dilations,
                           extra_before=flip)
    applied = np.flip(kernel) if flip else kernel
    result = {
        "operation": operation,
        "input": {"shape": list(image.shape), "png": picture(image, "clip")},
        "padded": {"shape": [n + b + a for n, (b, a) in zip(image.shape, pads)],
                   "pads": [list(p) for p in pads]},
        "kernel": {"weights": rounded(kernel), "applied": rounded(applied), "flipped": flip},
        "output": {"shape": list(output.shape), "png": picture(output),
                   "min": float(output.min()), "max": float(output.max())},
        "formula": _formula(image.shape, kernel.shape, strides, pads, dilations),
    }
    pixel = _pixel(request, output.shape)
    if pixel is not None:
        padded = pad(image, pads, padding_mode)
        result["pixel"] = explain_window(padded, applied, pixel, strides, dilations,
                                           output[pixel], [b for b, _ in pads])
    return result


def signal1d(request: dict) -> dict:
    """The 1-D view: one signal and kernel under 'full', 'same' and 'valid' padding (or a number),
    every output element with its window, products and sum."""
    x = _vector(request.get("x", list(TUTORIAL_SIGNAL)), "x", maximum=MAX_SIGNAL_LENGTH)
    kernel = _vector(request.get("kernel", list(TUTORIAL_KERNEL)), "kernel",
                     maximum=MAX_SIGNAL_LENGTH)
    operation, padding_mode, strides, dilations = _sliding(request, 1)
    paddings = request.get("paddings", list(PADDING_NAMES[::-1]))
    if not isinstance(paddings, list) or not paddings or len(paddings) > 8:
        raise InvalidArgument(f"paddings must be a list of 1 to 8 paddings, got {paddings!r}")
    flip = operation == "convolve"
    applied = np.flip(kernel) if flip else kernel
    modes = []
    for padding in (_padding({"padding": p}, 1) for p in paddings):
        output = _SIGNAL[operation](x, kernel, padding, padding_mode=padding_mode,
                                    stride=strides[0], dilation=dilations[0])
        pads = resolve_padding(padding, kernel.shape, stride=strides, dilation=dilations,
                               extra_before=flip)
        padded = pad(x, pads, padding_mode)
        modes.append({
            "padding": padding,
            "pads": list(pads[0]),
            "padded": rounded(padded),
            "output": rounded(output),
            "formula": _formula(x.shape, kernel.shape, strides, pads, dilations)[0],
            "elements": [explain_window(padded, applied, (i,), strides, dilations,
                                          output[i], [pads[0][0]])
                         for i in range(len(output))],
        })
    return {"operation": operation, "x": rounded(x), "kernel": rounded(kernel),
            "applied": rounded(applied), "modes": modes}


def _three_channels(request: dict, uploads) -> np.ndarray:
    """``(3, H, W)``: an upload's red, green and blue, or three samples."""
    spec = request.get("image")
    if isinstance(spec, dict) and "upload" in spec:
        return uploads.get(spec["upload"]).rgb.transpose(2, 0, 1)
    names = request.get("channels", ["grid", "circles", "gradient"])
    if not isinstance(names, list) or len(names) != 3:
        raise InvalidArgument(f"channels must name three samples, got {names!r}")
    size = _int(request, "size", 32, minimum=4, maximum=MAX_IMAGE_SIDE)
    return np.stack([sample_image(check_choice(name, "channel sample", SAMPLE_NAMES), size)
                     for name in names])


def multichannel(request: dict, uploads) -> dict:
    """Three channels into several filters: each filter's three per-channel correlations, their
    sum, the bias, and the layer's output from :func:`cnnkit.ops.conv2d`.

    ``weight`` ``(filters, 3, k, k)`` and ``bias`` ``(filters,)`` may be given; otherwise they are
    drawn from ``seed`` with PyTorch's default scale (uniform in ±1/sqrt(3·k·k)).
    """
    images = _three_channels(request, uploads)
    filters = _int(request, "filters", 2, minimum=1, maximum=MAX_CHANNEL_FILTERS)
    size = _int(request, "kernel_size", 3, minimum=1, maximum=MAX_KERNEL_SIDE)
    seed = _int(request, "seed", 0, minimum=0, maximum=2**32 - 1)
    _, padding_mode, strides, dilations = _sliding(request, 2)
    padding = _padding(request, 2)
    generator = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(3 * size * size)
    if "weight" in request:
        weight = request["weight"]
        if not isinstance(weight, list) or not 1 <= len(weight) <= MAX_CHANNEL_FILTERS:
            raise InvalidArgument(
                f"weight must be a list of 1 to {MAX_CHANNEL_FILTERS} filters, got {weight!r}")
        weight = np.stack([
            np.stack([_matrix(kernel, "weight", maximum=MAX_KERNEL_SIDE) for kernel in f])
            if isinstance(f, list) and len(f) == 3 else _bad_filter(f) for f in weight])
    else:
        weight = generator.uniform(-bound, bound, (filters, 3, size, size))
    bias = (_vector(request["bias"], "bias", maximum=MAX_CHANNEL_FILTERS) if "bias" in request
            else generator.uniform(-bound, bound, len(weight)))
    if bias.shape != (len(weight),):
        raise InvalidArgument(f"bias must hold one number per filter ({len(weight)}), got "
                              f"{len(bias)}")
    output = conv2d(images, weight, bias, stride=strides, padding=padding,
                    dilation=dilations, padding_mode=padding_mode)
    pads = resolve_padding(padding, weight.shape[2:], stride=strides, dilation=dilations)
    result_filters = []
    for index, (kernels, offset) in enumerate(zip(weight, bias)):
        parts = [correlate2d(channel, kernel, pads, padding_mode=padding_mode, stride=strides,
                             dilation=dilations) for channel, kernel in zip(images, kernels)]
        total = np.sum(parts, axis=0)
        result_filters.append({
            "weights": rounded(kernels),
            "bias": float(offset),
            "parts": [picture(part) for part in parts],
            "sum": picture(total),
            "output": picture(output[index]),
            # The layer's output against the per-channel sums plus bias (rounding only).
            "difference": float(np.abs(output[index] - (total + offset)).max()),
        })
    return {
        "channels": [picture(channel, "clip") for channel in images],
        "input_shape": list(images.shape),
        "output_shape": list(output.shape),
        "formula": _formula(images.shape[1:], weight.shape[2:], strides, pads, dilations),
        "filters": result_filters,
    }


def _bad_filter(value: object):
    raise InvalidArgument(f"each filter of weight must be 3 kernels (one per channel), got "
                          f"{value!r}")


def pooling(request: dict, uploads) -> dict:
    """Max or average pooling of an image: the output, the size formula and one window.

    ``request``: ``image``, ``kind`` ('max' or 'avg'), ``kernel_size``, ``stride`` (default: the
    kernel size, as in PyTorch), ``padding``, ``ceil_mode``, ``count_include_pad`` and
    optionally ``pixel``.
    """
    image = image_from(request, uploads)
    kind = check_choice(request.get("kind", "max"), "kind", POOLS)
    size = _int(request, "kernel_size", 2, minimum=1, maximum=MAX_KERNEL_SIDE)
    stride = (size if request.get("stride") is None
              else _int(request, "stride", size, minimum=1, maximum=MAX_STEP))
    padding = _int(request, "padding", 0, minimum=0, maximum=MAX_STEP)
    ceil_mode = _bool(request, "ceil_mode", False)
    include_pad = _bool(request, "count_include_pad", True)
    batch = image[np.newaxis]
    if kind == "max":
        output, chosen = max_pool2d(batch, size, stride, padding, ceil_mode=ceil_mode,
                                    return_indices=True)
    else:
        output = avg_pool2d(batch, size, stride, padding, ceil_mode=ceil_mode,
                            count_include_pad=include_pad)
    output = output[0]
    pads = ((padding, padding),) * 2
    result = {
        "kind": kind,
        "stride": stride,
        "input": {"shape": list(image.shape), "png": picture(image, "clip")},
        "output": {"shape": list(output.shape), "png": picture(output, "clip"),
                   "min": float(output.min()), "max": float(output.max())},
        "formula": _formula(image.shape, (size, size), (stride, stride), pads, (1, 1),
                            ceil_mode),
    }
    pixel = _pixel(request, output.shape)
    if pixel is not None:
        padded = pad(image, pads, fill=np.nan)  # NaN marks padding in the window shown
        window = padded[window_slices(pixel, (size, size), (stride, stride), (1, 1))]
        start = [i * stride for i in pixel]
        explained = {"index": list(pixel), "start": start, "origin": [padding, padding],
                     "window": [[None if np.isnan(v) else v for v in row] for row in
                                rounded(window)],
                     "value": float(output[pixel])}
        if kind == "max":
            flat = int(chosen[0][pixel])
            explained["chosen"] = [flat // image.shape[1], flat % image.shape[1]]
        else:
            divisor = avg_pool2d_divisor(batch[np.newaxis], size, stride, padding, ceil_mode,
                                         include_pad)
            explained["sum"] = float(np.nansum(window))
            explained["divisor"] = float(divisor[pixel])
        result["pixel"] = explained
    return result
