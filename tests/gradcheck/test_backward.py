"""Backward passes against central finite differences and torch.autograd (rel. error < 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit import (
    avg_pool2d,
    avg_pool2d_backward,
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from tests.reference.helpers import TORCH_PAD_MODE, max_pad

TOLERANCE = 1e-6


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))


def numeric_gradient(loss, value: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function with respect to every element of ``value``."""
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        saved = value[index]
        value[index] = saved + step
        plus = loss()
        value[index] = saved - step
        minus = loss()
        value[index] = saved
        grad[index] = (plus - minus) / (2 * step)
    return grad


CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((2, 2, 5, 6), (3, 2, 3, 3), {"padding": 1}),
    ((1, 2, 7, 6), (2, 2, 2, 4), {"stride": 2, "padding": "valid"}),  # even kernel, stride 2
    ((1, 4, 6, 6), (4, 2, 3, 2), {"dilation": (2, 1), "groups": 2, "padding": ((1, 0), (2, 1))}),
    ((1, 1, 5, 5), (1, 1, 3, 3), {"padding": 2, "padding_mode": "reflect", "stride": (1, 2)}),
    ((1, 2, 4, 5), (2, 2, 2, 2), {"padding": "same", "padding_mode": "symmetric"}),
    ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": 3, "padding_mode": "circular"}),
    ((1, 1, 4, 4), (2, 1, 2, 3), {"padding": 4, "padding_mode": "replicate", "stride": 3}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), CONV_CASES)
def test_conv2d_backward_finite_differences(x_shape, w_shape, kwargs):
    """conv2d_backward equals central differences for input, weight and bias."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(
        w_shape[0]
    )
    out = conv2d(x, w, b, **kwargs)
    weights = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(conv2d(x, w, b, **kwargs) * weights))

    grad_x, grad_w, grad_b = conv2d_backward(weights, x, w, **kwargs)
    assert relative_error(grad_x, numeric_gradient(loss, x)) < TOLERANCE
    assert relative_error(grad_w, numeric_gradient(loss, w)) < TOLERANCE
    assert relative_error(grad_b, numeric_gradient(loss, b)) < TOLERANCE


@st.composite
def conv_grad_case(draw):
    groups = draw(st.integers(1, 2))
    channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    size = (draw(st.integers(2, 8)), draw(st.integers(2, 8)))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((2, channels, *size))
    w = rng.standard_normal((out_channels, channels // groups, *kernel))
    return x, w, stride, padding, dilation, groups, mode


@given(case=conv_grad_case())
def test_conv2d_backward_matches_autograd(case):
    """conv2d_backward equals torch.autograd for random strides, dilations, groups and modes."""
    x, w, stride, padding, dilation, groups, mode = case
    assume(
        all(
            n + 2 * p >= d * (k - 1) + 1 and p <= max_pad(n, mode)
            for n, p, d, k in zip(x.shape[2:], padding, dilation, w.shape[2:])
        )
    )
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
    flat = (padding[1], padding[1], padding[0], padding[0])
    out = F.conv2d(F.pad(tx, flat, mode=TORCH_PAD_MODE[mode]), tw, tb, stride, 0, dilation, groups)
    grad_out = np.random.default_rng(0).standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(grad_out))
    grad_x, grad_w, grad_b = conv2d_backward(
        grad_out, x, w, stride, padding, dilation, groups, mode
    )
    assert relative_error(grad_x, tx.grad.numpy()) < TOLERANCE
    assert relative_error(grad_w, tw.grad.numpy()) < TOLERANCE
    assert relative_error(grad_b, tb.grad.numpy()) < TOLERANCE


def test_conv1d_backward_finite_differences():
    """conv1d_backward equals central differences (stride 2, even kernel, dilation 2)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 2, 9)), rng.standard_normal((3, 2, 2))
    kwargs = {"stride": 2, "padding": (1, 2), "dilation": 2}
    weights = rng.standard_normal(conv1d(x, w, **kwargs).shape)

    def loss():
        return float(np.sum(conv1d(x, w, **kwargs) * weights))

    grad_x, grad_w, _ = conv1d_backward(weights, x, w, **kwargs)
    assert relative_error(grad_x, numeric_gradient(loss, x)) < TOLERANCE
    assert relative_error(grad_w, numeric_gradient(loss, w)) < TOLERANCE


def test_unbatched_backward_shapes():
    """Gradients of an unbatched call have the unbatched shapes."""
    grads = conv2d_backward(np.ones((2, 3, 3)), np.ones((1, 4, 4)), np.ones((2, 1, 2, 2)))
    assert [g.shape for g in grads] == [(1, 4, 4), (2, 1, 2, 2), (2,)]


POOL_CASES = [
    (2, {}),
    (3, {"stride": 1, "padding": 1}),
    ((2, 3), {"stride": (2, 1), "ceil_mode": True}),
    (3, {"stride": 2, "dilation": 2, "padding": 1}),
]


@pytest.mark.parametrize(("kernel", "kwargs"), POOL_CASES)
def test_max_pool2d_backward_finite_differences(kernel, kwargs):
    """max_pool2d_backward equals central differences (distinct values, so the max is smooth)."""
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 7 * 7).reshape(1, 2, 7, 7) / 10.0
    weights = rng.standard_normal(max_pool2d(x, kernel, **kwargs).shape)

    def loss():
        return float(np.sum(max_pool2d(x, kernel, **kwargs) * weights))

    grad = max_pool2d_backward(weights, x, kernel, **kwargs)
    assert relative_error(grad, numeric_gradient(loss, x, step=1e-4)) < TOLERANCE


@pytest.mark.parametrize(("kernel", "kwargs"), POOL_CASES[:3])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_backward_finite_differences(kernel, kwargs, count_include_pad):
    """avg_pool2d_backward equals central differences with either divisor rule."""
    kwargs = {**kwargs, "count_include_pad": count_include_pad}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 1, 6, 7))
    weights = rng.standard_normal(avg_pool2d(x, kernel, **kwargs).shape)

    def loss():
        return float(np.sum(avg_pool2d(x, kernel, **kwargs) * weights))

    grad = avg_pool2d_backward(weights, x, kernel, **kwargs)
    assert relative_error(grad, numeric_gradient(loss, x)) < TOLERANCE


def test_max_pool2d_backward_matches_autograd_with_overlaps():
    """Overlapping windows add their gradients like torch.autograd, ties included."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (2, 3, 8, 8)).astype(np.float64)  # many ties
    tx = torch.tensor(x, requires_grad=True)
    out = F.max_pool2d(tx, 3, stride=1, padding=1)
    grad_out = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(grad_out))
    grad = max_pool2d_backward(grad_out, x, 3, stride=1, padding=1)
    assert relative_error(grad, tx.grad.numpy()) < TOLERANCE


LAYOUT_CASES = [
    # (x shape, w shape, kwargs): the tutorial's second layer in small, then stride, dilation,
    # groups, an even kernel with asymmetric padding, and padding wider than the kernel
    ((3, 6, 7, 7), (5, 6, 5, 5), {"padding": 2}),
    ((2, 4, 9, 8), (6, 4, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 4, 9, 9), (4, 4, 3, 2), {"dilation": (2, 3), "padding": (2, 1)}),
    ((2, 6, 6, 7), (9, 2, 3, 3), {"groups": 3, "padding": 1}),
    ((1, 3, 5, 6), (2, 3, 2, 4), {"padding": "same"}),
    ((2, 3, 4, 4), (2, 3, 3, 3), {"padding": 3}),
]


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), LAYOUT_CASES)
def test_both_column_layouts_match_autograd(monkeypatch, channels_last, x_shape, w_shape, kwargs):
    """Channels-last columns (with the input gradient as a correlation where the stride is 1)
    and tap-by-tap columns (with col2im), each forced, equal torch in float64 (1e-10)."""
    from cnnkit.ops import _core

    monkeypatch.setattr(_core, "_channels_last_pays", lambda *args: channels_last)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    out = F.conv2d(tx, tw, **kwargs)
    grad_out = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(grad_out))
    np.testing.assert_allclose(conv2d(x, w, **kwargs), out.detach().numpy(), rtol=1e-10,
                               atol=1e-10)
    grad_x, grad_w, _ = conv2d_backward(grad_out, x, w, **kwargs)
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_w, tw.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    """input_grad=False returns None for the input and the very same weight and bias
    gradients."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 1, 9, 9)), rng.standard_normal((4, 1, 5, 5))
    grad_out = rng.standard_normal((2, 4, 9, 9))
    full = conv2d_backward(grad_out, x, w, padding=2)
    partial = conv2d_backward(grad_out, x, w, padding=2, input_grad=False)
    assert partial[0] is None
    np.testing.assert_array_equal(partial[1], full[1])
    np.testing.assert_array_equal(partial[2], full[2])


@pytest.mark.parametrize(("shape", "kernel"), [((2, 3, 9, 11), 2), ((1, 2, 8, 9), (2, 3))])
def test_max_pool_over_tiling_windows_matches_the_general_loop(monkeypatch, shape, kernel):
    """Windows that tile the input (stride = kernel) take the same maxima and first-maximum
    indices as the general tap loop, with ties and -inf, and the same gradient."""
    from cnnkit.ops import pool

    x = np.random.default_rng(9).integers(0, 3, shape).astype(np.float32)  # many ties
    x[0, 0, :2, :3] = -np.inf
    fast = max_pool2d(x, kernel, return_indices=True)
    monkeypatch.setattr(pool, "_max_pool_tiled", lambda plan: None)
    general = max_pool2d(x, kernel, return_indices=True)
    for ours, theirs in zip(fast, general, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    tx = torch.tensor(x, requires_grad=True)
    _, indices = F.max_pool2d(tx, kernel, return_indices=True)
    np.testing.assert_array_equal(fast[1], indices.numpy())
