"""Threads: results bit-identical for any thread count, and the caller's BLAS settings kept."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.signal
from threadpoolctl import threadpool_info

from cnnkit import conv2d, conv2d_backward, correlate2d
from cnnkit.filters import filter_image, gaussian_blur, sobel
from cnnkit.ops import _core as core_module
from cnnkit.ops import _parallel as parallel_module
from cnnkit.ops import get_num_threads, set_num_threads
from tests.forcing import PATHS, count_pool_uses, prefer_path


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

#: name: (the path the cost model is made to prefer, the call)
CASES = {
    "direct 2-D kernel": ("direct", lambda: correlate2d(IMAGE, RNG_KERNELS["dense3"], "same")),
    "banded 2-D kernel": ("banded", lambda: correlate2d(IMAGE, RNG_KERNELS["dense5"], "same")),
    "FFT 2-D kernel": ("fft", lambda: correlate2d(IMAGE, RNG_KERNELS["dense31"], "same")),
    "separable passes": ("direct", lambda: gaussian_blur(COLOUR, 2.0)),
    "banded row pass": ("banded", lambda: correlate2d(IMAGE, RNG_KERNELS["row25"], "same")),
    "banded column pass": ("banded",
                           lambda: correlate2d(IMAGE, RNG_KERNELS["row25"].T, "same")),
    "separable as one FFT": ("fft", lambda: gaussian_blur(IMAGE, 12.0)),
    "Sobel": ("direct", lambda: sobel(IMAGE, 1)),
    "dense filter": ("direct", lambda: filter_image(COLOUR, RNG_KERNELS["dense5"])),
    "conv2d": ("direct", lambda: conv2d(BATCH, WEIGHT, padding=2)),
    "conv2d backward": ("direct", lambda: conv2d_backward(GRAD, BATCH, WEIGHT, padding=2)),
}
RNG_KERNELS = {
    "dense3": np.random.default_rng(9).standard_normal((3, 3)),
    "dense5": np.random.default_rng(6).standard_normal((5, 5)),
    "dense31": np.random.default_rng(7).standard_normal((31, 31)),
    "row25": np.random.default_rng(8).standard_normal((1, 25)),
}


@pytest.mark.parametrize("case", CASES)
def test_results_are_bit_identical_for_one_and_several_threads(restore_threads, monkeypatch,
                                                               case):
    """On each path (forced), tiles run in the thread pool (forced too: any work is enough) give
    exactly the result of one thread."""
    path, call = CASES[case]
    prefer_path(monkeypatch, path)
    monkeypatch.setattr(parallel_module, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(parallel_module, "TILE_BYTES", 2**20)  # several tiles on every path
    one = _with_threads(1, call)
    pool_uses = count_pool_uses(monkeypatch)
    several = _with_threads(3, call)
    assert pool_uses, "the tiles did not run in the pool"
    if not isinstance(one, tuple):
        one, several = (one,), (several,)
    for ours, theirs in zip(one, several, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _largest_work(monkeypatch, call) -> float:
    """The largest work that ``call`` hands to the thread pool's map in the correlation
    workhorse."""
    works = []
    real_map_tiles = core_module.map_tiles
    monkeypatch.setattr(core_module, "map_tiles", lambda function, tiles, work: works.append(
        work) or real_map_tiles(function, tiles, work))
    call()
    monkeypatch.setattr(core_module, "map_tiles", real_map_tiles)
    return max(works)


@pytest.mark.parametrize("path", PATHS)
def test_work_from_the_threshold_up_runs_in_the_pool(monkeypatch, path):
    """On each path (forced), with PARALLEL_MIN_WORK at a call's work the tiles go to the pool,
    one above it they stay in the caller; the serial and parallel answers are bit-identical and
    equal scipy's (1e-12; 1e-9 for the FFT)."""
    monkeypatch.setattr(parallel_module, "get_num_threads", lambda: 2)
    monkeypatch.setattr(parallel_module, "_free_cores", lambda: 2)
    monkeypatch.setattr(parallel_module, "TILE_BYTES", 2**20)  # several tiles on every path
    prefer_path(monkeypatch, path)
    kernel = RNG_KERNELS["dense5"]
    work = _largest_work(monkeypatch, lambda: correlate2d(IMAGE, kernel, "same"))
    pool_uses = count_pool_uses(monkeypatch)
    answers = {}
    for threshold, parallel in ((work + 1, False), (work, True)):
        monkeypatch.setattr(parallel_module, "PARALLEL_MIN_WORK", threshold)
        pool_uses.clear()
        answers[parallel] = correlate2d(IMAGE, kernel, "same")
        assert bool(pool_uses) == parallel, threshold
    np.testing.assert_array_equal(answers[False], answers[True])
    tolerance = 1e-9 if path == "fft" else 1e-12
    np.testing.assert_allclose(answers[True], scipy.signal.correlate2d(IMAGE, kernel, "same"),
                               rtol=tolerance, atol=tolerance)


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
