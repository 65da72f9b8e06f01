"""Image folders at scale: parallel decoding, the cache's second start, streamed batches.

Generates a folder of mixed-size JPEG and PNG files (``--count``, default 50,000), then times,
in one run:

- decoding it to 3x32x32 with 1 process and with 2 (``read_image_folder``, no cache), against a
  torchvision-style ``torch.utils.data.DataLoader(num_workers=2)`` over a Pillow Dataset;
- building the cache, then the second start (``load_dataset`` opening the cache);
- batches per second from ``BatchSource``, resident against streamed from the memory map, with
  a small consumer per batch (scaling to float32 as training does).

Usage: python benchmarks/bench_data.py --count 5000 [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data import load_dataset
from cnnkit.data.imagefolder import list_image_folder, read_image_folder
from cnnkit.data.stream import batch_source

SHAPE = (3, 32, 32)
CLASSES = 10


def generate(root: Path, count: int, seed: int = 0) -> None:
    """``count`` files over 10 classes: two thirds JPEG, one third PNG, 48 to 320 pixels a side."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / f"class{index % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        rows, columns = rng.integers(48, 321, size=2)
        # Smooth content, as photos have, compresses like them.
        small = rng.integers(0, 256, (rows // 8 + 1, columns // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((int(columns), int(rows)), Image.Resampling.BILINEAR)
        if index % 3 == 2:
            image.save(folder / f"{index:06d}.png")
        else:
            image.save(folder / f"{index:06d}.jpg", quality=90)


def torch_loader_time(root: Path) -> float:
    """Seconds for a DataLoader(num_workers=2) over Pillow to produce every image."""
    import torch

    listing = list_image_folder(root)

    class PillowFolder(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(listing.files)

        def __getitem__(self, index: int):
            with Image.open(listing.root / listing.files[index]) as image:
                pixels = image.convert("RGB").resize((SHAPE[2], SHAPE[1]),
                                                     Image.Resampling.BILINEAR)
                array = np.asarray(pixels).transpose(2, 0, 1).copy()
            return torch.from_numpy(array), listing.labels[index]

    loader = torch.utils.data.DataLoader(PillowFolder(), batch_size=64, num_workers=2)
    start = time.perf_counter()
    total = sum(len(images) for images, _ in loader)
    elapsed = time.perf_counter() - start
    assert total == len(listing.files)
    return elapsed


def decode_time(root: Path, workers: int) -> float:
    start = time.perf_counter()
    read_image_folder(root, SHAPE, workers=workers)
    return time.perf_counter() - start


def throughput(images, labels, budget: int, batch_size: int = 128) -> float:
    """Batches per second over one epoch, each scaled to float32 as training does."""
    source = batch_source(images, labels, batch_size, seed=0, budget=budget)
    start = time.perf_counter()
    for batch, _ in source.epoch(0):
        (batch.astype(np.float32) / 255.0).mean()
    return len(source) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="files to generate")
    parser.add_argument("--folder", help="use (or fill) this folder instead of a temporary one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cnnkit-bench-data-"))
    root = Path(args.folder) if args.folder else work / "photos"
    if not root.exists() or not any(root.iterdir()):
        start = time.perf_counter()
        generate(root, args.count)
        print(f"generated {args.count} files in {time.perf_counter() - start:.1f} s")
    count = len(list_image_folder(root).files)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{count} files, {os.cpu_count()} CPUs")

    one = decode_time(root, 1)
    two = decode_time(root, 2)
    reference = torch_loader_time(root)
    cache = work / "cache"
    start = time.perf_counter()
    load_dataset(f"imagefolder:{root}", input_shape=SHAPE, cache_dir=cache, workers=2)
    build = time.perf_counter() - start
    start = time.perf_counter()
    data = load_dataset(f"imagefolder:{root}", input_shape=SHAPE, cache_dir=cache)
    second = time.perf_counter() - start
    resident = throughput(data.train_images, data.train_labels, budget=2**62)
    streamed = throughput(data.train_images, data.train_labels, budget=0)

    print()
    print("| measurement | value |")
    print("|---|---|")
    print(f"| decode, 1 process | {one:.2f} s ({count / one:.0f} images/s) |")
    print(f"| decode, 2 processes | {two:.2f} s ({count / two:.0f} images/s) |")
    print(f"| speed-up, 2 processes ÷ 1 | {one / two:.2f}× |")
    print(f"| DataLoader(num_workers=2) over Pillow | {reference:.2f} s |")
    print(f"| cnnkit 2 processes ÷ DataLoader | {two / reference:.2f} |")
    print(f"| cache build (2 processes) | {build:.2f} s |")
    print(f"| second start (cache opened) | {second * 1e3:.0f} ms |")
    print(f"| batches/s resident (batch 128) | {resident:.0f} |")
    print(f"| batches/s streamed from the memory map | {streamed:.0f} |")
    print(f"| streaming cost | {100 * (1 - streamed / resident):.1f}% |")


if __name__ == "__main__":
    main()
