"""The output-size formula, padding resolution and shape helpers.

Every function in cnnkit that slides a window computes its output size here, so the formula lives
in exactly one place::

    o = floor((n + p_before + p_after - dilation*(k - 1) - 1) / stride) + 1

which, for symmetric padding ``p`` and dilation 1, is the familiar ``floor((n + 2p - m)/s) + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnkit._validate import check_choice, check_int, int_tuple
from cnnkit.errors import InvalidArgument

__all__ = [
    "PADDING_NAMES",
    "explain_output_size",
    "output_shape",
    "output_size",
    "parse_input_shape",
    "resolve_padding",
]

#: Padding given by name. ``'same'`` needs stride 1.
PADDING_NAMES = ("valid", "same", "full")


def _named_padding(
    name: str, kernel_size: int, dilation: int, stride: int, *, extra_before: bool
) -> tuple[int, int]:
    """(before, after) for a padding name; ``extra_before`` puts the odd element first."""
    check_choice(name, "padding", PADDING_NAMES)
    span = dilation * (kernel_size - 1)
    if name == "valid":
        return (0, 0)
    if name == "full":
        return (span, span)
    if stride != 1:
        raise InvalidArgument(
            f"padding='same' is only defined for stride 1, got stride={stride}; "
            "give the padding as a number instead"
        )
    small, large = span // 2, span - span // 2
    return (large, small) if extra_before else (small, large)


def _is_pair(value: object) -> bool:
    """A tuple of two non-negative Python ints (checked without the cost of the ABCs)."""
    return (
        type(value) is tuple
        and len(value) == 2
        and type(value[0]) is int
        and type(value[1]) is int
        and value[0] >= 0
        and value[1] >= 0
    )


def resolve_padding(
    padding: object,
    kernel_size: Sequence[int],
    *,
    stride: Sequence[int] | None = None,
    dilation: Sequence[int] | None = None,
    extra_before: bool = False,
) -> tuple[tuple[int, int], ...]:
    """Turn any accepted padding into one ``(before, after)`` pair per spatial axis.

    Accepted forms, for ``d = len(kernel_size)`` axes:

    - ``'valid'`` (none), ``'full'`` (``dilation*(k-1)`` each side) or ``'same'`` (output size =
      input size, stride 1 only). For an even kernel 'same' cannot be centred: the odd element goes
      after (PyTorch, ``scipy.signal.correlate2d``) unless ``extra_before`` is true (the rule of
      ``numpy.convolve`` and ``scipy.signal.convolve2d``, which cnnkit's ``convolve*`` follow).
    - a non-negative integer ``p``: ``p`` on each side of every axis;
    - for ``d >= 2``, a sequence of ``d`` integers: one (symmetric) number per axis;
    - for ``d == 1``, a pair ``(before, after)``;
    - a sequence of ``d`` pairs ``((before, after), ...)``.

    >>> resolve_padding(2, (5, 5))
    ((2, 2), (2, 2))
    >>> resolve_padding("same", (4,))
    ((1, 2),)
    >>> resolve_padding(((0, 1), (2, 3)), (3, 3))
    ((0, 1), (2, 3))
    """
    ndim = len(kernel_size)
    # Fast paths for the forms cnnkit passes to itself (already resolved, or a plain number).
    if type(padding) is int and padding >= 0:
        return ((padding, padding),) * ndim
    if type(padding) is tuple and len(padding) == ndim and all(_is_pair(p) for p in padding):
        return padding
    if ndim == 1 and _is_pair(padding):
        return (padding,)
    stride = tuple(stride) if stride is not None else (1,) * ndim
    dilation = tuple(dilation) if dilation is not None else (1,) * ndim
    if isinstance(padding, str):
        return tuple(
            _named_padding(padding, k, d, s, extra_before=extra_before)
            for k, d, s in zip(kernel_size, dilation, stride)
        )
    if isinstance(padding, Sequence):
        if len(padding) == ndim and all(
            isinstance(p, Sequence) and not isinstance(p, str) for p in padding
        ):
            return tuple(tuple(int_tuple(p, "padding", 2, minimum=0)) for p in padding)
        if ndim == 1 and len(padding) == 2:
            return (int_tuple(padding, "padding", 2, minimum=0),)
        if len(padding) == ndim and ndim > 1:
            return tuple((p, p) for p in int_tuple(padding, "padding", ndim, minimum=0))
        raise InvalidArgument(
            f"padding must be 'valid', 'same', 'full', a non-negative integer, {ndim} integers "
            f"or {ndim} (before, after) pairs, got {padding!r}"
        )
    p = check_int(padding, "padding", minimum=0)
    return ((p, p),) * ndim


def output_size(
    n: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | str | tuple[int, int] = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Length of the output when a window of ``kernel_size`` slides over ``n`` elements.

    ``padding`` is a number per side, a ``(before, after)`` pair or one of 'valid', 'same',
    'full'. With ``ceil_mode`` (pooling) the division rounds up, and a last window that would start
    inside the right padding is dropped, as in PyTorch.

    Raises ``ValueError`` when the window does not fit, naming the sizes.

    >>> output_size(32, 5, padding=2)          # the tutorial's example
    32
    >>> output_size(28, 2, stride=2)
    14
    >>> output_size(7, 3, stride=2)
    3
    >>> output_size(5, 2, stride=2, ceil_mode=True)
    3
    """
    n = check_int(n, "n", minimum=1)
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
    stride = check_int(stride, "stride", minimum=1)
    dilation = check_int(dilation, "dilation", minimum=1)
    ((before, after),) = resolve_padding(
        padding, (kernel_size,), stride=(stride,), dilation=(dilation,)
    )
    span = dilation * (kernel_size - 1) + 1
    room = n + before + after - span
    if ceil_mode:
        size = -(-room // stride) + 1
        # PyTorch's rule: the last window must start inside the input or the left padding.
        if (size - 1) * stride >= n + before:
            size -= 1
    else:
        size = room // stride + 1
    if size < 1:
        raise InvalidArgument(
            f"the window does not fit: input size {n} with padding ({before}, {after}) is "
            f"{n + before + after}, smaller than the kernel's extent {span} "
            f"(kernel_size={kernel_size}, dilation={dilation}, stride={stride})"
        )
    return size


def output_shape(
    shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: object = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """Spatial output shape for an input of spatial ``shape`` (for example ``(H, W)``).

    Arguments are int-or-tuple as in PyTorch; ``padding`` takes every form of
    :func:`resolve_padding`.

    >>> output_shape((28, 28), 5, padding=2)
    (28, 28)
    >>> output_shape((14, 10), (2, 3), stride=(2, 1), padding=((0, 0), (1, 1)))
    (7, 10)
    """
    ndim = len(shape)
    kernel = int_tuple(kernel_size, "kernel_size", ndim, minimum=1)
    strides = int_tuple(stride, "stride", ndim, minimum=1)
    dilations = int_tuple(dilation, "dilation", ndim, minimum=1)
    pads = resolve_padding(padding, kernel, stride=strides, dilation=dilations)
    return tuple(
        output_size(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(shape, kernel, strides, pads, dilations)
    )


def explain_output_size(
    n: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | str | tuple[int, int] = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> str:
    """The output-size formula with the numbers put in, ending in the result.

    >>> explain_output_size(32, 5, padding=2)
    'floor((32 + 2*2 - 5) / 1) + 1 = 32'
    >>> explain_output_size(10, 3, stride=2, padding=(0, 1), dilation=2)
    'floor((10 + 0 + 1 - 2*(3 - 1) - 1) / 2) + 1 = 4'
    """
    size = output_size(n, kernel_size, stride, padding, dilation, ceil_mode)
    ((before, after),) = resolve_padding(
        padding, (kernel_size,), stride=(stride,), dilation=(dilation,)
    )
    rounding = "ceil" if ceil_mode else "floor"
    pad_text = f"2*{before}" if before == after else f"{before} + {after}"
    if dilation == 1:
        return f"{rounding}(({n} + {pad_text} - {kernel_size}) / {stride}) + 1 = {size}"
    return (
        f"{rounding}(({n} + {pad_text} - {dilation}*({kernel_size} - 1) - 1) / {stride}) + 1"
        f" = {size}"
    )


def parse_input_shape(text: str | Sequence[int]) -> tuple[int, int, int]:
    """``"1x28x28"`` (or a sequence of three integers) as ``(channels, height, width)``.

    >>> parse_input_shape("3x32x32")
    (3, 32, 32)
    """
    if isinstance(text, str):
        parts = text.lower().replace("×", "x").split("x")
        try:
            values = [int(part) for part in parts]
        except ValueError:
            values = []
    else:
        values = list(text)
    if len(values) != 3:
        raise InvalidArgument(f"input shape must be CxHxW such as 1x28x28, got {text!r}")
    shape = tuple(check_int(v, "input shape", minimum=1) for v in values)
    return shape  # type: ignore[return-value]
