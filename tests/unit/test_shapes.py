"""The output-size formula and padding resolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit import explain_output_size, output_shape, output_size, resolve_padding


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((32, 5, 1, 2), 32),  # the tutorial's example
        ((28, 2, 2, 0), 14),
        ((7, 3, 2, 0), 3),
        ((8, 5, 1, 2), 8),
        ((8, 4, 2, 0), 3),
        ((1, 1, 1, 0), 1),
    ],
)
def test_hand_checked_sizes(args, expected):
    """output_size gives the hand-computed sizes of CONVENTIONS.md and the textbook."""
    assert output_size(*args) == expected


def test_ceil_mode_keeps_partial_window():
    """ceil_mode adds the partial last window (5 with kernel 2 gives 3, not 2)."""
    assert output_size(5, 2, 2) == 2
    assert output_size(5, 2, 2, ceil_mode=True) == 3


def test_ceil_mode_drops_window_starting_in_right_padding():
    """A last window that would start inside the right padding is dropped (PyTorch's rule)."""
    # n=3, k=2, s=2, p=1: ceil((3+2-2)/2)+1 = 3, but the third window would start at
    # padded position 4, which is the right padding: it is dropped.
    assert output_size(3, 2, 2, 1, ceil_mode=True) == 2
    assert F.max_pool2d(torch.zeros(1, 1, 3, 3), 2, 2, 1, ceil_mode=True).shape[-1] == 2


@given(
    n=st.integers(1, 40),
    k=st.integers(1, 7),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    p=st.integers(0, 4),
)
def test_conv_output_size_matches_torch(n, k, s, d, p):
    """output_size equals the length PyTorch's conv1d produces for the same arguments."""
    assume(n + 2 * p >= d * (k - 1) + 1)
    out = F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s, padding=p, dilation=d)
    assert output_size(n, k, s, p, d) == out.shape[-1]


@given(
    n=st.integers(1, 30),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    p=st.integers(0, 3),
    ceil_mode=st.booleans(),
)
def test_pool_output_size_matches_torch(n, k, s, d, p, ceil_mode):
    """output_size with ceil_mode equals the length of PyTorch's max_pool1d output."""
    assume(p <= k // 2)
    try:
        expected = F.max_pool1d(torch.zeros(1, 1, n), k, s, p, d, ceil_mode).shape[-1]
    except RuntimeError:
        with pytest.raises(ValueError, match="does not fit"):
            output_size(n, k, s, p, d, ceil_mode)
        return
    assert output_size(n, k, s, p, d, ceil_mode) == expected


def test_output_shape_per_axis():
    """output_shape applies the formula per axis with int-or-pair arguments."""
    assert output_shape((28, 28), 5, padding=2) == (28, 28)
    assert output_shape((14, 10), (2, 3), stride=(2, 1), padding=((0, 0), (1, 1))) == (7, 10)
    assert output_shape((9,), 3, padding="same") == (9,)


@pytest.mark.parametrize(
    ("padding", "kernel", "extra_before", "expected"),
    [
        ("valid", (3, 4), False, ((0, 0), (0, 0))),
        ("full", (3, 4), False, ((2, 2), (3, 3))),
        ("same", (3, 4), False, ((1, 1), (1, 2))),
        ("same", (3, 4), True, ((1, 1), (2, 1))),
        (1, (3, 3), False, ((1, 1), (1, 1))),
        ((1, 2), (3, 3), False, ((1, 1), (2, 2))),
        (((0, 1), (2, 3)), (3, 3), False, ((0, 1), (2, 3))),
    ],
)
def test_resolve_padding_forms(padding, kernel, extra_before, expected):
    """Every accepted padding form resolves to the documented (before, after) pairs."""
    assert resolve_padding(padding, kernel, extra_before=extra_before) == expected


def test_resolve_padding_1d_pair_is_before_after():
    """In 1-D a pair means (before, after)."""
    assert resolve_padding((1, 3), (2,)) == ((1, 3),)


def test_same_with_dilation_uses_dilated_extent():
    """'same' pads dilation*(k-1) in total."""
    assert resolve_padding("same", (3,), dilation=(3,)) == ((3, 3),)


def test_explain_formula():
    """explain_output_size shows the numbers in the formula and the result."""
    assert explain_output_size(32, 5, padding=2) == "floor((32 + 2*2 - 5) / 1) + 1 = 32"
    assert explain_output_size(5, 2, 2, ceil_mode=True) == "ceil((5 + 2*0 - 2) / 2) + 1 = 3"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0, "kernel_size": 1}, ValueError, "n must be a positive integer, got 0"),
        ({"n": 5, "kernel_size": 0}, ValueError, "kernel_size must be a positive integer"),
        ({"n": 5, "kernel_size": 2, "stride": 0}, ValueError, "stride must be a positive"),
        ({"n": 5, "kernel_size": 2, "dilation": -1}, ValueError, "dilation must be a positive"),
        ({"n": 5, "kernel_size": 2, "padding": -1}, ValueError, "padding must be an integer >= 0"),
        ({"n": 5.0, "kernel_size": 2}, TypeError, "n must be an integer, got 5.0"),
        ({"n": 5, "kernel_size": True}, TypeError, "kernel_size must be an integer"),
        ({"n": 5, "kernel_size": 2, "padding": "half"}, ValueError, "padding must be one of"),
        ({"n": 5, "kernel_size": 3, "stride": 2, "padding": "same"}, ValueError, "stride 1"),
        ({"n": 3, "kernel_size": 5}, ValueError, r"input size 3 .* kernel's extent 5"),
        ({"n": 5, "kernel_size": 2, "padding": (1, 2, 3)}, ValueError, "padding must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    """Bad sizes, strides, paddings and names raise errors that name the argument and value."""
    with pytest.raises(error, match=match):
        output_size(**kwargs)
