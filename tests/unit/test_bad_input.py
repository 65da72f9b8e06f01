"""Every public primitive refuses bad input with an error naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit import (
    avg_pool2d,
    conv1d,
    conv2d,
    conv2d_backward,
    convolve1d,
    convolve2d,
    correlate1d,
    correlate2d,
    global_avg_pool2d,
    max_pool2d,
    max_pool2d_backward,
    pad,
)

IMAGE = np.ones((5, 5))
BATCH = np.ones((1, 2, 5, 5))
WEIGHT = np.ones((3, 2, 3, 3))

CASES = [
    # wrong number of dimensions
    (lambda: correlate2d(np.ones(5), np.ones((3, 3))), ValueError, "image must have 2 dimensions, got 1"),
    (lambda: convolve1d(np.ones((2, 2)), [1]), ValueError, "x must have 1 dimensions, got 2"),
    (lambda: conv2d(np.ones((5, 5)), WEIGHT), ValueError, r"input must have 3 or 4 dimensions, got 2"),
    (lambda: conv2d(BATCH, np.ones((3, 2, 3))), ValueError, "weight must have 4 dimensions, got 3"),
    (lambda: conv1d(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3))), ValueError, "input must have 2 or 3"),
    (lambda: max_pool2d(np.ones((5, 5)), 2), ValueError, "input must have 3 or 4 dimensions"),
    (lambda: global_avg_pool2d(np.ones(5)), ValueError, "input must have 3 or 4 dimensions"),
    # empty arrays
    (lambda: correlate2d(np.ones((0, 5)), np.ones((3, 3))), ValueError, r"image must not be empty, got shape \(0, 5\)"),
    (lambda: convolve1d([1, 2], []), ValueError, "kernel must not be empty"),
    (lambda: conv2d(np.ones((0, 2, 5, 5)), WEIGHT), ValueError, "input must not be empty"),
    # channels and groups
    (lambda: conv2d(np.ones((1, 4, 5, 5)), WEIGHT), ValueError, r"expects 2 input channels .* has 4"),
    (lambda: conv2d(BATCH, WEIGHT, groups=2), ValueError, r"groups=2 must divide .* output channels \(3\)"),
    (lambda: conv2d(BATCH, WEIGHT, groups=0), ValueError, "groups must be a positive integer, got 0"),
    (lambda: conv2d(BATCH, WEIGHT, bias=np.ones(2)), ValueError, r"one value per output channel \(3\)"),
    # non-positive stride, dilation, kernel; negative padding
    (lambda: correlate2d(IMAGE, np.ones((3, 3)), stride=0), ValueError, "stride must be a positive integer, got 0"),
    (lambda: conv2d(BATCH, WEIGHT, dilation=(1, -2)), ValueError, "dilation must be a positive integer, got -2"),
    (lambda: max_pool2d(BATCH, 0), ValueError, "kernel_size must be a positive integer, got 0"),
    (lambda: max_pool2d(BATCH, 2, stride=-1), ValueError, "stride must be a positive integer, got -1"),
    (lambda: conv2d(BATCH, WEIGHT, padding=-1), ValueError, "padding must be an integer >= 0, got -1"),
    (lambda: avg_pool2d(BATCH, 2, padding=-1), ValueError, "padding must be an integer >= 0, got -1"),
    (lambda: correlate2d(IMAGE, np.ones((3, 3)), stride=1.5), TypeError, r"stride must be an integer, got 1.5"),
    # unknown names
    (lambda: correlate2d(IMAGE, np.ones((3, 3)), "half"), ValueError, "padding must be one of 'valid', 'same', 'full', got 'half'"),
    (lambda: conv2d(BATCH, WEIGHT, padding_mode="mirror"), ValueError, "padding_mode must be one of .* got 'mirror'"),
    (lambda: pad(IMAGE, [(1, 1)], "edge"), ValueError, "padding_mode must be one of"),
    (lambda: max_pool2d(BATCH, 2, padding="same"), ValueError, "padding must be a non-negative integer or a pair, got 'same'"),
    # 'same' with stride > 1
    (lambda: conv2d(BATCH, WEIGHT, stride=2, padding="same"), ValueError, r"'same' is only defined for stride 1, got stride=2"),
    (lambda: correlate1d([1, 2, 3], [1, 1], "same", stride=2), ValueError, "give the padding as a number"),
    # output size zero or negative
    (lambda: correlate2d(np.ones((4, 4)), np.ones((3, 3)), "valid", dilation=2), ValueError, r"input size 4 .* kernel's extent 5"),
    (lambda: correlate2d(np.ones((2, 4)), np.ones((3, 3)), "valid"), ValueError, r"got image shape \(2, 4\) and kernel shape \(3, 3\)"),
    # fillvalue: a real number, for constant padding only
    (lambda: correlate2d(IMAGE, np.ones((3, 3)), fillvalue="1"), TypeError, "fillvalue must be a real number, got '1'"),
    (lambda: convolve1d([1, 2, 3], [1, 1], fillvalue=True), TypeError, "fillvalue must be a real number, got True"),
    (lambda: correlate2d(IMAGE, np.ones((3, 3)), padding_mode="reflect", fillvalue=1), ValueError, r"does not combine with padding_mode='reflect'"),
    (lambda: conv2d(BATCH, WEIGHT, dilation=3), ValueError, r"input size 5 .* extent 7"),
    (lambda: max_pool2d(np.ones((1, 1, 2, 2)), 3), ValueError, "does not fit"),
    # pooling padding larger than half the kernel
    (lambda: max_pool2d(BATCH, 2, padding=2), ValueError, r"padding must be at most half of the kernel: got padding=\(2, 2\)"),
    (lambda: avg_pool2d(BATCH, 3, padding=2), ValueError, "at most half of the kernel"),
    # dtypes
    (lambda: correlate2d(IMAGE.astype(complex), np.ones((3, 3))), TypeError, "image must hold real numbers .* got dtype complex128"),
    (lambda: conv2d(BATCH.astype(object), WEIGHT), TypeError, "got dtype object"),
    (lambda: convolve1d(np.array(["a", "b"]), [1]), TypeError, "x must hold real numbers"),
    (lambda: conv2d(BATCH, WEIGHT.astype(np.complex64)), TypeError, "weight must hold real numbers"),
    # reflect/symmetric/circular wider than the input allows
    (lambda: correlate2d(np.ones((3, 3)), np.ones((3, 3)), 3, padding_mode="reflect"), ValueError, r"'reflect' can pad at most 2 element\(s\) on each side of an axis of size 3, got padding \(3, 3\)"),
    (lambda: conv1d(np.ones((1, 1, 2)), np.ones((1, 1, 3)), padding=3, padding_mode="circular"), ValueError, "'circular' can pad at most 2"),
    (lambda: convolve1d([1.0, 2.0], [1.0] * 5, padding_mode="symmetric"), ValueError, "'symmetric' can pad at most 2"),
    # backward: gradient of the wrong shape
    (lambda: conv2d_backward(np.ones((1, 3, 2, 2)), BATCH, WEIGHT), ValueError, r"grad_output must have the output's shape \(1, 3, 3, 3\), got \(1, 3, 2, 2\)"),
    (lambda: max_pool2d_backward(np.ones((1, 2, 3, 3)), BATCH, 2), ValueError, "grad_output must have the output's shape"),
]


@pytest.mark.parametrize(("call", "error", "match"), CASES)
def test_refusal_names_argument_and_value(call, error, match):
    """Each bad call raises the stated error type with a message naming what is wrong."""
    with pytest.raises(error, match=match):
        call()


def test_nan_and_inf_propagate_not_refused():
    """NaN and inf in the data follow IEEE arithmetic; they are not errors."""
    x = np.array([1.0, np.nan, 2.0, np.inf, 3.0])
    out = correlate1d(x, [1.0, 1.0], "valid")
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isinf(out[2]) and np.isinf(out[3])
    assert np.isnan(max_pool2d(np.full((1, 2, 2), np.nan), 2)).all()


def test_inputs_are_not_modified():
    """The primitives never write into the caller's arrays."""
    image, kernel = np.arange(25.0).reshape(5, 5), np.ones((3, 3))
    before = image.copy(), kernel.copy()
    convolve2d(image, kernel, "same", padding_mode="reflect")
    conv2d_backward(np.ones((1, 1, 3, 3)), image[None, None], kernel[None, None])
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(kernel, before[1])
