"""The neural family against torch.nn.functional in float64 (rtol 1e-10) and float32 (1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit import (
    avg_pool2d,
    conv1d,
    conv2d,
    global_avg_pool2d,
    max_pool2d,
)
from cnnkit.ops import reference
from tests.reference.helpers import max_pad, reference_pad

RTOL, ATOL = 1e-10, 1e-10
MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")


def torch_conv2d(x, w, b, stride, pads, dilation, groups, mode):
    """PyTorch's conv2d on an input padded independently (torch's pad, numpy's for symmetric)."""
    padded = reference_pad(x, pads, mode)
    bias = None if b is None else torch.from_numpy(b)
    return F.conv2d(
        torch.from_numpy(padded), torch.from_numpy(w), bias, stride, 0, dilation, groups
    ).numpy()


@st.composite
def conv_case(draw, spatial_dims=2):
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    size = [draw(st.integers(1, 9)) for _ in range(spatial_dims)]
    kernel = [draw(st.integers(1, 4)) for _ in range(spatial_dims)]
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial_dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial_dims))
    mode = draw(st.sampled_from(MODES))
    kind = draw(st.sampled_from(["int", "explicit", "same", "valid", "full"]))
    if kind == "int":
        p = draw(st.integers(0, 3))
        padding, pads = p, [(p, p)] * spatial_dims
    elif kind == "explicit":
        pads = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(spatial_dims)]
        padding = tuple(pads) if spatial_dims == 2 else pads[0]
    elif kind == "same":
        stride = (1,) * spatial_dims
        padding = "same"
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
    elif kind == "valid":
        padding, pads = "valid", [(0, 0)] * spatial_dims
    else:
        padding = "full"
        pads = [(d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation)]
    batched = draw(st.booleans())
    with_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, *size))
    w = rng.standard_normal((out_channels, channels // groups, *kernel))
    b = rng.standard_normal(out_channels) if with_bias else None
    return x, w, b, stride, padding, pads, dilation, groups, mode, batched


def fits(x, w, pads, dilation, mode):
    spatial = x.shape[2:]
    return all(
        n + b + a >= d * (k - 1) + 1 and max(b, a) <= max_pad(n, mode)
        for n, (b, a), d, k in zip(spatial, pads, dilation, w.shape[2:])
    )


@given(case=conv_case())
def test_conv2d_matches_torch(case):
    """conv2d equals F.conv2d for random shapes, strides, dilations, groups, paddings, modes."""
    x, w, b, stride, padding, pads, dilation, groups, mode, batched = case
    assume(fits(x, w, pads, dilation, mode))
    expected = torch_conv2d(x, w, b, stride, pads, dilation, groups, mode)
    if not batched:
        x, expected = x[0], expected[0]
    ours = conv2d(x, w, b, stride, padding, dilation, groups, mode)
    np.testing.assert_allclose(ours, expected, RTOL, ATOL)


@given(case=conv_case(spatial_dims=1))
def test_conv1d_matches_torch(case):
    """conv1d equals F.conv1d (input padded independently) for random arguments."""
    x, w, b, stride, padding, pads, dilation, groups, mode, batched = case
    assume(fits(x, w, pads, dilation, mode))
    padded = reference_pad(x, pads, mode)
    bias = None if b is None else torch.from_numpy(b)
    expected = F.conv1d(
        torch.from_numpy(padded), torch.from_numpy(w), bias, stride, 0, dilation, groups
    ).numpy()
    if not batched:
        x, expected = x[0], expected[0]
    np.testing.assert_allclose(
        conv1d(x, w, b, stride[0], padding, dilation[0], groups, mode), expected, RTOL, ATOL
    )


def test_same_padding_matches_torch_same():
    """padding='same' with even kernels and dilation equals PyTorch's own padding='same'."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 4, 2))
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=(1, 3))
    np.testing.assert_allclose(
        conv2d(x, w, padding="same", dilation=(1, 3)), expected.numpy(), RTOL, ATOL
    )


def test_tutorial_three_channels_five_filters():
    """Three input channels into five filters sums over channels, as the tutorial describes."""
    rng = np.random.default_rng(2)
    x, w, b = rng.random((3, 10, 10)), rng.random((5, 3, 3, 3)), rng.random(5)
    out = conv2d(x, w, b, padding=1)
    assert out.shape == (5, 10, 10)
    per_channel = sum(
        conv2d(x[c : c + 1], w[:, c : c + 1], padding=1) for c in range(3)
    )
    np.testing.assert_allclose(out, per_channel + b[:, None, None], RTOL, ATOL)


def test_float32_conv2d_matches_torch_float32():
    """float32 conv2d stays float32 and agrees with torch in float32 to 1e-5."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 32, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((64, 32, 5, 5)) * 0.1).astype(np.float32)
    ours = conv2d(x, w, padding=2)
    assert ours.dtype == np.float32
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=2).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_large_batch_is_tiled_exactly():
    """A batch too large for one column tile gives the same result as torch."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 8, 20, 20))
    w = rng.standard_normal((6, 8, 5, 5))
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=2).numpy()
    np.testing.assert_allclose(conv2d(x, w, padding=2), expected, RTOL, ATOL)


def test_tall_image_is_tiled_by_rows_exactly():
    """An image whose column matrix exceeds one tile is split into row bands without seams."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, 600, 300))
    w = rng.standard_normal((2, 16, 3, 3))
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(2, 1), padding=1)
    np.testing.assert_allclose(
        conv2d(x, w, stride=(2, 1), padding=1), expected.numpy(), RTOL, ATOL
    )


@given(case=conv_case())
def test_conv2d_matches_reference_loop(case):
    """The fast conv2d equals the readable per-pixel loop (zero padding)."""
    x, w, b, stride, padding, pads, dilation, groups, _, _ = case
    assume(fits(x, w, pads, dilation, "zeros"))
    expected = reference.conv2d_loop(x, w, b, stride, tuple(pads), dilation, groups)
    ours = conv2d(x, w, b, stride, padding, dilation, groups)
    np.testing.assert_allclose(ours, expected, RTOL, ATOL)


# ---- pooling -------------------------------------------------------------------------------------


@st.composite
def pool_case(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = (draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal((2, 3, *size))
    return x, kernel, stride, padding, dilation, draw(st.booleans())


def torch_or_none(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError:
        return None


@given(case=pool_case())
def test_max_pool2d_matches_torch(case):
    """max_pool2d values and indices equal PyTorch's, ceil_mode and dilation included."""
    x, kernel, stride, padding, dilation, ceil_mode = case
    result = torch_or_none(
        F.max_pool2d, torch.from_numpy(x), kernel, stride, padding, dilation, ceil_mode, True
    )
    if result is None:
        with pytest.raises(ValueError):
            max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
        return
    values, indices = max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
    np.testing.assert_array_equal(values, result[0].numpy())
    np.testing.assert_array_equal(indices, result[1].numpy())


@given(case=pool_case(), count_include_pad=st.booleans(), divisor=st.sampled_from([None, 3]))
def test_avg_pool2d_matches_torch(case, count_include_pad, divisor):
    """avg_pool2d equals PyTorch's with every divisor rule, padding and ceil_mode."""
    x, kernel, stride, padding, _, ceil_mode = case
    expected = torch_or_none(
        F.avg_pool2d, torch.from_numpy(x), kernel, stride, padding, ceil_mode,
        count_include_pad, divisor,
    )
    if expected is None:
        with pytest.raises(ValueError):
            avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
        return
    ours = avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    np.testing.assert_allclose(ours, expected.numpy(), RTOL, ATOL)


def test_pooling_worked_examples():
    """On 1..25 in 5×5: max pool 2 -> [[7,9],[17,19]], avg -> [[4,6],[14,16]], ceil row 22 24 25."""
    x = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    np.testing.assert_array_equal(max_pool2d(x, 2)[0, 0], [[7, 9], [17, 19]])
    np.testing.assert_array_equal(avg_pool2d(x, 2)[0, 0], [[4, 6], [14, 16]])
    ceil = max_pool2d(x, 2, ceil_mode=True)[0, 0]
    assert ceil.shape == (3, 3)
    np.testing.assert_array_equal(ceil[-1], [22, 24, 25])


def test_pool_stride_defaults_to_kernel():
    """stride=None means stride = kernel_size, not 1."""
    x = np.random.default_rng(0).standard_normal((1, 1, 6, 6))
    np.testing.assert_array_equal(max_pool2d(x, 3), max_pool2d(x, 3, stride=3))
    assert max_pool2d(x, 3).shape == (1, 1, 2, 2)


def test_max_pool_nan_propagates_like_torch():
    """A NaN in a window makes that output NaN (and its index the NaN's), as in PyTorch."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    values, indices = max_pool2d(x, 2, return_indices=True)
    expected, expected_idx = F.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(values, expected.numpy())
    np.testing.assert_array_equal(indices, expected_idx.numpy())


def test_max_pool_float32_preserved():
    """float32 in, float32 out, equal to torch's float32 result."""
    x = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    ours = max_pool2d(x, 2)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, F.max_pool2d(torch.from_numpy(x), 2).numpy())


def test_global_avg_pool_matches_adaptive():
    """global_avg_pool2d equals adaptive_avg_pool2d(x, 1)."""
    x = np.random.default_rng(2).standard_normal((3, 5, 7, 4))
    expected = F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    np.testing.assert_allclose(global_avg_pool2d(x), expected, RTOL, ATOL)


@given(
    case=conv_case(),
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
)
def test_conv2d_dtypes_match_torch(case, dtype):
    """float32 stays float32 (within 1e-5 of torch), integers and bools compute in float64."""
    x, w, b, stride, padding, pads, dilation, groups, mode, _ = case
    assume(fits(x, w, pads, dilation, mode))
    if dtype in (np.int32, np.bool_):
        x = (x > 0) if dtype is np.bool_ else np.round(x * 10).astype(np.int32)
    else:
        x = x.astype(dtype)
    expected = torch_conv2d(
        x.astype(np.float64), w, b, stride, pads, dilation, groups, mode
    )
    ours = conv2d(x, w, b, stride, padding, dilation, groups, mode)
    if dtype is np.float32:
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    else:
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, expected, RTOL, ATOL)
