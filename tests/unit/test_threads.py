"""Threads: results bit-identical for any thread count, and the caller's BLAS settings kept."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cnnkit import conv2d, conv2d_backward, correlate2d
from cnnkit.filters import filter_image, gaussian_blur, sobel
from cnnkit.ops import _parallel as parallel_module
from cnnkit.ops import get_num_threads, set_num_threads


@pytest.fixture
def restore_threads(monkeypatch):
    """Restore the thread count afterwards; count every core free, however busy the machine."""
    monkeypatch.setattr(parallel_module, "_free_cores", lambda: 8)
    previous = get_num_threads()
    yield
    set_num_threads(previous)


def _with_threads(count, call):
    set_num_threads(count)
    return call()


RNG = np.random.default_rng(5)
IMAGE = RNG.random((1100, 900))
COLOUR = RNG.random((700, 600, 3))
BATCH = RNG.standard_normal((16, 8, 20, 20))
WEIGHT = RNG.standard_normal((12, 8, 5, 5))
GRAD = RNG.standard_normal((16, 12, 20, 20))

CASES = {
    "direct 2-D kernel": lambda: correlate2d(IMAGE, RNG_KERNELS["dense3"], "same"),
    "banded 2-D kernel": lambda: correlate2d(IMAGE, RNG_KERNELS["dense5"], "same"),
    "FFT 2-D kernel": lambda: correlate2d(IMAGE, RNG_KERNELS["dense31"], "same"),
    "separable passes": lambda: gaussian_blur(COLOUR, 2.0),
    "banded row pass": lambda: correlate2d(IMAGE, RNG_KERNELS["row25"], "same"),
    "banded column pass": lambda: correlate2d(IMAGE, RNG_KERNELS["row25"].T, "same"),
    "separable as one FFT": lambda: gaussian_blur(IMAGE, 12.0),
    "Sobel": lambda: sobel(IMAGE, 1),
    "dense filter": lambda: filter_image(COLOUR, RNG_KERNELS["dense5"]),
    "conv2d": lambda: conv2d(BATCH, WEIGHT, padding=2),
    "conv2d backward": lambda: conv2d_backward(GRAD, BATCH, WEIGHT, padding=2),
}
RNG_KERNELS = {
    "dense3": np.random.default_rng(9).standard_normal((3, 3)),
    "dense5": np.random.default_rng(6).standard_normal((5, 5)),
    "dense31": np.random.default_rng(7).standard_normal((31, 31)),
    "row25": np.random.default_rng(8).standard_normal((1, 25)),
}


@pytest.mark.parametrize("case", CASES)
def test_results_are_bit_identical_for_one_and_several_threads(restore_threads, case):
    """Large arrays run their tiles in the thread pool; the result equals one thread's exactly."""
    one = _with_threads(1, CASES[case])
    several = _with_threads(3, CASES[case])
    if not isinstance(one, tuple):
        one, several = (one,), (several,)
    for ours, theirs in zip(one, several, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_the_pool_runs_large_work_and_not_small(monkeypatch):
    """Work above PARALLEL_MIN_WORK is handed to the pool; small work stays in the caller."""
    monkeypatch.setattr(parallel_module, "get_num_threads", lambda: 2)
    monkeypatch.setattr(parallel_module, "_free_cores", lambda: 2)
    used = []
    real_pool = parallel_module._pool
    monkeypatch.setattr(parallel_module, "_pool", lambda: used.append(True) or real_pool())
    correlate2d(np.ones((16, 16)), np.ones((3, 3)), "same")
    assert not used
    correlate2d(IMAGE, RNG_KERNELS["dense5"], "same")
    assert used


def test_blas_threads_are_restored():
    """cnnkit holds BLAS to one thread only while it runs: the caller's count comes back."""
    before = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    conv2d(BATCH, WEIGHT, padding=2)
    gaussian_blur(IMAGE, 2.0)
    after = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    assert after == before


def test_set_num_threads_refuses_non_positive_counts():
    """The thread count is a positive integer."""
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="count must be a positive integer"):
            set_num_threads(bad)


def test_forked_child_gets_a_pool_of_its_own(restore_threads):
    """After fork the parent's worker threads are gone; the child starts its own pool."""
    import multiprocessing

    set_num_threads(2)
    expected = gaussian_blur(COLOUR, 2.0)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(gaussian_blur, (COLOUR, 2.0)).get(timeout=60)
    np.testing.assert_array_equal(result, expected)


def test_busy_cores_are_left_alone(monkeypatch):
    """With no free core besides the caller's, large work runs in the calling thread."""
    monkeypatch.setattr(parallel_module, "get_num_threads", lambda: 2)
    monkeypatch.setattr(parallel_module, "_free_cores", lambda: 1)
    used = []
    monkeypatch.setattr(parallel_module, "_pool", lambda: used.append(True))
    np.testing.assert_array_equal(
        correlate2d(IMAGE, RNG_KERNELS["dense5"], "same"),
        correlate2d(IMAGE, RNG_KERNELS["dense5"], "same", padding_mode="zeros"),
    )
    assert not used


def test_free_cores_counts_at_least_one():
    """The count of free cores read from the system is between 1 and the CPU count."""
    assert 1 <= parallel_module._free_cores() <= (os.cpu_count() or 1)
