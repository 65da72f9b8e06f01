"""Time cnnkit's primitives against the tutorial's loop, scipy, OpenCV and PyTorch in one run.

Run:  python benchmarks/bench_primitives.py [--quick] [--threads N] [--busy]

Prints a Markdown table: milliseconds per call (best of several runs) and the ratio
cnnkit / reference (below 1 means cnnkit is faster). ``--threads N`` gives cnnkit
(``cnnkit.ops.set_num_threads``), OpenCV and torch N threads; ``--busy`` keeps one core busy
with a spinning process during the measurements, as another program would.
"""

from __future__ import annotations

import argparse
import os
import platform

import cv2
import numpy as np
import scipy.ndimage
import scipy.signal
import torch
import torch.nn.functional as F

import cnnkit
from _timing import best_time, busy_core, format_ms, format_ratio
from cnnkit.ops import reference

# Skip a reference whose predicted time (multiply-adds / rate) exceeds this many seconds.
SLOW_LIMIT = 5.0


def image_rows(quick: bool) -> list[str]:
    rng = np.random.default_rng(0)
    sizes = (128, 512) if quick else (128, 512, 2048)
    rows = []
    for size in sizes:
        image = rng.standard_normal((size, size))
        for k in (3, 5, 15, 31):
            kernel = rng.standard_normal((k, k))
            flipped = np.ascontiguousarray(kernel[::-1, ::-1])
            macs = size * size * k * k
            ours = best_time(cnnkit.convolve2d, image, kernel, "same", repeats=25)
            loop = (
                best_time(reference.convolve2d_loop, image, kernel, repeats=2)
                if size * size <= 512 * 512 and k <= 5
                else None
            )
            signal = (
                best_time(scipy.signal.convolve2d, image, kernel, "same", repeats=2)
                if macs / 1e9 < SLOW_LIMIT
                else None
            )
            ndimage = best_time(scipy.ndimage.convolve, image, kernel, None, "constant", repeats=25)
            opencv = best_time(
                cv2.filter2D, image, -1, flipped, None, (-1, -1), 0, cv2.BORDER_CONSTANT, repeats=25
            )
            rows.append(
                f"| {size}² | {k}×{k} | {format_ms(ours)} | {format_ms(loop)} "
                f"| {format_ms(signal)} | {format_ms(ndimage)} | {format_ms(opencv)} "
                f"| {format_ratio(ours, loop)} | {format_ratio(ours, signal)} "
                f"| {format_ratio(ours, ndimage)} | {format_ratio(ours, opencv)} |"
            )
            print(rows[-1], flush=True)
    return rows


def conv_layer_row() -> str:
    """The tutorial CNN's second layer: batch 64, 32 -> 64 channels, 5×5, pad 2, 14×14."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((64, 32, 5, 5)) * 0.05).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    ours = best_time(lambda: cnnkit.conv2d(x, w, b, padding=2), repeats=10)
    with torch.no_grad():
        theirs = best_time(lambda: F.conv2d(tx, tw, tb, padding=2), repeats=10)
    grad = rng.standard_normal((64, 64, 14, 14)).astype(np.float32)
    ours_back = best_time(lambda: cnnkit.conv2d_backward(grad, x, w, padding=2), repeats=5)
    tx.requires_grad_(True)
    tw.requires_grad_(True)
    tgrad = torch.from_numpy(grad)

    def torch_backward():
        out = F.conv2d(tx, tw, tb, padding=2)
        torch.autograd.grad(out, (tx, tw), tgrad)

    theirs_back = best_time(torch_backward, repeats=5) - theirs
    return (
        f"| forward | {format_ms(ours)} | {format_ms(theirs)} | {format_ratio(ours, theirs)} |\n"
        f"| backward (input and weight) | {format_ms(ours_back)} | {format_ms(theirs_back)} "
        f"| {format_ratio(ours_back, theirs_back)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 2048² images")
    parser.add_argument("--threads", type=int, help="cnnkit, OpenCV and torch threads")
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()
    if args.threads is not None:
        cnnkit.ops.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
        torch.set_num_threads(args.threads)
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPU threads, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, OpenCV {cv2.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), cnnkit threads: {cnnkit.ops.get_num_threads()}, "
        f"one core busy: {args.busy}\n"
    )
    print("2-D 'same' convolution, float64, zero padding; ms; ratio = cnnkit / reference\n")
    print(
        "| image | kernel | cnnkit | tutorial loop | scipy.signal | scipy.ndimage | OpenCV "
        "| ÷ loop | ÷ signal | ÷ ndimage | ÷ OpenCV |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with busy_core(args.busy):
        image_rows(args.quick)
        print("\nconv2d, tutorial CNN layer 2 (64×32×14×14 float32, 64 filters 5×5, pad 2), ms\n")
        print("| pass | cnnkit | torch | ratio |")
        print("|---|---|---|---|")
        print(conv_layer_row())


if __name__ == "__main__":
    main()
