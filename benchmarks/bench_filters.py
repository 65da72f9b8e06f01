"""Time cnnkit's image filters against scipy.ndimage and OpenCV in one run.

Run:  python benchmarks/bench_filters.py [--quick] [--threads N] [--busy]

Sobel (derivative across the columns, 3×3) and Gaussian blur (sigma 1, 3, 8; radius
int(4 sigma + 0.5)) on a 2048² grayscale and a 1024² RGB float64 image, reflect border
(scipy.ndimage 'mirror', OpenCV BORDER_REFLECT_101) in all three libraries. Prints a Markdown
table: milliseconds per call (best of several runs) and the ratio cnnkit / reference (below 1
means cnnkit is faster). Every result is also checked against the references.

``--threads N`` gives cnnkit (``cnnkit.ops.set_num_threads``) and OpenCV N threads;
scipy.ndimage is single-threaded. ``--busy`` keeps one core busy with a spinning process
during the measurements, as another program would.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import cv2
import numpy as np
import scipy
import scipy.ndimage

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_time, busy_core, format_ms, format_ratio
from cnnkit.filters import gaussian_blur, sobel
from cnnkit.ops import get_num_threads, set_num_threads

SIGMAS = (1.0, 3.0, 8.0)


def ndimage_sobel(image: np.ndarray) -> np.ndarray:
    """scipy.ndimage.sobel over the two image axes only (not across colour channels)."""
    if image.ndim == 2:
        return scipy.ndimage.sobel(image, axis=1, mode="mirror")
    return np.stack(
        [scipy.ndimage.sobel(image[:, :, c], axis=1, mode="mirror") for c in range(3)], axis=-1
    )


def cases(image: np.ndarray):
    """(filter name, cnnkit call, scipy.ndimage call, OpenCV call) for one image."""
    yield (
        "Sobel 3×3",
        lambda: sobel(image, 1),
        lambda: ndimage_sobel(image),
        lambda: cv2.Sobel(image, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101),
    )
    for sigma in SIGMAS:
        size = 2 * int(4 * sigma + 0.5) + 1
        yield (
            f"Gaussian σ={sigma:g} ({size}×{size})",
            lambda sigma=sigma: gaussian_blur(image, sigma),
            lambda sigma=sigma: scipy.ndimage.gaussian_filter(
                image, sigma, mode="mirror", axes=(0, 1)
            ),
            lambda sigma=sigma, size=size: cv2.GaussianBlur(
                image, (size, size), sigmaX=sigma, sigmaY=sigma,
                borderType=cv2.BORDER_REFLECT_101,
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quarter-size images")
    parser.add_argument("--repeats", type=int, default=7, help="runs per measurement (best)")
    parser.add_argument("--threads", type=int, help="cnnkit and OpenCV threads (default: theirs)")
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
        set_num_threads(args.threads)
    scale = 4 if args.quick else 1
    rng = np.random.default_rng(0)
    images = {
        f"{2048 // scale}² gray": rng.random((2048 // scale, 2048 // scale)),
        f"{1024 // scale}² RGB": rng.random((1024 // scale, 1024 // scale, 3)),
    }
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPU threads, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
        f"cnnkit threads: {get_num_threads()}, one core busy: {args.busy}\n"
    )
    print("float64, reflect border; times in ms (best of runs); ratio = cnnkit / reference\n")
    print("| image | filter | cnnkit | scipy.ndimage | OpenCV | ÷ ndimage | ÷ OpenCV |")
    print("|---|---|---|---|---|---|---|")
    with busy_core(args.busy):
        measure(images, args.repeats)


def measure(images: dict, repeats: int) -> None:
    for image_name, image in images.items():
        for filter_name, ours_call, ndimage_call, opencv_call in cases(image):
            ours_result = ours_call()
            for reference_call in (ndimage_call, opencv_call):
                np.testing.assert_allclose(ours_result, reference_call(), rtol=1e-10, atol=1e-10)
            ours = best_time(ours_call, repeats=repeats)
            ndimage = best_time(ndimage_call, repeats=repeats)
            opencv = best_time(opencv_call, repeats=repeats)
            print(
                f"| {image_name} | {filter_name} | {format_ms(ours)} | {format_ms(ndimage)} "
                f"| {format_ms(opencv)} | {format_ratio(ours, ndimage)} "
                f"| {format_ratio(ours, opencv)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
