"""Built-in sample images: shapes, value ranges and the hand-checkable pattern of each."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.filters import (
    SAMPLE_NAMES,
    checkerboard,
    concentric_circles,
    grid_lines,
    noisy_gradient,
    sample_image,
    sobel,
    step_edge,
)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_samples_are_float_images_in_unit_range(name):
    """Every sample is float64 in [0, 1] with the requested (rows, columns)."""
    image = sample_image(name, (40, 56))
    assert image.shape == (40, 56) and image.dtype == np.float64
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert sample_image(name).shape == (128, 128)


def test_grid_has_black_lines_at_the_stated_rows_and_columns():
    """Lines of `thickness` start at spacing//2 + k*spacing; everything else is white."""
    grid = grid_lines(64, spacing=16, thickness=2)
    line_positions = [8, 9, 24, 25, 40, 41, 56, 57]
    dark_rows = np.flatnonzero((grid == 0).all(axis=1))
    dark_columns = np.flatnonzero((grid == 0).all(axis=0))
    assert dark_rows.tolist() == line_positions and dark_columns.tolist() == line_positions
    off_lines = np.delete(np.delete(grid, line_positions, axis=0), line_positions, axis=1)
    assert (off_lines == 1.0).all()


def test_grid_sobel_responds_beside_vertical_lines_only():
    """Away from the horizontal lines, sobel-x is -4 entering a black line and +4 leaving it,
    zero elsewhere; sobel-y is zero there: the tutorial's point about the two kernels."""
    grid = grid_lines(64, spacing=16, thickness=2)
    row_between_lines = 16
    expected = np.zeros(64)
    for start in (8, 24, 40, 56):
        expected[start - 1 : start + 3] = [-4, -4, 4, 4]
    np.testing.assert_array_equal(sobel(grid, 1)[row_between_lines], expected)
    np.testing.assert_array_equal(sobel(grid, 0)[row_between_lines], 0)


def test_grid_refuses_thickness_not_below_spacing():
    """Lines as thick as their spacing would leave no white."""
    with pytest.raises(ValueError, match="thickness must be smaller than spacing"):
        grid_lines(32, spacing=4, thickness=4)


def test_checkerboard_alternates_squares():
    """Neighbouring squares differ; squares repeat every two squares."""
    board = checkerboard((12, 18), square=3)
    assert board[0, 0] == 1.0 and board[0, 3] == 0.0 and board[3, 0] == 0.0 and board[3, 3] == 1
    np.testing.assert_array_equal(board[:6, :6], board[6:12, 6:12])
    assert board.mean() == pytest.approx(0.5)


@pytest.mark.parametrize("axis", [0, 1])
def test_step_edge_has_one_edge_at_the_middle(axis):
    """First half 0, second half 1 along the axis."""
    image = step_edge((6, 10), axis=axis)
    profile = image[0] if axis == 1 else image[:, 0]
    middle = image.shape[axis] // 2
    assert (profile[:middle] == 0).all() and (profile[middle:] == 1).all()


def test_step_edge_refuses_bad_axis():
    """Only axes 0 and 1 exist."""
    with pytest.raises(ValueError, match="axis must be 0"):
        step_edge(8, axis=2)


def test_concentric_circles_are_radially_symmetric():
    """The pattern depends on the distance from the centre only: it is symmetric under flips
    and transposition, and white in the centre."""
    rings = concentric_circles(65, period=10)
    np.testing.assert_array_equal(rings, rings[::-1])
    np.testing.assert_array_equal(rings, rings[:, ::-1])
    np.testing.assert_array_equal(rings, rings.T)
    assert rings[32, 32] == 1.0 and rings[32, 32 + 5] == 0.0 and rings[32, 32 + 10] == 1.0


def test_noisy_gradient_is_reproducible_and_centred_on_the_ramp():
    """The same seed gives the same image; averaging rows recovers the linear ramp."""
    first = noisy_gradient((400, 11), noise=0.05, seed=3)
    np.testing.assert_array_equal(first, noisy_gradient((400, 11), noise=0.05, seed=3))
    assert not np.array_equal(first, noisy_gradient((400, 11), noise=0.05, seed=4))
    ramp = np.linspace(0, 1, 11)
    interior = slice(2, 9)  # clipping biases the ends
    np.testing.assert_allclose(first.mean(axis=0)[interior], ramp[interior], atol=0.015)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sample_image("lena"), ValueError, "sample name must be one of"),
        (lambda: sample_image("grid", 0), ValueError, "size"),
        (lambda: sample_image("grid", (3, 4, 5)), ValueError, "size"),
        (lambda: checkerboard(8, square=0), ValueError, "square"),
        (lambda: concentric_circles(8, period=1), ValueError, "period"),
        (lambda: noisy_gradient(8, noise=-1.0), ValueError, "noise"),
        (lambda: noisy_gradient(8, seed=1.5), TypeError, "seed"),
    ],
)
def test_samples_refuse_bad_arguments(call, error, match):
    """Each bad sample argument is refused with a message naming it."""
    with pytest.raises(error, match=match):
        call()
