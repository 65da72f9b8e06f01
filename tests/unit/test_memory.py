"""Peak extra memory stays within a small multiple of input plus output."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cnnkit import conv2d, correlate2d, max_pool2d
from cnnkit.ops import get_num_threads
from cnnkit.ops._parallel import TILE_BYTES
from tests.forcing import prefer_path


def peak_bytes(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("path", ["fft", "direct"])
def test_large_kernel_does_not_build_window_array(monkeypatch, path):
    """A 1024² image with a 31×31 kernel needs far less than 961 copies of the image, on the FFT
    path (forced) and on the direct one."""
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1024, 1024))
    kernel = rng.standard_normal((31, 31))
    image_bytes = image.nbytes
    if path == "fft":
        prefer_path(monkeypatch, "fft")
        peak = peak_bytes(lambda: correlate2d(image, kernel, "same"))
        # spectra of a slightly larger size, complex: a few image sizes at most
        assert peak < 8 * image_bytes
    else:
        # two channels force the direct path; each thread's column tile holds TILE_BYTES,
        # or one output row's columns where a row needs more
        x = np.stack([image[:256, :256]] * 2)[np.newaxis]
        weight = np.stack([kernel, kernel])[np.newaxis]
        peak = peak_bytes(lambda: conv2d(x, weight, padding=15))
        row_columns = 2 * 31 * 31 * 256 * x.itemsize
        tiles = get_num_threads() * max(TILE_BYTES, row_columns)
        assert peak < 4 * (x.nbytes + x.nbytes // 2) + tiles


def test_pooling_needs_only_output_sized_buffers():
    """Max pooling with overlapping 3×3 windows allocates about two outputs, not nine."""
    x = np.random.default_rng(1).standard_normal((4, 8, 256, 256))
    peak = peak_bytes(lambda: max_pool2d(x, 3, stride=1, padding=1))
    assert peak < 4 * x.nbytes
