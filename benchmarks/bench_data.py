"""Image folders at scale: parallel decoding, the cache's second start, streamed batches.

Generates a folder of mixed-size JPEG and PNG files (``--count``, default 50,000), then times,
in one run:

- decoding it to 3x32x32 with 1 process and with 2 (``read_image_folder``, no cache), against a
  torchvision-style ``torch.utils.data.DataLoader(num_workers=2)`` over a Pillow Dataset;
- building the cache, then the second start (``load_dataset`` opening the cache);
- batches per second from ``BatchSource``, resident against streamed from the memory map, with
  a small consumer per batch (scaling to float32 as training does);
- training throughput of the tutorial CNN with the torch engine (``--steps`` steps, batch 64,
  the engine's defaults), its loader resident against streamed from the same memory map, the
  two measured in turns and the better of two turns kept for each.

Prints a markdown table (measurement, value, target) for benchmarks/README.md.

Usage: python benchmarks/bench_data.py [--count 50000] [--steps 300] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.arch import load_architecture
from cnnkit.data import load_dataset
from cnnkit.data.imagefolder import list_image_folder, read_image_folder
from cnnkit.data.stream import batch_source
from cnnkit.engines.training import TrainConfig, image_statistics

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


def training_rates(images, labels, steps: int, batch_size: int = 64,
                   turns: int = 2) -> tuple[float, float]:
    """Training steps per second of the tutorial CNN (torch engine, its defaults), resident and
    streamed from ``images``, each the better of ``turns`` turns of ``steps`` steps."""
    from cnnkit.engines.torch_engine import TorchEngine

    engine = TorchEngine(TrainConfig(engine="torch", seed=0))
    mean, std, _ = image_statistics(images, seed=0)
    best = {False: 0.0, True: 0.0}
    with engine.session():
        loaders = {streaming: engine.loader(images, labels, batch_size=batch_size, mean=mean,
                                            std=std, streaming=streaming)
                   for streaming in (False, True)}
        for _ in range(turns):
            for streaming, loader in loaders.items():
                engine.build(load_architecture("tutorial"), images.shape[1:], CLASSES, seed=0)
                engine.seed_epoch(0, 0)
                engine.start_epoch()
                done, epoch, start = -5, 0, None  # five warm-up steps
                while done < steps:
                    for batch in loader.batches(0, epoch):
                        engine.train_step(batch, 1e-3)
                        done += 1
                        if done == 0:
                            engine.synchronize()
                            start = time.perf_counter()
                        if done == steps:
                            break
                    epoch += 1
                engine.synchronize()
                best[streaming] = max(best[streaming], steps / (time.perf_counter() - start))
    return best[False], best[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="files to generate")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps timed per path and turn (default 300)")
    parser.add_argument("--folder", help="use (or fill) this folder instead of a temporary one")
    args = parser.parse_args()
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cnnkit-bench-data-"))
    root = Path(args.folder) if args.folder else work / "photos"
    if not root.exists() or not any(root.iterdir()):
        start = time.perf_counter()
        generate(root, args.count)
        print(f"generated {args.count} files in {time.perf_counter() - start:.1f} s")
    count = len(list_image_folder(root).files)
    load_before = _load()
    print(f"{count} files, {os.cpu_count()} CPUs; load average {load_before}")

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
    train_resident, train_streamed = training_rates(data.train_images, data.train_labels,
                                                    args.steps)

    rows = [
        ("decode, 1 process", f"{one:.2f} s ({count / one:.0f} images/s)", ""),
        ("decode, 2 processes", f"{two:.2f} s ({count / two:.0f} images/s)", ""),
        ("speed-up, 2 processes ÷ 1", f"{one / two:.2f}×", "≥ 1.8×"),
        ("DataLoader(num_workers=2) over Pillow", f"{reference:.2f} s", ""),
        ("cnnkit 2 processes ÷ DataLoader (time)", f"{two / reference:.2f}", ""),
        ("cache build (2 processes)", f"{build:.2f} s", ""),
        ("second start (cache opened)", f"{second * 1e3:.0f} ms", "< 1 s"),
        ("batches/s, BatchSource resident (batch 128)", f"{resident:.0f}", ""),
        ("batches/s, BatchSource streamed", f"{streamed:.0f}", ""),
        ("training steps/s, resident (tutorial CNN, torch, batch 64)",
         f"{train_resident:.2f}", ""),
        ("training steps/s, streamed from the memory map", f"{train_streamed:.2f}", ""),
        ("training throughput lost to streaming",
         f"{100 * (1 - train_streamed / train_resident):.1f}%", "≤ 10%"),
    ]
    print()
    print(f"`{' '.join(['python', 'benchmarks/bench_data.py', *sys.argv[1:]])}`: N = {count} "
          f"files, {os.cpu_count()} CPUs, load average {load_before} before and {_load()} "
          f"after, {time.perf_counter() - began:.0f} s in all")
    print()
    print("| measurement | value | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
