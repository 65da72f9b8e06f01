"""Neural-network convolution: ``conv1d`` and ``conv2d`` with their backward passes.

PyTorch's semantics, names, argument order and defaults: cross-correlation summed over input
channels, plus bias, on ``(N, C, L)`` / ``(N, C, H, W)`` arrays (the batch axis may be left out),
with stride, padding, dilation and groups. Additions: ``padding`` also takes ``'full'`` and
explicit ``(before, after)`` pairs, and ``padding_mode`` is accepted by the function (in PyTorch
only by the module) with cnnkit's names, ``'symmetric'`` included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validate import as_float_array, check_int, int_tuple
from cnnkit.errors import InvalidArgument
from cnnkit.ops._core import correlate, correlate_backward
from cnnkit.ops.windows import pad, pad_backward
from cnnkit.shapes import output_shape, resolve_padding

__all__ = ["conv1d", "conv1d_backward", "conv2d", "conv2d_backward"]


@dataclass(frozen=True)
class _ConvPlan:
    """A validated convolution call in 2-D NCHW form, shared by forward and backward."""

    x: np.ndarray  # (N, C, H, W), the caller's dtype rules applied
    weight: np.ndarray  # (O, C // groups, kh, kw), in x's dtype
    bias: np.ndarray | None
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    padding_mode: str
    groups: int
    out_shape: tuple[int, int]
    batched: bool
    spatial_dims: int  # 1 for conv1d (a unit height axis was added), 2 for conv2d

    def restore(self, array: np.ndarray) -> np.ndarray:
        """Bring an internal (N, C, H, W) array back to the caller's layout."""
        if self.spatial_dims == 1:
            array = array[:, :, 0]
        return array if self.batched else array[0]


def _plan(
    x: object,
    weight: object,
    bias: object,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    padding_mode: str,
    spatial_dims: int,
) -> _ConvPlan:
    """Validate a conv call and normalise it to 2-D NCHW form."""
    x = as_float_array(x, "input", ndims=(spatial_dims + 1, spatial_dims + 2))
    weight = as_float_array(weight, "weight", ndims=(spatial_dims + 2,)).astype(x.dtype, copy=False)
    batched = x.ndim == spatial_dims + 2
    if not batched:
        x = x[np.newaxis]
    groups = check_int(groups, "groups", minimum=1)
    channels, out_channels = x.shape[1], weight.shape[0]
    if channels % groups or out_channels % groups:
        raise InvalidArgument(
            f"groups={groups} must divide both the input channels ({channels}) and the output "
            f"channels ({out_channels})"
        )
    if weight.shape[1] != channels // groups:
        raise InvalidArgument(
            f"weight of shape {weight.shape} expects {weight.shape[1] * groups} input channels "
            f"with groups={groups}, but input of shape {x.shape} has {channels}"
        )
    if bias is not None:
        bias = as_float_array(bias, "bias", ndims=(1,)).astype(x.dtype, copy=False)
        if bias.shape[0] != out_channels:
            raise InvalidArgument(
                f"bias must have one value per output channel ({out_channels}), "
                f"got shape {bias.shape}"
            )
    kernel_size = weight.shape[2:]
    strides = int_tuple(stride, "stride", spatial_dims, minimum=1)
    dilations = int_tuple(dilation, "dilation", spatial_dims, minimum=1)
    pads = resolve_padding(padding, kernel_size, stride=strides, dilation=dilations)
    out = output_shape(x.shape[2:], kernel_size, strides, pads, dilations)
    if spatial_dims == 1:
        x, weight = x[:, :, np.newaxis], weight[:, :, np.newaxis]
        strides, dilations, pads, out = (1, *strides), (1, *dilations), ((0, 0), *pads), (1, *out)
    return _ConvPlan(
        x, weight, bias, strides, dilations, pads, padding_mode, groups, out, batched, spatial_dims
    )


def _padded(plan: _ConvPlan) -> tuple[np.ndarray, tuple]:
    """The input and the zero padding left to apply: zeros stay virtual, other modes are copied."""
    if plan.padding_mode == "zeros":
        return plan.x, plan.pads
    return pad(plan.x, plan.pads, plan.padding_mode), ((0, 0), (0, 0))


def _forward(plan: _ConvPlan) -> np.ndarray:
    x, zero_pads = _padded(plan)
    out = correlate(
        x, plan.weight, plan.stride, plan.dilation, zero_pads, plan.groups, plan.out_shape
    )
    if plan.bias is not None:
        out += plan.bias[:, np.newaxis, np.newaxis]
    return plan.restore(out)


def _backward(
    plan: _ConvPlan, grad_output: object, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    expected = plan.restore(np.empty((plan.x.shape[0], plan.weight.shape[0], *plan.out_shape)))
    grad = as_float_array(grad_output, "grad_output", ndims=(expected.ndim,))
    if grad.shape != expected.shape:
        raise InvalidArgument(
            f"grad_output must have the output's shape {expected.shape}, got {grad.shape}"
        )
    grad = grad.astype(plan.x.dtype, copy=False)
    if not plan.batched:
        grad = grad[np.newaxis]
    if plan.spatial_dims == 1:
        grad = grad[:, :, np.newaxis]
    grad = np.ascontiguousarray(grad)
    x, zero_pads = _padded(plan)
    grad_x, grad_weight = correlate_backward(
        grad, x, plan.weight, plan.stride, plan.dilation, zero_pads, plan.groups,
        input_grad=input_grad,
    )
    grad_input = None
    if input_grad:
        if plan.padding_mode != "zeros":
            grad_x = pad_backward(grad_x, plan.pads, plan.padding_mode)
        grad_input = plan.restore(grad_x)
    if plan.spatial_dims == 1:
        grad_weight = grad_weight[:, :, 0]
    grad_bias = grad.sum(axis=(0, 2, 3))
    return grad_input, grad_weight, grad_bias


def conv2d(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """2-D convolution layer (cross-correlation over channels, plus bias), as in PyTorch.

    Parameters
    ----------
    input : array of shape (N, C, H, W) or (C, H, W)
        The batch of images. float32 stays float32; integers and bools become float64.
    weight : array of shape (O, C // groups, kh, kw)
        One filter per output channel; cast to the input's dtype.
    bias : array of shape (O,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), ((top, bottom), (left, right)), 'valid', 'same' or 'full'
        Elements added on each side. 'same' (stride 1 only) keeps H and W; an odd total goes
        after, as in PyTorch.
    groups : int
        Input and output channels are split into this many groups that do not see each other.
    padding_mode : {'zeros', 'reflect', 'symmetric', 'replicate', 'circular'}

    Returns
    -------
    array of shape (N, O, Ho, Wo) (or (O, Ho, Wo)) with
    ``Ho = floor((H + top + bottom - dilation*(kh - 1) - 1) / stride) + 1``.

    Examples
    --------
    Three input channels into five filters, as in the tutorial:

    >>> rng = np.random.default_rng(0)
    >>> conv2d(rng.random((1, 3, 32, 32)), rng.random((5, 3, 5, 5)), padding=2).shape
    (1, 5, 32, 32)
    >>> conv2d(np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2)), stride=2)
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    return _forward(_plan(input, weight, bias, stride, padding, dilation, groups, padding_mode, 2))


def conv2d_backward(
    grad_output: np.ndarray,
    input: np.ndarray,
    weight: np.ndarray,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Given ``grad_output`` = dL/d(output), returns ``(grad_input, grad_weight, grad_bias)`` of the
    shapes of ``input``, ``weight`` and ``(O,)``. Arguments are those of the forward call; with
    ``input_grad=False`` the input's gradient is not computed and ``grad_input`` is None (a
    network's first layer, whose input is data).

    >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    >>> grad_input, grad_weight, grad_bias = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> grad_input[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    plan = _plan(input, weight, None, stride, padding, dilation, groups, padding_mode, 2)
    return _backward(plan, grad_output, input_grad)


def conv1d(
    input: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int | str | tuple = 0,
    dilation: int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """1-D convolution layer on (N, C, L) or (C, L), as in PyTorch; see :func:`conv2d`.

    ``padding`` is an int, a ``(before, after)`` pair, 'valid', 'same' or 'full'.

    >>> conv1d(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[[1.0, -1.0]]]))
    array([[-1., -1., -1.]])
    """
    return _forward(_plan(input, weight, bias, stride, padding, dilation, groups, padding_mode, 1))


def conv1d_backward(
    grad_output: np.ndarray,
    input: np.ndarray,
    weight: np.ndarray,
    stride: int = 1,
    padding: int | str | tuple = 0,
    dilation: int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv1d`: ``(grad_input, grad_weight, grad_bias)``.

    >>> grads = conv1d_backward(np.ones((1, 3)), np.zeros((1, 4)), np.ones((1, 1, 2)))
    >>> grads[0]
    array([[1., 2., 2., 1.]])
    """
    plan = _plan(input, weight, None, stride, padding, dilation, groups, padding_mode, 1)
    return _backward(plan, grad_output)
