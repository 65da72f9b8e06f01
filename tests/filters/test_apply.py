"""Filters applied to images, against scipy.ndimage, OpenCV and scikit-image (1e-10, float64)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal
import skimage.exposure
import skimage.filters
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.filters import (
    PADDING_MODES,
    box_blur,
    edge_magnitude,
    edge_orientation,
    filter_image,
    gaussian_blur,
    gaussian_kernel,
    laplacian,
    laplacian_kernel,
    prewitt,
    scharr,
    separable_factors,
    sharpen,
    sharpen_kernel,
    sobel,
    sobel_kernel,
    step_edge,
)
from cnnkit.filters.apply import _filter
from cnnkit.imageio import to_uint8
from cnnkit.ops import _parallel as parallel_module
from tests.forcing import PATHS, prefer_path

#: cnnkit padding_mode -> scipy.ndimage mode (note: ndimage's 'reflect' is cnnkit's 'symmetric').
NDIMAGE_MODE = {
    "zeros": "constant",
    "reflect": "mirror",
    "symmetric": "reflect",
    "replicate": "nearest",
    "circular": "wrap",
}
#: cnnkit padding_mode -> OpenCV border (OpenCV's filters have no circular border).
OPENCV_BORDER = {
    "zeros": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,
    "symmetric": cv2.BORDER_REFLECT,
    "replicate": cv2.BORDER_REPLICATE,
}


def assert_close(actual, expected, tolerance=1e-10):
    """Elementwise within tolerance relative to the largest reference value."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale)


def random_image(rng, rows, columns, channels=None):
    shape = (rows, columns) if channels is None else (rows, columns, channels)
    return rng.standard_normal(shape)


# --- filter_image against scipy.ndimage and OpenCV ----------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(5, 24),
    columns=st.integers(5, 24),
    kernel_rows=st.integers(1, 5),
    kernel_columns=st.integers(1, 5),
    padding_mode=st.sampled_from(PADDING_MODES),
    operation=st.sampled_from(["correlate", "convolve"]),
    rank_one=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_filter_image_matches_ndimage(
    rows, columns, kernel_rows, kernel_columns, padding_mode, operation, rank_one, seed
):
    """Dense, rank-1 and 1-D kernels of odd and even sizes agree with ndimage.correlate/convolve.

    ndimage centres an even kernel one place later than cnnkit's 'same' rule, so origin=-1 on
    even axes lines them up.
    """
    rng = np.random.default_rng(seed)
    image = random_image(rng, rows, columns)
    if rank_one:
        kernel = np.outer(rng.standard_normal(kernel_rows), rng.standard_normal(kernel_columns))
    else:
        kernel = rng.standard_normal((kernel_rows, kernel_columns))
    origin = [-1 if size % 2 == 0 else 0 for size in kernel.shape]
    reference = ndi.correlate if operation == "correlate" else ndi.convolve
    expected = reference(image, kernel, mode=NDIMAGE_MODE[padding_mode], origin=origin)
    actual = filter_image(image, kernel, operation=operation, padding_mode=padding_mode)
    assert actual.shape == image.shape and actual.dtype == np.float64
    assert_close(actual, expected)


@pytest.mark.parametrize("padding_mode", sorted(OPENCV_BORDER))
@pytest.mark.parametrize("kernel_shape", [(3, 3), (5, 3), (4, 4), (2, 5), (9, 9)])
def test_filter_image_matches_opencv_filter2d(padding_mode, kernel_shape):
    """Correlation equals cv2.filter2D with the matching border and the anchor cnnkit uses."""
    rng = np.random.default_rng(7)
    image = random_image(rng, 31, 26)
    kernel = rng.standard_normal(kernel_shape)
    rows, columns = kernel_shape
    anchor = ((columns - 1) // 2, (rows - 1) // 2)  # OpenCV's anchor is (x, y)
    expected = cv2.filter2D(image, cv2.CV_64F, kernel, anchor=anchor,
                            borderType=OPENCV_BORDER[padding_mode])
    assert_close(filter_image(image, kernel, padding_mode=padding_mode), expected)


#: cnnkit padding_mode -> numpy.pad mode.
NUMPY_PAD = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(5, 20),
    columns=st.integers(5, 20),
    kernel_rows=st.integers(1, 5),
    kernel_columns=st.integers(1, 5),
    padding=st.sampled_from(["full", "valid", 0, 1, 2, 3]),
    padding_mode=st.sampled_from(PADDING_MODES),
    operation=st.sampled_from(["correlate", "convolve"]),
    rank_one=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_filter_image_full_valid_and_numeric_padding_match_scipy_signal(
    rows, columns, kernel_rows, kernel_columns, padding, padding_mode, operation, rank_one, seed
):
    """padding='full', 'valid' or a number gives numpy.pad with the border mode followed by
    scipy.signal's 'valid' correlation or convolution: the sizes the tutorial's padding section
    describes (k - 1 more for full, k - 1 fewer for valid)."""
    rng = np.random.default_rng(seed)
    image = random_image(rng, rows, columns, 2)
    if rank_one:
        kernel = np.outer(rng.standard_normal(kernel_rows), rng.standard_normal(kernel_columns))
    else:
        kernel = rng.standard_normal((kernel_rows, kernel_columns))
    pads = {"full": (kernel_rows - 1, kernel_columns - 1), "valid": (0, 0)}.get(
        padding, (padding, padding))
    padded = np.pad(image, ((pads[0],) * 2, (pads[1],) * 2, (0, 0)), NUMPY_PAD[padding_mode])
    reference = scipy.signal.correlate2d if operation == "correlate" else scipy.signal.convolve2d
    expected = np.stack([reference(padded[:, :, channel], kernel, "valid")
                         for channel in range(2)], axis=2)
    actual = filter_image(image, kernel, operation=operation, padding_mode=padding_mode,
                          padding=padding)
    assert actual.shape == (rows + 2 * pads[0] - kernel_rows + 1,
                            columns + 2 * pads[1] - kernel_columns + 1, 2)
    assert_close(actual, expected)


@pytest.mark.parametrize("tile_bytes", [1, 40 * 8])
def test_full_padding_in_tiles_of_rows_matches_one_piece(monkeypatch, tile_bytes):
    """The tiles of rows cover the larger 'full' result exactly."""
    rng = np.random.default_rng(5)
    image, kernel = random_image(rng, 19, 13), rng.standard_normal((4, 3))
    whole = filter_image(image, kernel, padding="full", padding_mode="zeros")
    monkeypatch.setattr(parallel_module, "TILE_BYTES", tile_bytes)
    tiled = filter_image(image, kernel, padding="full", padding_mode="zeros")
    assert_close(tiled, scipy.signal.correlate2d(image, kernel, "full"))
    assert_close(tiled, whole)


def test_valid_padding_refuses_a_kernel_larger_than_the_image():
    """With no padding a kernel larger than the image has no position: refused, naming sizes."""
    with pytest.raises(ValueError, match="does not fit"):
        filter_image(np.zeros((4, 4)), np.ones((5, 5)), padding="valid")
    with pytest.raises(ValueError, match=r"out must have the result's shape \(6, 6\)"):
        filter_image(np.zeros((4, 4)), np.ones((3, 3)), padding="full", out=np.zeros((4, 4)))


@pytest.mark.parametrize("path", PATHS)
def test_large_dense_kernel_matches_ndimage(monkeypatch, path):
    """A large dense kernel matches ndimage on each of the primitive's paths (forced)."""
    prefer_path(monkeypatch, path)
    rng = np.random.default_rng(3)
    image = random_image(rng, 96, 80)
    kernel = rng.standard_normal((31, 31))
    expected = ndi.correlate(image, kernel, mode="mirror")
    assert_close(filter_image(image, kernel), expected, tolerance=1e-9)


def test_colour_image_is_filtered_channel_by_channel():
    """Each channel of an (H, W, C) image equals filtering that channel alone."""
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 4))
    for channels in (1, 2, 3, 4):
        image = random_image(rng, 12, 15, channels)
        result = filter_image(image, kernel, padding_mode="symmetric")
        assert result.shape == image.shape
        for channel in range(channels):
            np.testing.assert_array_equal(
                result[:, :, channel],
                filter_image(image[:, :, channel], kernel, padding_mode="symmetric"),
            )


def test_float32_stays_float32_and_integers_become_float64():
    """float32 in gives float32 out; uint8 and bool are computed in float64."""
    rng = np.random.default_rng(2)
    image = rng.random((10, 10))
    single = filter_image(image.astype(np.float32), "gaussian:sigma=1")
    assert single.dtype == np.float32
    assert_close(single, filter_image(image, "gaussian:sigma=1"), tolerance=1e-5)
    assert filter_image((image * 255).astype(np.uint8), "box").dtype == np.float64
    assert filter_image(image > 0.5, "box").dtype == np.float64


def test_results_are_never_clipped():
    """Outputs keep values outside [0, 1] (negative edges, overshooting sharpening)."""
    image = step_edge(16)
    assert sobel(image, 1, operation="convolve").min() == -4.0
    assert sharpen(image).max() > 1.0 and sharpen(image).min() < 0.0


@pytest.mark.parametrize("tile_bytes", [1, 40 * 8, 100 * 8])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("operation", ["correlate", "convolve"])
def test_strips_give_the_same_result(monkeypatch, tile_bytes, padding_mode, operation):
    """Large images run in tiles of rows; tiny tiles (down to one row) still match ndimage
    for dense and rank-1 kernels with even and odd sides."""
    monkeypatch.setattr(parallel_module, "TILE_BYTES", tile_bytes)
    rng = np.random.default_rng(22)
    image = random_image(rng, 23, 17, 2)
    reference = ndi.correlate if operation == "correlate" else ndi.convolve
    for kernel in (rng.standard_normal((4, 3)),
                   np.outer(rng.standard_normal(5), rng.standard_normal(2))):
        origin = [-1 if size % 2 == 0 else 0 for size in kernel.shape] + [0]
        expected = reference(image, kernel[:, :, None], mode=NDIMAGE_MODE[padding_mode],
                             origin=origin)
        actual = filter_image(image, kernel, operation=operation, padding_mode=padding_mode)
        assert_close(actual, expected)


# --- Separable kernels ---------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(2, 9),
    columns=st.integers(2, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_separable_factors_reconstruct_rank_one_kernels(rows, columns, seed):
    """A random rank-1 kernel is detected and its factors multiply back to it."""
    rng = np.random.default_rng(seed)
    kernel = np.outer(rng.standard_normal(rows), rng.standard_normal(columns))
    column, row = separable_factors(kernel)
    assert_close(np.outer(column, row), kernel, tolerance=1e-12)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(2, 9), seed=st.integers(0, 2**32 - 1))
def test_separable_factors_reject_full_rank_kernels(size, seed):
    """A random dense kernel (rank > 1 almost surely) is not split."""
    kernel = np.random.default_rng(seed).standard_normal((size, size))
    assert separable_factors(kernel) is None


def test_separable_factors_are_exact_for_integer_kernels():
    """Sobel factors through its largest weight exactly, so no rounding appears."""
    column, row = separable_factors(sobel_kernel(1))
    np.testing.assert_array_equal(np.outer(column, row), sobel_kernel(1))
    assert separable_factors(laplacian_kernel(4)) is None
    column, row = separable_factors(np.zeros((2, 3)))
    np.testing.assert_array_equal(np.outer(column, row), np.zeros((2, 3)))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("operation", ["correlate", "convolve"])
def test_two_passes_equal_one_2d_pass(padding_mode, operation):
    """For a rank-1 kernel with even sides, two 1-D passes give the 2-D result."""
    rng = np.random.default_rng(11)
    image = random_image(rng, 20, 17)
    kernel = np.outer(rng.standard_normal(4), rng.standard_normal(6))
    one_pass = _filter(image, kernel=kernel, operation=operation, padding_mode=padding_mode)
    two_passes = filter_image(image, kernel, operation=operation, padding_mode=padding_mode)
    assert_close(two_passes, one_pass, tolerance=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_separable_kernels_agree_on_every_path(monkeypatch, path):
    """Whichever way the cost model sends a 65-wide rank-1 kernel (two direct or two banded
    passes, or one FFT; forced here), the result matches ndimage and OpenCV."""
    prefer_path(monkeypatch, path)
    image = random_image(np.random.default_rng(21), 200, 200)
    expected = ndi.gaussian_filter(image, 8.0, mode="mirror")
    assert_close(gaussian_blur(image, 8.0), expected)
    expected = cv2.GaussianBlur(image, (65, 65), sigmaX=8.0, sigmaY=8.0,
                                borderType=cv2.BORDER_REPLICATE)
    assert_close(gaussian_blur(image, 8.0, padding_mode="replicate"), expected)
    convolved = filter_image(image, np.outer(np.arange(65.0), np.ones(65)), operation="convolve")
    expected = ndi.convolve(image, np.outer(np.arange(65.0), np.ones(65)), mode="mirror")
    assert_close(convolved, expected)


@pytest.mark.parametrize("path", ["banded", "fft"])
def test_nan_stays_local_even_where_fft_would_be_cheaper(monkeypatch, path):
    """A NaN spreads only over its (2r+1)² window: where the cost model prefers one FFT or the
    banded passes (forced here), such data takes neither."""
    prefer_path(monkeypatch, path)
    image = np.zeros((200, 200))
    image[75, 75] = np.nan
    blurred = gaussian_blur(image, 8.0)  # radius 32
    expected_nan = np.zeros((200, 200), dtype=bool)
    expected_nan[75 - 32 : 75 + 33, 75 - 32 : 75 + 33] = True
    np.testing.assert_array_equal(np.isnan(blurred), expected_nan)


# --- Gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("axis", [0, 1])
def test_sobel_matches_ndimage(padding_mode, axis):
    """sobel(image, axis) equals scipy.ndimage.sobel(image, axis) in every mode."""
    image = random_image(np.random.default_rng(4), 23, 19)
    expected = ndi.sobel(image, axis=axis, mode=NDIMAGE_MODE[padding_mode])
    assert_close(sobel(image, axis, padding_mode=padding_mode), expected)


@pytest.mark.parametrize("padding_mode", sorted(OPENCV_BORDER))
@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("axis", [0, 1])
def test_sobel_matches_opencv(padding_mode, size, axis):
    """sobel(image, axis, size=k) equals cv2.Sobel with dx/dy for the same axis and border."""
    image = random_image(np.random.default_rng(5), 29, 33)
    dx, dy = (1, 0) if axis == 1 else (0, 1)
    expected = cv2.Sobel(image, cv2.CV_64F, dx, dy, ksize=size,
                         borderType=OPENCV_BORDER[padding_mode])
    assert_close(sobel(image, axis, size=size, padding_mode=padding_mode), expected)


def test_sobel_matches_skimage():
    """skimage's sobel_v/sobel_h are sobel(axis=1)/4 and sobel(axis=0)/4 with symmetric border."""
    image = np.random.default_rng(6).random((21, 18))
    assert_close(skimage.filters.sobel_v(image), sobel(image, 1, padding_mode="symmetric") / 4)
    assert_close(skimage.filters.sobel_h(image), sobel(image, 0, padding_mode="symmetric") / 4)


def test_sobel_on_step_edge_gives_hand_computed_response():
    """A unit step rising to the right: +4 on both sides of the edge (size 3); [16, 48, 48, 16]
    across it for size 5; the textbook convolution gives the negatives; no horizontal edge."""
    image = step_edge((6, 12))  # columns 6.. are bright
    response = sobel(image, 1)
    expected_row = [0, 0, 0, 0, 0, 4, 4, 0, 0, 0, 0, 0]
    np.testing.assert_array_equal(response, np.tile(expected_row, (6, 1)))
    np.testing.assert_array_equal(sobel(image, 1, operation="convolve"), -response)
    np.testing.assert_array_equal(sobel(image, 0), 0)
    five = sobel(image, 1, size=5)
    np.testing.assert_array_equal(five[0, 3:9], [0, 16, 48, 48, 16, 0])


@pytest.mark.parametrize("padding_mode", sorted(OPENCV_BORDER))
@pytest.mark.parametrize("axis", [0, 1])
def test_scharr_matches_opencv(padding_mode, axis):
    """scharr equals cv2.Scharr."""
    image = random_image(np.random.default_rng(8), 17, 22)
    dx, dy = (1, 0) if axis == 1 else (0, 1)
    expected = cv2.Scharr(image, cv2.CV_64F, dx, dy, borderType=OPENCV_BORDER[padding_mode])
    assert_close(scharr(image, axis, padding_mode=padding_mode), expected)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_prewitt_matches_ndimage(padding_mode):
    """prewitt equals scipy.ndimage.prewitt along both axes."""
    image = random_image(np.random.default_rng(9), 14, 16)
    for axis in (0, 1):
        expected = ndi.prewitt(image, axis=axis, mode=NDIMAGE_MODE[padding_mode])
        assert_close(prewitt(image, axis, padding_mode=padding_mode), expected)


def test_edge_magnitude_and_orientation_match_ndimage():
    """Magnitude is hypot and orientation arctan2 of ndimage's row and column Sobel."""
    image = random_image(np.random.default_rng(10), 25, 20)
    rows = ndi.sobel(image, axis=0, mode="mirror")
    columns = ndi.sobel(image, axis=1, mode="mirror")
    assert_close(edge_magnitude(image), np.hypot(rows, columns))
    # Compare angles on the circle (π and -π are the same direction), and only where there is a
    # gradient: the direction of a rounding-sized gradient is arbitrary.
    difference = np.angle(np.exp(1j * (edge_orientation(image) - np.arctan2(rows, columns))))
    defined = np.hypot(rows, columns) > 1e-8
    assert defined.mean() > 0.9
    assert_close(difference[defined], np.zeros(defined.sum()))


def test_edge_orientation_of_flat_image_is_zero():
    """No gradient (including negative zeros) gives angle 0."""
    flat = np.ones((6, 6))
    np.testing.assert_array_equal(edge_orientation(flat), 0.0)
    np.testing.assert_array_equal(edge_orientation(-flat, padding_mode="zeros")[2:4, 2:4], 0.0)


def test_edge_orientation_of_steps():
    """Brightness rising to the right is angle 0, downwards pi/2, to the left pi."""
    right = step_edge(8, axis=1)
    down = step_edge(8, axis=0)
    assert edge_orientation(right)[4, 3] == 0.0
    assert edge_orientation(down)[3, 4] == pytest.approx(np.pi / 2)
    assert edge_orientation(1.0 - right)[4, 3] == pytest.approx(np.pi)
    assert edge_magnitude(right)[4, 3] == 4.0


@pytest.mark.parametrize("bad", [2, -1, "x", None])
def test_gradients_refuse_bad_axis(bad):
    """sobel, scharr and prewitt refuse axes other than 0 and 1."""
    image = np.zeros((5, 5))
    for gradient in (sobel, scharr, prewitt):
        with pytest.raises(ValueError, match="axis must be 0"):
            gradient(image, bad)


# --- Smoothing -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    sigma=st.floats(0.3, 4.0),
    padding_mode=st.sampled_from(PADDING_MODES),
    colour=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_blur_matches_ndimage(sigma, padding_mode, colour, seed):
    """gaussian_blur equals scipy.ndimage.gaussian_filter (per channel for colour)."""
    rng = np.random.default_rng(seed)
    image = random_image(rng, 40, 37, 3 if colour else None)
    sigmas = (sigma, sigma, 0) if colour else sigma
    expected = ndi.gaussian_filter(image, sigmas, mode=NDIMAGE_MODE[padding_mode])
    assert_close(gaussian_blur(image, sigma, padding_mode=padding_mode), expected)


def test_gaussian_blur_per_axis_sigma_and_radius_match_ndimage():
    """A (rows, columns) sigma and an explicit radius match ndimage's sigma pair and radius."""
    image = random_image(np.random.default_rng(12), 30, 30)
    expected = ndi.gaussian_filter(image, (1.0, 3.0), mode="mirror")
    assert_close(gaussian_blur(image, (1.0, 3.0)), expected)
    expected = ndi.gaussian_filter(image, 2.0, mode="nearest", radius=3)
    assert_close(gaussian_blur(image, 2.0, radius=3, padding_mode="replicate"), expected)


@pytest.mark.parametrize("padding_mode", sorted(OPENCV_BORDER))
@pytest.mark.parametrize(("sigma", "radius"), [(1.0, 3), (3.0, 12), (8.0, 32)])
def test_gaussian_blur_matches_opencv(padding_mode, sigma, radius):
    """gaussian_blur equals cv2.GaussianBlur with explicit sigma and size 2r+1."""
    image = random_image(np.random.default_rng(13), 70, 66, 3)
    size = 2 * radius + 1
    expected = cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma,
                                borderType=OPENCV_BORDER[padding_mode])
    actual = gaussian_blur(image, sigma, radius=radius, padding_mode=padding_mode)
    assert_close(actual, expected)


def test_gaussian_blur_matches_skimage():
    """gaussian_blur equals skimage.filters.gaussian (mirror mode, range preserved)."""
    image = np.random.default_rng(14).random((33, 29))
    expected = skimage.filters.gaussian(image, sigma=2.0, mode="mirror", preserve_range=True)
    assert_close(gaussian_blur(image, 2.0), expected)


@pytest.mark.parametrize("padding_mode", ["reflect", "symmetric", "replicate", "circular"])
def test_blur_keeps_a_constant_image(padding_mode):
    """Blurring a constant image returns it: the weights sum to 1."""
    image = np.full((12, 9), 0.37)
    assert_close(gaussian_blur(image, 2.0, padding_mode=padding_mode), image, 1e-14)
    assert_close(box_blur(image, 5, padding_mode=padding_mode), image, 1e-14)


def test_circular_blur_keeps_the_mean():
    """With circular padding every pixel is counted once per weight, so the mean is kept."""
    image = np.random.default_rng(15).random((24, 20))
    assert gaussian_blur(image, 3.0, padding_mode="circular").mean() == pytest.approx(
        image.mean(), rel=1e-13
    )


def test_gaussian_blur_of_impulse_is_the_kernel():
    """An impulse blurred with zero padding is the 2-D Gaussian kernel around it."""
    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1.0
    blurred = gaussian_blur(impulse, 1.2, radius=3, padding_mode="zeros")
    assert_close(blurred[2:9, 2:9], gaussian_kernel(1.2, radius=3), 1e-14)


@pytest.mark.parametrize("padding_mode", sorted(OPENCV_BORDER))
@pytest.mark.parametrize("size", [3, 4, 7])
def test_box_blur_matches_opencv(padding_mode, size):
    """box_blur equals cv2.blur with the anchor of cnnkit's 'same' rule."""
    image = random_image(np.random.default_rng(16), 25, 21)
    anchor = ((size - 1) // 2, (size - 1) // 2)
    expected = cv2.blur(image, (size, size), anchor=anchor, borderType=OPENCV_BORDER[padding_mode])
    assert_close(box_blur(image, size, padding_mode=padding_mode), expected)


@pytest.mark.parametrize(
    ("sigma", "error"),
    [(0.0, ValueError), (-2.0, ValueError), ((1.0, 2.0, 3.0), ValueError), ("1", TypeError)],
)
def test_gaussian_blur_refuses_bad_sigma(sigma, error):
    """Non-positive sigma, a wrong number of sigmas and strings are refused, naming sigma."""
    with pytest.raises(error, match="sigma"):
        gaussian_blur(np.zeros((5, 5)), sigma)


# --- Laplacian and sharpening ---------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_laplacian_matches_ndimage(padding_mode):
    """The 4-neighbour Laplacian is ndimage.laplace; the 8-neighbour one ndimage.correlate."""
    image = random_image(np.random.default_rng(17), 15, 18)
    mode = NDIMAGE_MODE[padding_mode]
    assert_close(laplacian(image, padding_mode=padding_mode), ndi.laplace(image, mode=mode))
    expected = ndi.correlate(image, laplacian_kernel(8), mode=mode)
    assert_close(laplacian(image, neighbours=8, padding_mode=padding_mode), expected)


def test_laplacian_matches_opencv():
    """The 4-neighbour Laplacian equals cv2.Laplacian with ksize 1."""
    image = random_image(np.random.default_rng(18), 15, 18)
    assert_close(laplacian(image), cv2.Laplacian(image, cv2.CV_64F, ksize=1))


@pytest.mark.parametrize("amount", [0.5, 1.0, 2.0])
def test_sharpen_matches_opencv_filter2d(amount):
    """sharpen equals cv2.filter2D with the sharpen kernel, and image - amount*laplacian."""
    image = np.random.default_rng(19).random((20, 20, 3))
    expected = cv2.filter2D(image, cv2.CV_64F, sharpen_kernel(amount))
    assert_close(sharpen(image, amount), expected)
    assert_close(sharpen(image, amount), image - amount * laplacian(image))


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros(5), ValueError, "2 or 3 dimensions"),
        (np.zeros((2, 3, 4, 5)), ValueError, "2 or 3 dimensions"),
        (np.zeros((5, 5, 5)), ValueError, "1 to 4 channels"),
        (np.zeros((3, 0)), ValueError, "must not be empty"),
        (np.zeros((3, 3), dtype=complex), TypeError, "real numbers"),
        (np.array([["a"]]), TypeError, "real numbers"),
    ],
)
def test_filter_image_refuses_bad_images(image, error, match):
    """Wrong dimensions, too many channels, empty and non-real images are refused."""
    with pytest.raises(error, match=match):
        filter_image(image, "box")


def test_reflection_wider_than_the_image_is_refused():
    """A reflect border cannot be wider than the image allows: a 17-wide Gaussian on 5 pixels."""
    with pytest.raises(ValueError, match="padding_mode='reflect' can pad at most 4"):
        gaussian_blur(np.zeros((5, 5)), 2.0)
    assert gaussian_blur(np.zeros((5, 5)), 2.0, padding_mode="zeros").shape == (5, 5)


def test_filter_image_refuses_bad_operation_and_padding_mode():
    """Unknown operation and padding_mode names are listed in the message."""
    image = np.zeros((5, 5))
    with pytest.raises(ValueError, match="operation must be one of 'correlate', 'convolve'"):
        filter_image(image, "box", operation="conv")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        filter_image(image, "box", padding_mode="mirror")


@pytest.mark.parametrize(
    "call",
    [
        lambda image: filter_image(image, "box", mode="reflect"),
        lambda image: gaussian_blur(image, 1.0, mode="nearest"),
        lambda image: sobel(image, 1, mode="convolve"),
        lambda image: box_blur(image, 3, mode="mirror"),
    ],
)
def test_scipy_mode_argument_names_padding_mode_and_operation(call):
    """A scipy.ndimage user's mode= is refused with a message naming padding_mode= and
    operation=, not silently taken for correlate/convolve."""
    with pytest.raises(TypeError, match=r"no argument 'mode'.*padding_mode=.*operation="):
        call(np.zeros((5, 5)))


def test_filter_image_refuses_bad_kernels():
    """A 1-D or non-finite kernel is refused."""
    with pytest.raises(ValueError, match="2 dimensions"):
        filter_image(np.zeros((5, 5)), [1, 2, 1])
    with pytest.raises(ValueError, match="finite"):
        filter_image(np.zeros((5, 5)), [[np.nan]])


# --- Display helper ---------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.01, 100.0))
def test_to_uint8_rescale_matches_skimage(seed, scale):
    """'rescale' maps min..max to 0..255 like skimage.exposure.rescale_intensity, rounded."""
    image = np.random.default_rng(seed).standard_normal((8, 9)) * scale
    expected = skimage.exposure.rescale_intensity(image, out_range=(0.0, 255.0))
    result = to_uint8(image)
    assert result.dtype == np.uint8 and result.min() == 0 and result.max() == 255
    np.testing.assert_array_equal(result, np.rint(expected).astype(np.uint8))


def test_to_uint8_clip_and_abs():
    """'clip' reads values as [0, 1] brightness; 'abs' scales |value| by its maximum."""
    image = np.array([[-1.0, 0.0, 0.25, 1.0, 3.0]])
    np.testing.assert_array_equal(to_uint8(image, "clip"), [[0, 0, 64, 255, 255]])
    np.testing.assert_array_equal(to_uint8(image, "abs"), [[85, 0, 21, 85, 255]])
    np.testing.assert_array_equal(to_uint8(np.zeros((2, 2)), "abs"), np.zeros((2, 2)))


def test_to_uint8_constant_image_is_clipped():
    """A constant image has nothing to stretch: 'rescale' falls back to clipping."""
    np.testing.assert_array_equal(to_uint8(np.full((2, 2), 0.5)), np.full((2, 2), 128))


def test_to_uint8_refuses_nan_and_bad_method():
    """NaN/inf values and unknown methods are refused."""
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_uint8(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="method must be one of"):
        to_uint8(np.zeros((2, 2)), "stretch")
