"""The signal family against numpy and scipy.signal (rtol 1e-12 direct, 1e-9 FFT)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit import convolve1d, convolve2d, correlate1d, correlate2d
from cnnkit.errors import InvalidArgument
from cnnkit.ops import _core as core_module
from cnnkit.ops import reference
from tests.forcing import prefer_path
from tests.reference.helpers import max_pad, reference_pad

RTOL, ATOL = 1e-12, 1e-12
MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
SCIPY_BOUNDARY = {"zeros": "fill", "circular": "wrap", "symmetric": "symm"}


def dilate(kernel: np.ndarray, dilation) -> np.ndarray:
    """Insert dilation-1 zeros between kernel taps (an independent way to dilate)."""
    dilation = np.broadcast_to(dilation, (kernel.ndim,))
    shape = [d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation)]
    out = np.zeros(shape)
    out[tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


def reference_correlate2d(image, kernel, pads, mode, stride, dilation):
    """Pad independently, take scipy's 'valid' correlation with a dilated kernel, subsample."""
    padded = reference_pad(image, pads, mode)
    full = scipy.signal.correlate2d(padded, dilate(kernel, dilation), mode="valid")
    return full[:: stride[0], :: stride[1]]


# ---- worked examples -------------------------------------------------------------------------


def test_textbook_1d_padding_2():
    """Textbook 1-D example: true convolution with padding 2."""
    out = convolve1d([1, 3, 2, 4, 5, 6, 1, 3], [1, 0, 3, 1, 2], padding=2)
    np.testing.assert_array_equal(out, [5, 14, 16, 26, 24, 34, 19, 22])


def test_textbook_1d_stride_2():
    """Textbook 1-D example with stride 2 (an early edition got this loop wrong)."""
    out = convolve1d([3, 2, 1, 7, 1, 2, 5, 4], [0.5, 0.75, 1.0, 0.25], padding=0, stride=2)
    np.testing.assert_allclose(out, [7, 9, 8], rtol=RTOL)


def test_textbook_2d_padding_1():
    """Textbook 2-D example: true convolution with padding 1."""
    image = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
    kernel = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
    expected = [[11, 25, 32, 13], [19, 25, 24, 13], [13, 28, 25, 17], [11, 17, 14, 9]]
    np.testing.assert_array_equal(convolve2d(image, kernel, padding=1), expected)


def test_textbook_2d_stride_2():
    """Textbook 2-D example with padding 1 and stride 2."""
    image = [[2, 1, 2], [5, 0, 1], [1, 7, 3]]
    kernel = [[0.5, 0.7, 0.4], [0.3, 0.4, 0.1], [0.5, 1, 0.5]]
    out = convolve2d(image, kernel, padding=1, stride=2)
    np.testing.assert_allclose(out, [[4.6, 1.6], [7.5, 2.9]], rtol=1e-12)


def test_impulse_reproduces_kernel():
    """Convolving a unit impulse with a kernel in 'full' mode returns the kernel itself."""
    kernel = np.arange(12.0).reshape(3, 4)
    out = convolve2d(np.ones((1, 1)), kernel)
    np.testing.assert_array_equal(out, kernel)
    np.testing.assert_array_equal(correlate2d(np.ones((1, 1)), kernel), kernel[::-1, ::-1])


def test_step_edge_sign():
    """A rising step gives +4 with a correlated Sobel x kernel and -4 with a convolved one."""
    step = np.repeat([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]], 5, axis=0)
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    inner_corr = correlate2d(step, sobel_x, "valid")
    inner_conv = convolve2d(step, sobel_x, "valid")
    np.testing.assert_array_equal(inner_corr, np.tile([0, 4, 4, 0], (3, 1)))
    np.testing.assert_array_equal(inner_conv, -inner_corr)


def test_even_kernel_same_placement_differs_between_families():
    """'same' with an even kernel: convolve keeps scipy's slice, correlate PyTorch's padding."""
    x = np.arange(1.0, 6.0)
    kernel = np.array([1.0, 10.0])
    np.testing.assert_array_equal(convolve1d(x, kernel, "same"), np.convolve(x, kernel, "same"))
    torch_same = F.conv1d(
        torch.tensor(x).view(1, 1, -1), torch.tensor(kernel).view(1, 1, -1), padding="same"
    )
    np.testing.assert_array_equal(correlate1d(x, kernel, "same"), torch_same.numpy().ravel())
    # numpy.correlate puts the extra element before: one position earlier than cnnkit.
    assert not np.array_equal(correlate1d(x, kernel, "same"), np.correlate(x, kernel, "same"))


# ---- 1-D against numpy -------------------------------------------------------------------------

arrays_1d = st.integers(1, 12).flatmap(
    lambda n: st.lists(st.floats(-10, 10, allow_nan=False, width=64), min_size=n, max_size=n)
)


@given(x=arrays_1d, k=arrays_1d, mode=st.sampled_from(["full", "same", "valid"]))
def test_convolve1d_matches_numpy(x, k, mode):
    """convolve1d equals numpy.convolve in every named mode (numpy's argument order rules)."""
    x, k = np.array(x), np.array(k)
    # numpy.convolve swaps its arguments when the second is longer; in 'same' mode the result
    # then has the kernel's length, so compare only where cnnkit's definition agrees.
    assume(mode != "same" or len(x) >= len(k))
    np.testing.assert_allclose(convolve1d(x, k, mode), np.convolve(x, k, mode), RTOL, ATOL)


@given(x=arrays_1d, k=arrays_1d, mode=st.sampled_from(["full", "same", "valid"]))
def test_correlate1d_matches_numpy_or_torch(x, k, mode):
    """correlate1d equals numpy.correlate (a longer kernel too), and PyTorch's 'same' for even
    kernels."""
    x, k = np.array(x), np.array(k)
    # With a longer kernel numpy's 'same' has the kernel's length; cnnkit's keeps x's.
    assume(mode != "same" or len(x) >= len(k))
    ours = correlate1d(x, k, mode)
    if mode == "same" and len(k) % 2 == 0:
        expected = F.conv1d(
            torch.tensor(x).view(1, 1, -1), torch.tensor(k).view(1, 1, -1), padding="same"
        ).numpy().ravel()
    else:
        expected = np.correlate(x, k, mode)
    np.testing.assert_allclose(ours, expected, RTOL, ATOL)


@given(
    x=arrays_1d,
    k=arrays_1d,
    padding=st.one_of(st.sampled_from(["full", "valid"]), st.integers(0, 3)),
    stride=st.integers(1, 3),
)
def test_convolve_is_correlate_with_flipped_kernel(x, k, padding, stride):
    """convolve(x, k) == correlate(x, flip(k)) for 'full', 'valid' and numeric padding."""
    x, k = np.array(x), np.array(k)
    try:
        ours = convolve1d(x, k, padding, stride=stride)
    except ValueError:
        assume(False)
    np.testing.assert_allclose(ours, correlate1d(x, k[::-1], padding, stride=stride), RTOL, ATOL)


@given(
    x=arrays_1d,
    k=arrays_1d,
    before=st.integers(0, 4),
    after=st.integers(0, 4),
    mode=st.sampled_from(MODES),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
)
def test_correlate1d_general_matches_padded_numpy(x, k, before, after, mode, stride, dilation):
    """correlate1d with any padding mode, stride and dilation equals pad + numpy 'valid'."""
    x, k = np.array(x), np.array(k)
    assume(max(before, after) <= max_pad(len(x), mode))
    padded = reference_pad(x[None], [(before, after)], mode)[0]
    assume(len(padded) >= dilation * (len(k) - 1) + 1)
    expected = np.correlate(padded, dilate(k, dilation), "valid")[::stride]
    ours = correlate1d(x, k, (before, after), padding_mode=mode, stride=stride, dilation=dilation)
    np.testing.assert_allclose(ours, expected, RTOL, ATOL)


# ---- 2-D against scipy.signal -------------------------------------------------------------------


@st.composite
def image_and_kernel(draw, max_size=10, max_kernel=5):
    rows, cols = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    krows, kcols = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, cols)), rng.standard_normal((krows, kcols))


def nested(shape_a, shape_b) -> bool:
    """Whether one shape is at least as large as the other in every axis (scipy's 'valid')."""
    return all(a >= b for a, b in zip(shape_a, shape_b)) or all(
        b >= a for a, b in zip(shape_a, shape_b)
    )


@given(
    data=image_and_kernel(),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(["zeros", "circular", "symmetric"]),
    flip=st.booleans(),
)
def test_named_modes_match_scipy_signal(data, mode, boundary, flip):
    """convolve2d/correlate2d in 'full'/'same'/'valid' equal scipy.signal with its boundaries."""
    image, kernel = data
    if mode == "valid":
        assume(nested(image.shape, kernel.shape))
    if mode == "same" and boundary != "zeros":
        assume(all(k % 2 for k in kernel.shape))  # scipy's symm/wrap 'same' centring differs
    if boundary != "zeros":
        assume(all(k - 1 <= n for k, n in zip(kernel.shape, image.shape)))
    ours_fn, theirs_fn = (
        (convolve2d, scipy.signal.convolve2d) if flip else (correlate2d, scipy.signal.correlate2d)
    )
    ours = ours_fn(image, kernel, mode, padding_mode=boundary)
    theirs = theirs_fn(image, kernel, mode=mode, boundary=SCIPY_BOUNDARY[boundary])
    np.testing.assert_allclose(ours, theirs, RTOL, ATOL)


@given(
    data=image_and_kernel(),
    pads=st.tuples(*[st.integers(0, 4)] * 4),
    mode=st.sampled_from(MODES),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_correlate2d_general_matches_reference(data, pads, mode, stride, dilation):
    """correlate2d with asymmetric padding, every mode, stride and dilation equals the reference."""
    image, kernel = data
    pads = ((pads[0], pads[1]), (pads[2], pads[3]))
    assume(all(max(p) <= max_pad(n, mode) for p, n in zip(pads, image.shape)))
    assume(
        all(
            n + b + a >= d * (k - 1) + 1
            for n, (b, a), d, k in zip(image.shape, pads, dilation, kernel.shape)
        )
    )
    ours = correlate2d(
        image, kernel, pads, padding_mode=mode, stride=stride, dilation=dilation
    )
    expected = reference_correlate2d(image, kernel, pads, mode, stride, dilation)
    np.testing.assert_allclose(ours, expected, RTOL, ATOL)


@given(
    x=arrays_1d, extra=st.integers(1, 6), seed=st.integers(0, 2**32 - 1), flip=st.booleans()
)
def test_valid_1d_with_the_longer_operand_second_matches_numpy(x, extra, seed, flip):
    """'valid' with a kernel longer than x swaps them as numpy does (correlation reversed)."""
    x = np.array(x)
    kernel = np.random.default_rng(seed).standard_normal(len(x) + extra)
    ours_fn, theirs_fn = (convolve1d, np.convolve) if flip else (correlate1d, np.correlate)
    np.testing.assert_allclose(ours_fn(x, kernel, "valid"), theirs_fn(x, kernel, "valid"),
                               RTOL, ATOL)


@st.composite
def image_inside_kernel(draw, max_size=6, max_extra=5):
    """An image and a kernel at least as large in both axes and larger in one."""
    rows, cols = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    extra = draw(
        st.tuples(st.integers(0, max_extra), st.integers(0, max_extra)).filter(any)
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kernel_shape = (rows + extra[0], cols + extra[1])
    return rng.standard_normal((rows, cols)), rng.standard_normal(kernel_shape)


@given(data=image_inside_kernel(), flip=st.booleans(), dtype=st.sampled_from([np.float64,
                                                                                np.float32]))
def test_valid_2d_with_the_larger_operand_second_matches_scipy(data, flip, dtype):
    """'valid' with a kernel larger than the image equals scipy.signal (swapped; correlate2d
    reversed), in the image's dtype."""
    image, kernel = (array.astype(dtype) for array in data)
    ours_fn, theirs_fn = (
        (convolve2d, scipy.signal.convolve2d) if flip else (correlate2d, scipy.signal.correlate2d)
    )
    ours = ours_fn(image, kernel, "valid")
    assert ours.dtype == dtype
    tolerance = RTOL if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ours, theirs_fn(image, kernel, mode="valid"), tolerance, tolerance)


def test_valid_swap_hand_checked():
    """A worked case: correlate2d of a 1×2 image with a 2×3 kernel is scipy's reversed one."""
    image, kernel = [[1, 2]], [[1, 0, -1], [2, 0, -2]]
    # correlate2d(kernel, image, 'valid') = [[1, -2], [2, -4]]; reversed in both axes:
    np.testing.assert_array_equal(correlate2d(image, kernel, "valid"), [[-4, 2], [-2, 1]])
    np.testing.assert_array_equal(convolve2d(image, kernel, "valid"), [[2, -1], [4, -2]])


@pytest.mark.parametrize("function", [convolve2d, correlate2d])
def test_valid_without_a_larger_operand_is_refused_as_scipy_does(function):
    """'valid' where neither operand holds the other is refused (scipy raises too)."""
    with pytest.raises(ValueError):
        scipy.signal.convolve2d(np.ones((2, 4)), np.ones((3, 3)), mode="valid")
    with pytest.raises(ValueError, match=r"at least as large as the other in every axis"):
        function(np.ones((2, 4)), np.ones((3, 3)), "valid")


def test_valid_swap_refuses_stride_and_dilation():
    """The swap is numpy's and scipy's, who have no stride or dilation: those are refused."""
    with pytest.raises(ValueError, match=r"defined for stride 1 and dilation 1 only"):
        correlate1d([1.0, 2.0], [1.0, 2.0, 3.0], "valid", stride=2)
    with pytest.raises(ValueError, match=r"defined for stride 1 and dilation 1 only"):
        convolve2d(np.ones((2, 2)), np.ones((3, 3)), "valid", dilation=2)


@given(
    data=image_and_kernel(),
    mode=st.sampled_from(["full", "same"]),
    fillvalue=st.floats(-5, 5, allow_nan=False),
    flip=st.booleans(),
)
def test_fillvalue_matches_scipy_fill_boundary(data, mode, fillvalue, flip):
    """fillvalue pads with a constant, as scipy.signal's boundary='fill', fillvalue=v."""
    image, kernel = data
    ours_fn, theirs_fn = (
        (convolve2d, scipy.signal.convolve2d) if flip else (correlate2d, scipy.signal.correlate2d)
    )
    theirs = theirs_fn(image, kernel, mode=mode, boundary="fill", fillvalue=fillvalue)
    np.testing.assert_allclose(ours_fn(image, kernel, mode, fillvalue=fillvalue), theirs,
                               RTOL, ATOL)


@given(
    x=arrays_1d, k=arrays_1d, before=st.integers(0, 4), after=st.integers(0, 4),
    fillvalue=st.floats(-5, 5, allow_nan=False), flip=st.booleans(),
)
def test_fillvalue_1d_matches_padded_numpy(x, k, before, after, fillvalue, flip):
    """In 1-D, fillvalue equals numpy.pad(constant_values=v) followed by numpy's 'valid'."""
    x, k = np.array(x), np.array(k)
    assume(len(x) + before + after >= len(k))
    padded = np.pad(x, (before, after), constant_values=fillvalue)
    ours_fn, theirs_fn = (convolve1d, np.convolve) if flip else (correlate1d, np.correlate)
    np.testing.assert_allclose(ours_fn(x, k, (before, after), fillvalue=fillvalue),
                               theirs_fn(padded, k, "valid"), RTOL, ATOL)


def test_fillvalue_hand_checked():
    """Summing windows of [1, 2] padded with 10s: [10+1, 1+2, 2+10]."""
    np.testing.assert_array_equal(correlate1d([1, 2], [1, 1], fillvalue=10), [11, 3, 12])


def test_kernel_larger_than_image_full():
    """A kernel larger than the image in 'full' mode equals scipy."""
    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((2, 3)), rng.standard_normal((5, 7))
    np.testing.assert_allclose(
        convolve2d(image, kernel), scipy.signal.convolve2d(image, kernel), RTOL, ATOL
    )


def test_one_by_one_image_and_kernel():
    """1×1 image with a 1×1 kernel is a product in every mode."""
    for mode in ("full", "same", "valid"):
        assert convolve2d([[3.0]], [[-2.0]], mode).tolist() == [[-6.0]]


# ---- banded path -------------------------------------------------------------------------------


@given(
    height=st.integers(1, 40),
    width=st.integers(1, 70),
    kernel_shape=st.tuples(st.integers(1, 12), st.integers(1, 45)).filter(lambda k: k != (1, 1)),
    vertical=st.booleans(),
    padding=st.sampled_from(["same", "full", "valid"]),
    flip=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_banded_path_matches_scipy(height, width, kernel_shape, vertical, padding, flip, seed):
    """The banded path (forced here) equals scipy's sum for one-row, one-column and 2-D kernels,
    including blocks cut short at the edge and kernels longer than the image."""
    if vertical:
        kernel_shape = (kernel_shape[1], 1)
    if padding == "valid":
        assume(height >= kernel_shape[0] and width >= kernel_shape[1])
    rng = np.random.default_rng(seed)
    image, kernel = rng.standard_normal((height, width)), rng.standard_normal(kernel_shape)
    taken = []
    real_banded = core_module._correlate_banded
    with (
        mock.patch.object(core_module, "choose_method", lambda *args, **kwargs: "banded"),
        mock.patch.object(
            core_module, "_correlate_banded",
            lambda *args: taken.append(True) or real_banded(*args),
        ),
    ):
        ours = (convolve2d if flip else correlate2d)(image, kernel, padding)
    reference = scipy.signal.convolve2d if flip else scipy.signal.correlate2d
    np.testing.assert_allclose(ours, reference(image, kernel, mode=padding), rtol=RTOL, atol=ATOL)
    assert taken


@pytest.mark.parametrize(
    ("shape", "kernel_shape", "dilation"),
    [
        ((40, 64), (1, 25), 1),  # a long row pass
        ((64, 40), (25, 1), 1),  # a long column pass
        ((36, 36), (5, 5), 1),  # a mid-sized 2-D kernel
        ((30, 34), (1, 3), 1),  # three taps
        ((30, 30), (3, 3), 1),
        ((36, 36), (5, 5), 2),  # dilated: no banded path
        ((8, 32), (1, 25), 1),  # a tiny plane
    ],
)
def test_every_path_gives_the_same_correlation(shape, kernel_shape, dilation):
    """Each path that applies, forced (direct, banded, FFT), gives scipy's 'full' correlation
    and the direct path's (1e-12; 1e-9 for the FFT); the banded path refuses a dilation; and
    whatever path the cost model picks is one of these, with that path's answer."""
    rng = np.random.default_rng(12)
    image, kernel = rng.standard_normal(shape), rng.standard_normal(kernel_shape)
    pads = tuple((dilation * (k - 1),) * 2 for k in kernel_shape)
    out_shape = tuple(n + dilation * (k - 1) for n, k in zip(shape, kernel_shape))
    expected = reference_correlate2d(image, kernel, pads, "zeros", (1, 1), (dilation,) * 2)

    def correlate(method):
        return core_module.correlate(image[None, None], kernel[None, None], (1, 1),
                                     (dilation,) * 2, pads, 1, out_shape, method=method)[0, 0]

    results = {}
    for method in ("direct", "banded", "fft"):
        if method == "banded" and dilation > 1:
            with pytest.raises(InvalidArgument, match="dilation 1"):
                correlate(method)
            continue
        results[method] = correlate(method)
        tolerance = 1e-9 if method == "fft" else RTOL
        np.testing.assert_allclose(results[method], expected, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(results[method], results["direct"], rtol=tolerance,
                                   atol=tolerance)
    chosen = core_module.choose_method(shape, kernel_shape, out_shape, (dilation,) * 2, pads,
                                       banded=dilation == 1)
    assert chosen in results
    np.testing.assert_array_equal(correlate("auto"), results[chosen])


def test_banded_path_refuses_what_it_cannot_do():
    """Forcing the banded path with a stride or on several planes is a clear error."""
    x, weight = np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 3, 3))
    with pytest.raises(InvalidArgument, match="stride 1 and dilation 1"):
        core_module.correlate(x, weight, (2, 2), (1, 1), ((0, 0), (0, 0)), 1, (3, 3),
                              method="banded")


def test_nan_stays_local_where_banded_would_be_cheaper(monkeypatch):
    """A NaN spreads only over the outputs whose window holds it, though the band's zeros would
    spread it over a whole block: where the cost model prefers the banded path (forced here),
    such data takes the direct path."""
    prefer_path(monkeypatch, "banded")
    image = np.zeros((64, 400))
    image[10, 200] = np.nan
    out = correlate2d(image, np.ones((1, 25)), "same")
    expected = np.zeros((64, 400), dtype=bool)
    expected[10, 188:213] = True
    np.testing.assert_array_equal(np.isnan(out), expected)


# ---- FFT path ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 64), (57, 80)])
@pytest.mark.parametrize("kernel_shape", [(31, 31), (20, 25)])
@pytest.mark.parametrize("padding", ["same", "full", "valid"])
def test_fft_path_matches_scipy(monkeypatch, shape, kernel_shape, padding):
    """The FFT path (forced here, whatever the cost model would choose) agrees with scipy's
    direct sum to 1e-9."""
    taken = []
    real_fft = core_module._correlate_fft
    monkeypatch.setattr(core_module, "choose_method", lambda *args, **kwargs: "fft")
    monkeypatch.setattr(
        core_module, "_correlate_fft", lambda *args: taken.append(True) or real_fft(*args)
    )
    rng = np.random.default_rng(7)
    image, kernel = rng.standard_normal(shape), rng.standard_normal(kernel_shape)
    np.testing.assert_allclose(
        convolve2d(image, kernel, padding),
        scipy.signal.convolve2d(image, kernel, mode=padding),
        rtol=1e-9,
        atol=1e-9,
    )
    assert taken


def test_fft_path_with_dilation_and_reflect():
    """FFT with a dilated kernel and reflect padding equals the padded reference."""
    rng = np.random.default_rng(8)
    image, kernel = rng.standard_normal((70, 60)), rng.standard_normal((15, 15))
    pads = ((14, 14), (14, 14))
    ours = correlate2d(image, kernel, "same", padding_mode="reflect", dilation=2)
    expected = reference_correlate2d(image, kernel, pads, "reflect", (1, 1), (2, 2))
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)


def test_nan_stays_local_with_large_kernel(monkeypatch):
    """A NaN pollutes only the outputs whose window contains it, even for large kernels, where
    the cost model prefers the FFT (forced here), which would spread it over the whole output."""
    prefer_path(monkeypatch, "fft")
    rng = np.random.default_rng(9)
    image, kernel = rng.standard_normal((64, 64)), rng.standard_normal((31, 31))
    image[0, 0] = np.nan
    out = correlate2d(image, kernel, "same")
    assert np.isnan(out[:16, :16]).all()
    assert np.isfinite(out[16:, :]).all() and np.isfinite(out[:, 16:]).all()
    np.testing.assert_allclose(
        out, scipy.signal.correlate2d(image, kernel, mode="same"), rtol=1e-9, atol=1e-9
    )


def test_float32_stays_float32_and_agrees():
    """float32 in gives float32 out, within 1e-5 of the float64 result."""
    rng = np.random.default_rng(10)
    image, kernel = rng.standard_normal((40, 40)), rng.standard_normal((5, 5))
    ours = correlate2d(image.astype(np.float32), kernel, "same")
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, correlate2d(image, kernel, "same"), rtol=1e-5, atol=1e-4)


def test_integer_and_bool_inputs_computed_in_float64():
    """Integer and boolean inputs are computed in float64."""
    out = convolve1d(np.array([1, 2, 3], dtype=np.int8), np.array([True, True]))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [1, 3, 5, 3])


# ---- the tutorial's loop as an oracle ----------------------------------------------------------


@given(data=image_and_kernel(max_size=8, max_kernel=5))
def test_fast_path_matches_tutorial_loop(data):
    """convolve2d(..., padding=k//2) equals the tutorial's pixel loop for odd kernels."""
    image, kernel = data
    assume(all(k % 2 for k in kernel.shape))
    pads = tuple((k // 2, k // 2) for k in kernel.shape)
    np.testing.assert_allclose(
        convolve2d(image, kernel, pads), reference.convolve2d_loop(image, kernel), RTOL, ATOL
    )


@given(
    data=image_and_kernel(),
    mode=st.sampled_from(["full", "same", "valid"]),
    dtype=st.sampled_from([np.float32, np.int16, np.uint8]),
)
def test_dtypes_match_scipy(data, mode, dtype):
    """float32 in gives float32 out (1e-5 of scipy); integer images are computed in float64."""
    image, kernel = data
    if mode == "valid":
        assume(image.shape[0] >= kernel.shape[0] and image.shape[1] >= kernel.shape[1])
    if dtype is np.float32:
        image = image.astype(np.float32)
    else:
        image = np.abs(np.round(image * 20)).astype(dtype)
    ours = convolve2d(image, kernel, mode)
    expected = scipy.signal.convolve2d(image.astype(np.float64), kernel, mode=mode)
    if dtype is np.float32:
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    else:
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, expected, RTOL, ATOL)
