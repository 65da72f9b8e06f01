"""The NumPy layers, each with ``forward`` and ``backward`` side by side.

Names, argument order, defaults, parameter shapes and initialisation are PyTorch's. Convolution
and pooling call cnnkit's primitives (:func:`cnnkit.conv2d`, :func:`cnnkit.conv2d_backward`,
:func:`cnnkit.max_pool2d`, ...); the other gradients are written here. A layer with parameters
casts its input to their dtype (float32 unless built otherwise), so a float32 model computes in
float32 whatever it is fed.

Initialisation (``reset_parameters``) follows ``torch.nn``: weights uniform in
``±1/sqrt(fan_in)`` (``kaiming_uniform_`` with ``a=sqrt(5)``), biases uniform in the same bound,
batch norm's weight 1 and bias 0. Values are drawn from a ``numpy.random.Generator``, so they are
reproducible but not the numbers PyTorch would draw; load a state dict to share weights.
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit._validate import check_choice, int_tuple
from cnnkit.errors import InvalidArgument, InvalidType, ShapeError
from cnnkit.nn.module import Module, Parameter
from cnnkit.ops import (
    PADDING_MODES,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    global_avg_pool2d,
    max_pool2d,
)
from cnnkit.shapes import output_shape, resolve_padding

__all__ = [
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
]


def _generator(generator: np.random.Generator | None) -> np.random.Generator:
    if generator is None:
        return np.random.default_rng()
    if not isinstance(generator, np.random.Generator):
        raise InvalidType(f"generator must be a numpy.random.Generator, got {type(generator)}")
    return generator


def _float_dtype(dtype: object) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InvalidType(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _reset_uniform(generator: np.random.Generator, bound: float, *parameters) -> None:
    """Draw each parameter (None: absent) uniformly from ``[-bound, bound)``."""
    for parameter in parameters:
        if parameter is not None:
            parameter.data[...] = generator.uniform(-bound, bound, size=parameter.shape)


def _image_batch(x: object, channels: int | None, dtype: np.dtype | None) -> np.ndarray:
    """``x`` as an (N, C, H, W) array, refusing another shape with what was expected."""
    x = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        expected = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ShapeError(f"expected an input of shape {expected}, got {x.shape}")
    return x


class Conv2d(Module):
    """2-D convolution, as ``torch.nn.Conv2d``: weight (O, C/groups, kh, kw), bias (O,).

    ``padding`` also takes cnnkit's forms (``'full'``, ``(before, after)`` pairs) and
    ``padding_mode`` also ``'symmetric'``, which PyTorch's layer does not have.

    >>> layer = Conv2d(1, 4, 3, padding=1, generator=np.random.default_rng(0))
    >>> layer
    Conv2d(1, 4, kernel_size=(3, 3), padding=1)
    >>> layer(np.zeros((2, 1, 5, 5))).shape
    (2, 4, 5, 5)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | str | tuple = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        generator: np.random.Generator | None = None,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        self.kernel_size = int_tuple(kernel_size, "kernel_size", 2, minimum=1)
        self.stride = int_tuple(stride, "stride", 2, minimum=1)
        self.dilation = int_tuple(dilation, "dilation", 2, minimum=1)
        self.pads = resolve_padding(
            padding, self.kernel_size, stride=self.stride, dilation=self.dilation
        )
        self.padding = padding
        self.padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)
        self.in_channels = int_tuple(in_channels, "in_channels", 1, minimum=1)[0]
        self.out_channels = int_tuple(out_channels, "out_channels", 1, minimum=1)[0]
        self.groups = int_tuple(groups, "groups", 1, minimum=1)[0]
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise InvalidArgument(
                f"groups={groups} must divide in_channels ({in_channels}) and out_channels "
                f"({out_channels})"
            )
        dtype = _float_dtype(dtype)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters(_generator(generator))

    def reset_parameters(self, generator: np.random.Generator) -> None:
        """PyTorch's default: uniform in ±1/sqrt(fan_in) for weight and bias."""
        fan_in = math.prod(self.weight.shape[1:])
        _reset_uniform(generator, 1 / math.sqrt(fan_in), self.weight, self.bias)

    def _options(self) -> dict:
        return {
            "stride": self.stride,
            "padding": self.pads,
            "dilation": self.dilation,
            "groups": self.groups,
            "padding_mode": self.padding_mode,
        }

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _image_batch(x, self.in_channels, self.weight.data.dtype)
        try:
            output_shape(x.shape[2:], self.kernel_size, self.stride, self.pads, self.dilation)
        except ValueError as exc:
            raise ShapeError(f"input of shape {x.shape} is too small: {exc}") from None
        self._input = x
        bias = None if self.bias is None else self.bias.data
        return conv2d(x, self.weight.data, bias, **self._options())

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._backward(grad, input_grad=True)

    def backward_parameters(self, grad: np.ndarray) -> None:
        self._backward(grad, input_grad=False)

    def _backward(self, grad: np.ndarray, input_grad: bool) -> np.ndarray | None:
        grad_input, grad_weight, grad_bias = conv2d_backward(
            grad, self._input, self.weight.data, **self._options(), input_grad=input_grad
        )
        self.weight.accumulate(grad_weight)
        if self.bias is not None:
            self.bias.accumulate(grad_bias)
        return grad_input

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            text += f", stride={self.stride}"
        if self.padding != 0:
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class _Pool2d(Module):
    """What the two window poolings share: arguments, the shape check and the repr."""

    def __init__(self, kernel_size, stride, padding, ceil_mode) -> None:
        super().__init__()
        self.kernel_size = int_tuple(kernel_size, "kernel_size", 2, minimum=1)
        self.stride = self.kernel_size if stride is None else int_tuple(
            stride, "stride", 2, minimum=1
        )
        self.padding = int_tuple(padding, "padding", 2, minimum=0)
        self.ceil_mode = bool(ceil_mode)

    def _checked(self, x: object, dilation=(1, 1)) -> np.ndarray:
        x = _image_batch(x, None, None)
        try:
            output_shape(
                x.shape[2:], self.kernel_size, self.stride, self.padding, dilation, self.ceil_mode
            )
        except ValueError as exc:
            raise ShapeError(f"input of shape {x.shape} is too small: {exc}") from None
        return x

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text


class MaxPool2d(_Pool2d):
    """2-D max pooling, as ``torch.nn.MaxPool2d``; the gradient goes to each window's maximum.

    >>> MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = int_tuple(dilation, "dilation", 2, minimum=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._checked(x, self.dilation)
        output, self._indices = max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            return_indices=True,
        )
        self._input_shape, self._indices_dtype = x.shape, output.dtype
        return output

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # Each output sends its gradient to the input element it took (the flat index within
        # its plane); where windows overlap, one element can receive several.
        n, c, height, width = self._input_shape
        grad = np.asarray(grad, dtype=self._indices_dtype)
        planes_grad = grad.reshape(n * c, -1)
        indices = self._indices.reshape(n * c, -1)
        grad_input = np.zeros((n * c, height * width), dtype=planes_grad.dtype)
        extents = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation)]
        if all(s >= e for s, e in zip(self.stride, extents)):
            np.put_along_axis(grad_input, indices, planes_grad, axis=1)  # windows are disjoint
        else:
            flat = indices + (np.arange(n * c) * height * width)[:, np.newaxis]
            grad_input = np.bincount(
                flat.ravel(), weights=planes_grad.ravel(), minlength=n * c * height * width
            ).astype(planes_grad.dtype, copy=False)
        return grad_input.reshape(self._input_shape)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")


class AvgPool2d(_Pool2d):
    """2-D average pooling, as ``torch.nn.AvgPool2d``.

    >>> AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _options(self) -> dict:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._input = self._checked(x)
        return avg_pool2d(self._input, self.kernel_size, **self._options())

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return avg_pool2d_backward(grad, self._input, self.kernel_size, **self._options())

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + ("" if self.count_include_pad else ", count_include_pad=False")


class GlobalAvgPool2d(Module):
    """The mean over height and width: (N, C, H, W) -> (N, C, 1, 1).

    PyTorch's module for it is ``torch.nn.AdaptiveAvgPool2d(1)``.

    >>> GlobalAvgPool2d()(np.arange(8.0).reshape(1, 2, 2, 2))[:, :, 0, 0]
    array([[1.5, 5.5]])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _image_batch(x, None, None)
        self._input_shape = x.shape
        return global_avg_pool2d(x)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        height, width = self._input_shape[2:]
        grad = np.asarray(grad) / (height * width)
        return np.broadcast_to(grad, self._input_shape).copy()


class BatchNorm2d(Module):
    """Batch normalisation over (N, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    In training mode the batch's mean and biased variance normalise the input, and the running
    statistics move by ``momentum`` towards the batch mean and the *unbiased* variance (``None``:
    a cumulative average); ``num_batches_tracked`` counts the batches. In evaluation mode the
    running statistics normalise. ``affine`` adds a learned scale (``weight``) and shift
    (``bias``).

    >>> layer = BatchNorm2d(2)
    >>> y = layer(np.arange(16.0).reshape(2, 2, 2, 2))
    >>> y.dtype, layer.running_mean, layer.num_batches_tracked
    (dtype('float32'), array([0.55, 0.95], dtype=float32), array(1))
    """

    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        *,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = int_tuple(num_features, "num_features", 1, minimum=1)[0]
        if not eps > 0:
            raise InvalidArgument(f"eps must be a positive number, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise InvalidArgument(f"momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps, self.momentum = float(eps), momentum
        dtype = _float_dtype(dtype)
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype)) if affine else None
        self.running_mean = np.zeros(self.num_features, dtype=dtype)
        self.running_var = np.ones(self.num_features, dtype=dtype)
        self.num_batches_tracked = np.array(0, dtype=np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _image_batch(x, self.num_features, self.running_mean.dtype)
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ShapeError(
                    f"expected more than 1 value per channel when training, got input of shape "
                    f"{x.shape}"
                )
            mean = x.mean(axis=(0, 2, 3))
            centred = x - mean[:, np.newaxis, np.newaxis]
            var = np.einsum("nchw,nchw->c", centred, centred) / count
            self._update_running(mean, var * count / (count - 1))
        else:
            mean, var = self.running_mean, self.running_var
            centred = x - mean[:, np.newaxis, np.newaxis]
        self._inv_std = (1 / np.sqrt(var + self.eps)).astype(x.dtype)
        self._normalised = centred * self._inv_std[:, np.newaxis, np.newaxis]
        self._batch_statistics = self.training
        if self.weight is None:
            return self._normalised.copy()
        scale = self.weight.data[:, np.newaxis, np.newaxis]
        return self._normalised * scale + self.bias.data[:, np.newaxis, np.newaxis]

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        self.num_batches_tracked += 1
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        self.running_mean *= 1 - factor
        self.running_mean += factor * mean
        self.running_var *= 1 - factor
        self.running_var += factor * unbiased_var

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = np.asarray(grad, dtype=self._normalised.dtype)
        axes = (0, 2, 3)
        if self.weight is not None:
            self.weight.accumulate(np.einsum("nchw,nchw->c", grad, self._normalised))
            self.bias.accumulate(grad.sum(axis=axes))
            grad = grad * self.weight.data[:, np.newaxis, np.newaxis]
        inv_std = self._inv_std[:, np.newaxis, np.newaxis]
        if not self._batch_statistics:
            return grad * inv_std
        # With batch statistics the mean and variance depend on every input too:
        # dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), means over (N, H, W).
        count = grad.shape[0] * grad.shape[2] * grad.shape[3]
        grad_mean = grad.sum(axis=axes) / count
        projection = np.einsum("nchw,nchw->c", grad, self._normalised) / count
        return inv_std * (
            grad
            - grad_mean[:, np.newaxis, np.newaxis]
            - self._normalised * projection[:, np.newaxis, np.newaxis]
        )

    def extra_repr(self) -> str:
        text = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
        return text + ("" if self.weight is not None else ", affine=False")


class ReLU(Module):
    """``max(x, 0)``; the gradient passes where the output is positive.

    >>> ReLU()(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._output = np.maximum(x, 0)
        return self._output

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # A product with the mask: ten times faster than numpy.where's masked selection. (A
        # non-finite gradient where the output is zero stays non-finite, as a product.)
        return np.multiply(grad, self._output > 0, dtype=self._output.dtype)


class Tanh(Module):
    """``tanh(x)``; its derivative is ``1 - tanh(x)**2``.

    >>> Tanh()(np.array([0.0]))
    array([0.])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._output = np.tanh(x)
        return self._output

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * (1 - self._output * self._output)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``, computed without overflow; its derivative is ``s * (1 - s)``.

    >>> Sigmoid()(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        small = np.exp(-np.abs(x))  # at most 1: never overflows
        self._output = np.where(x >= 0, 1 / (1 + small), small / (1 + small))
        return self._output

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self._output * (1 - self._output)


class Flatten(Module):
    """(N, ...) -> (N, features), as ``torch.nn.Flatten()``; the gradient is reshaped back.

    >>> Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2:
            raise ShapeError(f"expected an input with a batch axis (N, ...), got {x.shape}")
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return np.asarray(grad).reshape(self._input_shape)


class Linear(Module):
    """``x @ weight.T + bias``, as ``torch.nn.Linear``: weight (out, in), bias (out,).

    >>> layer = Linear(3, 2, generator=np.random.default_rng(0))
    >>> layer
    Linear(in_features=3, out_features=2)
    >>> layer(np.zeros((4, 3))).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        generator: np.random.Generator | None = None,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = int_tuple(in_features, "in_features", 1, minimum=1)[0]
        self.out_features = int_tuple(out_features, "out_features", 1, minimum=1)[0]
        dtype = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        self.reset_parameters(_generator(generator))

    def reset_parameters(self, generator: np.random.Generator) -> None:
        """PyTorch's default: uniform in ±1/sqrt(in_features) for weight and bias."""
        _reset_uniform(generator, 1 / math.sqrt(self.in_features), self.weight, self.bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.weight.data.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ShapeError(f"expected an input of shape (N, {self.in_features}), got {x.shape}")
        self._input = x
        output = x @ self.weight.data.T
        if self.bias is not None:
            output += self.bias.data
        return output

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = np.asarray(grad, dtype=self.weight.data.dtype)
        self.weight.accumulate(grad.T @ self._input)
        if self.bias is not None:
            self.bias.accumulate(grad.sum(axis=0))
        return grad @ self.weight.data

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, out_features={self.out_features}"
        return text + ("" if self.bias is not None else ", bias=False")


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the rest by ``1/(1-p)``.

    The keep-mask is drawn from ``generator``; :meth:`use_mask` sets the mask of the next
    training forward pass instead (to replay PyTorch's, or any chosen one). In evaluation mode
    the layer passes its input through.

    >>> layer = Dropout(0.5)
    >>> layer.use_mask(np.array([[True, False]]))
    >>> layer(np.array([[1.0, 1.0]]))
    array([[2., 0.]])
    >>> layer.eval()(np.array([[1.0, 1.0]]))
    array([[1., 1.]])
    """

    def __init__(self, p: float = 0.5, *, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise InvalidArgument(f"p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.generator = _generator(generator)
        self._next_mask: np.ndarray | None = None

    def use_mask(self, mask: np.ndarray) -> None:
        """Keep exactly the elements where ``mask`` is true in the next training forward pass."""
        self._next_mask = np.asarray(mask, dtype=bool)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.training or self.p == 0:
            self._scale = None
            return x
        if self._next_mask is not None:
            mask, self._next_mask = self._next_mask, None
            if mask.shape != x.shape:
                raise ShapeError(f"the mask has shape {mask.shape}, the input {x.shape}")
        else:
            mask = self.generator.random(x.shape, dtype=np.float32) >= self.p
        self._scale = mask * np.asarray(1 / (1 - self.p), dtype=x.dtype)
        return x * self._scale

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._scale is None else grad * self._scale

    def extra_repr(self) -> str:
        return f"p={self.p}"
