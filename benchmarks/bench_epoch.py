"""Epoch time of both engines: the tutorial CNN on 50,000 Fashion-MNIST images, batch 64.

Each engine runs its real training step (:meth:`train_step` of
:class:`cnnkit.engines.numpy_engine.NumpyEngine` and :class:`cnnkit.engines.torch_engine.
TorchEngine`: forward, cross-entropy, backward, Adam) on batches in the shared shuffling order,
for ``--steps`` steps after three warm-up steps; the epoch time is the median step time times the
782 steps of an epoch of 50,000 images (an extrapolation, stated in the output; pass
``--steps 782`` to time a whole epoch). PyTorch is measured in float32 and with its automatic
precision (bf16 autocast where the CPU has it), both with the same thread count as NumPy's BLAS.

Run: ``python benchmarks/bench_epoch.py`` (``--steps``, ``--threads``). Uses Fashion-MNIST when
installed, synthetic digits otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SOURCE))

EPOCH_IMAGES = 50_000
BATCH = 64


def _time_engine(name: str, images, labels, *, steps: int, precision: str) -> list[float]:
    from cnnkit.arch import load_architecture
    from cnnkit.engines.base import engine_class
    from cnnkit.engines.config import TrainConfig
    from cnnkit.engines.training import pixel_statistics

    config = TrainConfig(dataset="fashion-mnist", engine=name,
                         **({"precision": precision} if name == "torch" else {}))
    engine = engine_class(name)(config)
    mean, std = pixel_statistics(images)
    with engine.session():
        engine.build(load_architecture("tutorial"), (1, 28, 28), 10, seed=1)
        loader = engine.loader(images, labels, batch_size=BATCH, mean=mean, std=std)
        engine.seed_epoch(1, 0)
        engine.start_epoch()
        times = []
        for index, batch in enumerate(loader.batches(1, 0)):
            if index == steps + 3:
                break
            start = time.perf_counter()
            engine.train_step(batch, 1e-3)
            engine.synchronize()
            if index >= 3:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per engine")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import torch

    from cnnkit.data import load_dataset, locate

    torch.set_num_threads(args.threads)
    dataset = "fashion-mnist" if locate("fashion-mnist") is not None else "synthetic-digits"
    data = load_dataset(dataset)
    images, labels = data.train_images[:EPOCH_IMAGES], data.train_labels[:EPOCH_IMAGES]
    steps_per_epoch = -(-EPOCH_IMAGES // BATCH)
    print(f"{dataset}, tutorial CNN, batch {BATCH}, {args.threads} thread(s), "
          f"{args.steps} timed steps per engine; load average {os.getloadavg()[0]:.2f}")
    print(f"epoch time = median step time x {steps_per_epoch} steps (extrapolated)\n")
    print("| engine | precision | ms / step | epoch (s) | images/s | ÷ torch fp32 |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name, precision in (("torch", "fp32"), ("torch", "auto"), ("numpy", "fp32")):
        times = _time_engine(name, images, labels, steps=args.steps, precision=precision)
        rows.append((name, precision, statistics.median(times)))
    reference = rows[0][2]
    for name, precision, step in rows:
        print(f"| {name} | {precision} | {1000 * step:.1f} | {step * steps_per_epoch:.1f} | "
              f"{BATCH / step:,.0f} | {step / reference:.2f} |")
    print(f"\nload average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
