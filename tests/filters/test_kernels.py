"""Named kernels against OpenCV and scipy.ndimage, and user kernels in every accepted form."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.filters import (
    KERNEL_NAMES,
    binomial_kernel,
    box_kernel,
    emboss_kernel,
    gaussian_kernel,
    gaussian_kernel1d,
    identity_kernel,
    laplacian_kernel,
    make_kernel,
    parse_kernel,
    prewitt_kernel,
    scharr_kernel,
    sharpen_kernel,
    sobel_kernel,
    sobel_kernels1d,
)

TOLERANCE = 1e-10


def _impulse_response(filter_function, size: int = 9) -> np.ndarray:
    """What a correlating filter does to a centred unit impulse: the kernel flipped."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return filter_function(impulse)


# --- Gradient kernels ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5, 7, 9, 31])
def test_sobel_parts_match_opencv_getderivkernels(size):
    """The 1-D smoothing and derivative parts equal cv2.getDerivKernels(1, 0, size)."""
    derivative_cv, smoothing_cv = cv2.getDerivKernels(1, 0, size, ktype=cv2.CV_64F)
    smoothing, derivative = sobel_kernels1d(size)
    np.testing.assert_array_equal(smoothing, smoothing_cv.ravel())
    np.testing.assert_array_equal(derivative, derivative_cv.ravel())


@pytest.mark.parametrize("size", [3, 5, 7])
def test_sobel_kernel_is_opencvs_outer_product(size):
    """sobel_kernel(1) is smoothing (rows) x derivative (columns); axis 0 is its transpose."""
    derivative_cv, smoothing_cv = cv2.getDerivKernels(1, 0, size, ktype=cv2.CV_64F)
    expected = smoothing_cv @ derivative_cv.T
    np.testing.assert_array_equal(sobel_kernel(1, size), expected)
    np.testing.assert_array_equal(sobel_kernel(0, size), expected.T)


def test_sobel_3x3_is_the_tutorial_kernel():
    """The 3×3 kernels are exactly the ones printed in the tutorial."""
    assert sobel_kernel(1).tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert sobel_kernel(0).tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]


@pytest.mark.parametrize("axis", [0, 1])
def test_sobel_and_prewitt_kernels_match_scipy_impulse_response(axis):
    """scipy.ndimage.sobel/prewitt of an impulse is the flipped kernel."""
    for kernel, reference in ((sobel_kernel(axis), ndi.sobel), (prewitt_kernel(axis), ndi.prewitt)):
        response = _impulse_response(lambda image, f=reference: f(image, axis=axis))
        np.testing.assert_array_equal(response[3:6, 3:6], kernel[::-1, ::-1])


def test_scharr_matches_opencv():
    """Scharr parts equal cv2.getDerivKernels with FILTER_SCHARR."""
    derivative_cv, smoothing_cv = cv2.getDerivKernels(1, 0, cv2.FILTER_SCHARR, ktype=cv2.CV_64F)
    np.testing.assert_array_equal(scharr_kernel(1), smoothing_cv @ derivative_cv.T)
    np.testing.assert_array_equal(scharr_kernel(0), scharr_kernel(1).T)


@pytest.mark.parametrize("bad", [2, -1, "x", 1.0, True, None])
def test_gradient_kernels_refuse_bad_axis(bad):
    """An axis other than 0 or 1 is refused, naming the allowed values."""
    for constructor in (sobel_kernel, scharr_kernel, prewitt_kernel):
        with pytest.raises(ValueError, match="axis must be 0"):
            constructor(bad)


@pytest.mark.parametrize("size", [1, 2, 4, 33])
def test_sobel_refuses_bad_size(size):
    """Sobel sizes must be odd and from 3 to 31."""
    with pytest.raises(ValueError, match="size"):
        sobel_kernel(1, size)


def test_sobel_refuses_non_integer_size():
    """A float size is a TypeError naming size."""
    with pytest.raises(TypeError, match="size"):
        sobel_kernels1d(3.0)


# --- Gaussian ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(0.3, 12.0), truncate=st.floats(1.0, 5.0))
def test_gaussian1d_matches_scipy_impulse_response(sigma, truncate):
    """gaussian_kernel1d equals scipy.ndimage.gaussian_filter1d applied to an impulse."""
    weights = gaussian_kernel1d(sigma, truncate=truncate)
    radius = int(truncate * sigma + 0.5)
    assert weights.size == 2 * radius + 1
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    expected = ndi.gaussian_filter1d(impulse, sigma, mode="constant", truncate=truncate)
    np.testing.assert_allclose(weights, expected, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize(("sigma", "size"), [(0.8, 3), (1.0, 7), (2.5, 11), (5.0, 31)])
def test_gaussian1d_with_size_matches_opencv(sigma, size):
    """With an explicit sigma and size the weights are cv2.getGaussianKernel's."""
    expected = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F).ravel()
    np.testing.assert_allclose(gaussian_kernel1d(sigma, size=size), expected, rtol=TOLERANCE)
    np.testing.assert_allclose(
        gaussian_kernel1d(sigma, radius=(size - 1) // 2), expected, rtol=TOLERANCE
    )


@settings(max_examples=20, deadline=None)
@given(sigma=st.floats(1.5, 6.0))
def test_gaussian_variance_is_sigma_squared(sigma):
    """The weights, read as a distribution over offsets, have mean 0 and variance sigma²."""
    weights = gaussian_kernel1d(sigma, truncate=10.0)
    offsets = np.arange(weights.size) - weights.size // 2
    assert abs(weights @ offsets) < 1e-12
    assert weights @ offsets**2 == pytest.approx(sigma**2, rel=1e-8)


@settings(max_examples=20, deadline=None)
@given(sigma=st.floats(0.2, 8.0), radius=st.integers(0, 12))
def test_gaussian2d_is_outer_product_summing_to_one(sigma, radius):
    """The 2-D kernel is the outer product of the 1-D one, sums to 1 and peaks in the centre."""
    kernel = gaussian_kernel(sigma, radius=radius)
    weights = gaussian_kernel1d(sigma, radius=radius)
    np.testing.assert_array_equal(kernel, np.outer(weights, weights))
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert kernel[radius, radius] == kernel.max()


def test_gaussian_default_radius_is_truncate_sigma():
    """Default radius is int(4*sigma + 0.5), as in scipy."""
    assert gaussian_kernel1d(1.0).size == 9
    assert gaussian_kernel1d(2.4).size == 2 * 10 + 1
    assert gaussian_kernel1d(1.0, truncate=2.0).size == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": 0.0}, ValueError, "sigma"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"sigma": float("nan")}, ValueError, "sigma"),
        ({"sigma": float("inf")}, ValueError, "sigma"),
        ({"sigma": "2"}, TypeError, "sigma"),
        ({"sigma": True}, TypeError, "sigma"),
        ({"sigma": 1.0, "radius": -1}, ValueError, "radius"),
        ({"sigma": 1.0, "radius": 2.0}, TypeError, "radius"),
        ({"sigma": 1.0, "size": 4}, ValueError, "size must be odd"),
        ({"sigma": 1.0, "size": 3, "radius": 1}, ValueError, "either radius or size"),
        ({"sigma": 1.0, "truncate": 0.0}, ValueError, "truncate"),
    ],
)
def test_gaussian_refuses_bad_arguments(kwargs, error, match):
    """Each bad Gaussian argument gets its own message naming it."""
    with pytest.raises(error, match=match):
        gaussian_kernel1d(**kwargs)


# --- Other kernels -----------------------------------------------------------------------------


def test_box_kernel_is_uniform_and_sums_to_one():
    """box_kernel holds 1/(rows*columns) everywhere, square or rectangular."""
    np.testing.assert_array_equal(box_kernel(3), np.full((3, 3), 1 / 9))
    np.testing.assert_array_equal(box_kernel((2, 5)), np.full((2, 5), 1 / 10))


@pytest.mark.parametrize("bad", [0, (3,), (3, 0), (1, 2, 3)])
def test_box_kernel_refuses_bad_size(bad):
    """Box sizes must be positive, one or two of them."""
    with pytest.raises(ValueError, match="size"):
        box_kernel(bad)


@pytest.mark.parametrize("size", [3, 5])
def test_binomial_matches_opencv_small_gaussian(size):
    """The binomial blur is OpenCV's fixed table for GaussianBlur with sigma 0 (sizes 3, 5)."""
    table = cv2.getGaussianKernel(size, 0, ktype=cv2.CV_64F).ravel()
    np.testing.assert_allclose(binomial_kernel(size), np.outer(table, table), rtol=1e-15)


def test_binomial_3x3_is_one_two_one_over_sixteen():
    """The 3×3 binomial blur is [[1,2,1],[2,4,2],[1,2,1]]/16."""
    np.testing.assert_array_equal(binomial_kernel() * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("neighbours", [4, 8])
def test_laplacian_kernel_sums_to_zero_and_matches_references(neighbours):
    """Both Laplacians sum to 0; the 4-neighbour one is scipy's laplace and cv2.Laplacian(1)."""
    kernel = laplacian_kernel(neighbours)
    assert kernel.sum() == 0 and kernel[1, 1] == -neighbours
    if neighbours == 4:
        response = _impulse_response(lambda image: ndi.laplace(image, mode="constant"))
        np.testing.assert_array_equal(response[3:6, 3:6], kernel)
        impulse = np.zeros((9, 9))
        impulse[4, 4] = 1.0
        cv_response = cv2.Laplacian(impulse, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_CONSTANT)
        np.testing.assert_array_equal(cv_response[3:6, 3:6], kernel)


@pytest.mark.parametrize("bad", [3, 6, "4", True])
def test_laplacian_refuses_other_neighbours(bad):
    """Only 4 or 8 neighbours exist."""
    with pytest.raises(ValueError, match="neighbours must be 4 or 8"):
        laplacian_kernel(bad)


@settings(max_examples=15, deadline=None)
@given(amount=st.floats(0.01, 10.0))
def test_sharpen_is_identity_minus_amount_laplacian(amount):
    """sharpen_kernel(a) = identity - a*laplacian4, summing to 1."""
    expected = identity_kernel(3) - amount * laplacian_kernel(4)
    np.testing.assert_array_equal(sharpen_kernel(amount), expected)
    assert sharpen_kernel(amount).sum() == pytest.approx(1.0)


def test_sharpen_default_is_the_classic_kernel():
    """amount=1 gives centre 5 and four neighbours -1."""
    assert sharpen_kernel().tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]


def test_sharpen_refuses_non_positive_amount():
    """The amount must be positive."""
    with pytest.raises(ValueError, match="amount"):
        sharpen_kernel(0.0)


def test_emboss_and_identity():
    """Emboss sums to 1 and is antisymmetric around the centre apart from it; identity is a
    centred impulse."""
    kernel = emboss_kernel()
    assert kernel.sum() == 1.0
    np.testing.assert_array_equal(kernel + kernel[::-1, ::-1] - 2 * identity_kernel(3), 0)
    assert identity_kernel(5)[2, 2] == 1.0 and identity_kernel(5).sum() == 1.0


@pytest.mark.parametrize("bad", [0, 2])
def test_identity_refuses_bad_size(bad):
    """Identity sizes must be odd and positive."""
    with pytest.raises(ValueError, match="size"):
        identity_kernel(bad)


# --- By name -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_every_name_builds_a_finite_2d_kernel(name):
    """make_kernel works for every advertised name with default parameters."""
    kernel = make_kernel(name)
    assert kernel.ndim == 2 and kernel.dtype == np.float64 and np.isfinite(kernel).all()


def test_make_kernel_passes_parameters():
    """Parameters reach the constructor."""
    np.testing.assert_array_equal(make_kernel("sobel-y", size=5), sobel_kernel(0, 5))
    np.testing.assert_array_equal(
        make_kernel("gaussian", sigma=2.0, radius=3), gaussian_kernel(2.0, radius=3)
    )


def test_make_kernel_refuses_unknown_name_and_parameter():
    """An unknown name lists the names; an unknown parameter lists the accepted ones."""
    with pytest.raises(ValueError, match="kernel name must be one of"):
        make_kernel("sobel")
    with pytest.raises(ValueError, match="takes no parameter 'sigma'; its parameters: size"):
        make_kernel("box", sigma=1.0)


# --- User kernels ------------------------------------------------------------------------------


def test_parse_kernel_from_list_and_array():
    """Lists and arrays become 2-D float64."""
    kernel = parse_kernel([[1, 2], [3, 4]])
    assert kernel.dtype == np.float64 and kernel.tolist() == [[1, 2], [3, 4]]
    assert parse_kernel(np.eye(3, dtype=np.int32)).dtype == np.float64


@pytest.mark.parametrize(
    "text",
    [
        "[[-1,0,1],[-2,0,2],[-1,0,1]]",
        "[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]",
        "-1,0,1; -2,0,2; -1,0,1",
        "-1 0 1\n-2 0 2\n-1 0 1\n",
        "  -1, 0, 1\n-2 , 0, 2  # middle row\n\n-1,0,1",
    ],
)
def test_parse_kernel_from_text(text):
    """Nested-list text and CSV-like rows give the Sobel kernel."""
    np.testing.assert_array_equal(parse_kernel(text), sobel_kernel(1))


def test_parse_kernel_by_name_with_parameters():
    """'name:key=value,...' builds named kernels."""
    np.testing.assert_array_equal(parse_kernel("sobel-x"), sobel_kernel(1))
    np.testing.assert_array_equal(
        parse_kernel("gaussian:sigma=1.5, radius=4"), gaussian_kernel(1.5, radius=4)
    )
    np.testing.assert_array_equal(parse_kernel("laplacian:neighbours=8"), laplacian_kernel(8))


def test_parse_kernel_from_files(tmp_path):
    """.npy, .csv and .txt files are read (npy without pickle)."""
    kernel = np.arange(6.0).reshape(2, 3)
    np.save(tmp_path / "k.npy", kernel)
    (tmp_path / "k.csv").write_text("0,1,2\n3,4,5\n")
    (tmp_path / "k.txt").write_text("0 1 2\n3 4 5\n")
    for name in ("k.npy", "k.csv", "k.txt"):
        np.testing.assert_array_equal(parse_kernel(str(tmp_path / name)), kernel)
    np.testing.assert_array_equal(parse_kernel(tmp_path / "k.npy"), kernel)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("[[1, 2], [3]]", "rectangular 2-D"),
        ("[[1, 2], [3, x]]", "not a valid nested list"),
        ("[1, 2, 3]", "2 dimensions"),
        ("[[[1]]]", "2 dimensions"),
        ("[[]]", "must not be empty"),
        ("1, 2; 3", "rows of different lengths"),
        ("1, two; 3, 4", "must hold numbers"),
        (" ; ", "holds no numbers"),
        ("[[1, nan]]", "not a valid nested list"),
        ("gaussian:sigma", "takes sigma=..."),
        ("gaussian:sigma=big", "sigma must be a number"),
        ("box:size=2.5", "size must be an integer"),
        ("emboss:size=3", "takes no parameters"),
        ("blur", "kernel name must be one of"),
    ],
)
def test_parse_kernel_refuses_bad_text(spec, match):
    """Each malformed kernel text is refused with a message saying what is wrong."""
    with pytest.raises(ValueError, match=match):
        parse_kernel(spec)


def test_parse_kernel_refuses_non_finite_values():
    """NaN and infinity are not kernel weights."""
    with pytest.raises(ValueError, match="finite"):
        parse_kernel([[1.0, float("inf")]])


def test_parse_kernel_refuses_bytes_and_complex():
    """bytes are a TypeError; complex weights are refused."""
    with pytest.raises(TypeError, match="bytes"):
        parse_kernel(b"[[1]]")
    with pytest.raises(TypeError, match="real numbers"):
        parse_kernel(np.array([[1j]]))


def test_parse_kernel_refuses_missing_file(tmp_path):
    """A missing kernel file is a FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        parse_kernel(str(tmp_path / "missing.npy"))


def test_parse_kernel_refuses_pickled_npy(tmp_path):
    """An object array (which needs pickle) is refused, never unpickled."""
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"not a readable \.npy"):
        parse_kernel(str(tmp_path / "evil.npy"))


def test_parse_kernel_refuses_npz_and_binary_text(tmp_path):
    """An .npz archive saved as .npy and a binary .csv are refused."""
    np.savez(tmp_path / "archive.npz", a=np.eye(2))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(ValueError, match="one array"):
        parse_kernel(str(tmp_path / "archive.npy"))
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="not a text file"):
        parse_kernel(str(tmp_path / "binary.csv"))
