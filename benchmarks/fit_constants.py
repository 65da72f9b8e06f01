"""Fit the constants of cnnkit's one cost model and one tiling on this machine.

Run:  python benchmarks/fit_constants.py [--quick]

Prints the values measured for

- ``FFT_COST`` and ``FFT_OVERHEAD`` (``cnnkit.ops._core``): single-channel correlations are
  timed on both paths on one thread; the direct times of 3×3 and 5×5 kernels (where the direct
  path is the one chosen) give the seconds per multiply-add, and a least-squares line through
  the FFT times, in those units, against ``S log2 S`` gives the cost per FFT unit (slope) and
  the fixed cost (intercept);
- ``BAND_COST``, ``BAND_TRANSPOSED_COST``, ``BAND_REARRANGE``, ``BAND_ROWS`` and
  ``BAND_COLUMNS`` (``cnnkit.ops._core``):
  one-row and one-column kernels of 3 to 65 taps on 1024² and 2048² images, timed on the banded
  path for several block sizes and on the direct path; per output and in units of the direct
  path, a least-squares fit of the banded times to the multiply-adds per output (and, for
  kernels of several columns, the kernel rows) gives the cost of one multiply-add and of
  putting each kernel row's products in place;
- ``TILE_BYTES`` (``cnnkit.ops._parallel``): a Gaussian blur with sigma 3 on a 2048² image and
  the tutorial CNN's second convolution layer, for tile sizes from 256 KiB to 8 MiB;
- ``PARALLEL_MIN_WORK`` (``cnnkit.ops._parallel``): Sobel filters of growing images with the
  pool forced on and off; the constant is the smallest work at which the pool wins.

The constants in the code are set from these numbers by hand; no test asserts them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_time
from cnnkit import conv2d
from cnnkit.filters import gaussian_blur, sobel
from cnnkit.ops import _core, _parallel, set_num_threads


def fit_fft(quick: bool) -> float:
    set_num_threads(1)
    rng = np.random.default_rng(0)
    sizes = (128, 512) if quick else (128, 256, 512, 1024, 2048)
    per_mac, fft_points = [], []
    for size in sizes:
        x = rng.standard_normal((1, 1, size, size))
        for k in (3, 5, 9, 15, 31):
            weight = rng.standard_normal((1, 1, k, k))
            pads = ((k // 2, k // 2), (k // 2, k // 2))
            args = (x, weight, (1, 1), (1, 1), pads, 1, (size, size))
            direct = best_time(lambda a=args: _core.correlate(*a, method="direct"), repeats=5)
            fft = best_time(lambda a=args: _core.correlate(*a, method="fft"), repeats=5)
            if k <= 5:
                # the kernels for which the direct path is chosen set its unit
                per_mac.append(direct / (k * k * size * size))
            lengths = _core._fft_lengths((size, size), (k, k), (1, 1), pads)
            points = math.prod(lengths)
            fft_points.append((points * math.log2(points), fft))
            print(f"  {size}² {k}×{k}: direct {direct * 1e3:8.2f} ms, fft {fft * 1e3:8.2f} ms")
    seconds_per_mac = float(np.median(per_mac))
    units = np.array([p for p, _ in fft_points])
    cost = np.array([t for _, t in fft_points]) / seconds_per_mac
    slope, intercept = np.polyfit(units, cost, 1)
    print(f"direct path: {seconds_per_mac * 1e9:.3f} ns per multiply-add (median, k <= 5)")
    print(f"FFT_COST = {slope:.2f}   FFT_OVERHEAD = {max(intercept, 0):,.0f}")
    return seconds_per_mac


def fit_banded(seconds_per_mac: float, quick: bool) -> None:
    set_num_threads(1)
    rng = np.random.default_rng(3)
    sizes = (1024,) if quick else (1024, 2048)
    saved = _core.BAND_ROWS, _core.BAND_COLUMNS
    shapes = {
        "BAND_ROWS": [(taps, 1) for taps in (3, 9, 25, 65)],
        "BAND_COLUMNS": [(1, 3), (1, 9), (1, 25), (1, 65), (3, 3), (5, 5), (9, 9)],
    }
    for name, blocks in (("BAND_ROWS", (4, 8, 16)), ("BAND_COLUMNS", (8, 16, 32))):
        for block in blocks:
            _core.BAND_ROWS = _core.BAND_COLUMNS = block
            terms, units = [], []
            for size in sizes:
                for kh, kw in shapes[name]:
                    x = rng.standard_normal((1, 1, size + kh - 1, size + kw - 1))
                    weight = rng.standard_normal((1, 1, kh, kw))
                    args = (x, weight, (1, 1), (1, 1), ((0, 0), (0, 0)), 1, (size, size))
                    banded, direct = (
                        best_time(lambda a=args, m=method: _core.correlate(*a, method=m), repeats=5)
                        for method in ("banded", "direct")
                    )
                    # multiply-adds per output, and kernel rows (0 for the transposed form)
                    if kw == 1:
                        terms.append((block + kh - 1, 0))
                    else:
                        terms.append((kh * (block + kw - 1), kh))
                    units.append(banded / seconds_per_mac / size**2)
                    print(f"  {name} = {block:2d}, {size}² {kh}×{kw}: banded "
                          f"{banded * 1e3:7.2f} ms, direct {direct * 1e3:7.2f} ms")
            design = np.array(terms, dtype=float)
            if name == "BAND_ROWS":
                design = design[:, :1]
            coefficients = np.linalg.lstsq(design, np.array(units), rcond=None)[0]
            text = f"{'BAND_TRANSPOSED_COST' if name == 'BAND_ROWS' else 'BAND_COST'} = " \
                   f"{coefficients[0]:.3f}"
            if name == "BAND_COLUMNS":
                text += f", BAND_REARRANGE = {coefficients[1]:.2f}"
            print(f"{name} = {block}: {text}")
    _core.BAND_ROWS, _core.BAND_COLUMNS = saved


def fit_tile_bytes() -> None:
    set_num_threads(1)
    rng = np.random.default_rng(1)
    image = rng.random((2048, 2048))
    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 32, 5, 5)).astype(np.float32)
    saved = _parallel.TILE_BYTES
    for exponent in range(18, 24):
        _parallel.TILE_BYTES = 2**exponent
        blur = best_time(lambda: gaussian_blur(image, 3.0), repeats=5)
        layer = best_time(lambda: conv2d(x, w, padding=2), repeats=5)
        print(f"  TILE_BYTES = 2**{exponent}: blur σ=3 2048² {blur * 1e3:7.2f} ms, "
              f"conv layer 2 {layer * 1e3:6.2f} ms")
    _parallel.TILE_BYTES = saved


def fit_parallel_min_work() -> None:
    rng = np.random.default_rng(2)
    saved = _parallel.PARALLEL_MIN_WORK
    _parallel.PARALLEL_MIN_WORK = 0
    for size in (64, 128, 192, 256, 384, 512, 1024):
        image = rng.random((size, size))
        set_num_threads(1)
        one = best_time(lambda im=image: sobel(im, 1), repeats=20)
        set_num_threads(os.cpu_count() or 1)
        pool = best_time(lambda im=image: sobel(im, 1), repeats=20)
        print(f"  Sobel {size}² (work {6 * size * size:>9,}): one thread {one * 1e3:6.3f} ms, "
              f"pool {pool * 1e3:6.3f} ms")
    _parallel.PARALLEL_MIN_WORK = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer image sizes")
    args = parser.parse_args()
    print("# FFT_COST, FFT_OVERHEAD (one thread)")
    seconds_per_mac = fit_fft(args.quick)
    print("# BAND_COST, BAND_REARRANGE, BAND_ROWS, BAND_COLUMNS (one thread)")
    fit_banded(seconds_per_mac, args.quick)
    print("# TILE_BYTES (one thread)")
    fit_tile_bytes()
    print("# PARALLEL_MIN_WORK (work = taps x pixels)")
    fit_parallel_min_work()


if __name__ == "__main__":
    main()
