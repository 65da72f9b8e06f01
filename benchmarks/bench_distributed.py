"""Data parallelism on one machine: scaling over processes, and what each step exchanges.

Sections (each prints a table with ratios against the one-process run of the same invocation):

1. ``cnnkit train`` in one process, in 2 (``--nproc 2``), and as two "machines" of one process
   each meeting on 127.0.0.1 through torchrun's c10d rendezvous (``--nnodes 2``), with the same
   global batch and seed: the best epoch's time and images/s, the time of one step, and the
   wall time of the whole command (start-up, rendezvous, test and files included).
2. Communication per step: the gradient bytes DistributedDataParallel all-reduces (float32, one
   value per parameter), the median time of one gloo all-reduce of that many bytes between two
   processes on loopback, and its share of the two-process step of section 1.

Run: ``python benchmarks/bench_distributed.py`` (the tutorial CNN on 6,000 synthetic digits,
or Fashion-MNIST when it is installed; ``--arch`` and ``--train-images`` change them). Each
process of an N-process run gets the machine's cores divided by N as threads.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SOURCE = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SOURCE))

from cnnkit.arch import load_architecture, trace  # noqa: E402
from cnnkit.data import locate  # noqa: E402
from cnnkit.data.imagefolder import default_workers  # noqa: E402
from cnnkit.engines.launch import free_port  # noqa: E402


def _environment(threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SOURCE), "OMP_NUM_THREADS": str(threads),
            "CNNKIT_OFFLINE": "1"}


def train_run(common: list[str], layout: str, cores: int) -> dict:
    """One ``cnnkit train`` in ``layout`` ('1 process', '2 processes' or '2 machines'); its
    best epoch (after the first), steps per epoch and wall time."""
    with tempfile.TemporaryDirectory() as folder:
        run = f"{folder}/run"
        argv = [sys.executable, "-m", "cnnkit", "train", *common, "--out", run]
        started = time.perf_counter()
        quiet = {"stdout": subprocess.DEVNULL}
        if layout == "1 process":
            processes = [subprocess.Popen(argv, env=_environment(cores), **quiet)]
        elif layout == "2 processes":
            processes = [subprocess.Popen([*argv, "--nproc", "2"],
                                          env=_environment(max(1, cores // 2)), **quiet)]
        else:  # two launchers on this machine, as two machines would run them
            endpoint = f"127.0.0.1:{free_port()}"
            processes = [subprocess.Popen([*argv, "--nnodes", "2", "--node-rank", str(rank),
                                           "--rdzv-endpoint", endpoint],
                                          env=_environment(max(1, cores // 2)), **quiet)
                         for rank in (0, 1)]
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"{layout}: cnnkit train failed")
        wall = time.perf_counter() - started
        rows = list(csv.DictReader(Path(run, "metrics.csv").read_text().splitlines()))
    epochs = [float(row["epoch_seconds"]) for row in rows]
    best = min(epochs[1:] or epochs)
    return {"epoch": best, "images_per_second": max(float(row["images_per_second"])
                                                    for row in rows[1:] or rows),
            "wall": wall}


def _all_reduce_worker(rank: int, port: int, count: int, repeats: int, results) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    tensor = torch.ones(count)
    times = []
    for index in range(repeats + 3):  # three warm-up rounds
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        if index >= 3:
            times.append(time.perf_counter() - start)
    if rank == 0:
        results.put(statistics.median(times))
    dist.destroy_process_group()


def all_reduce_seconds(count: int, repeats: int = 30) -> float:
    """Median seconds of one gloo all-reduce of ``count`` float32 values, 2 processes."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.start_processes(_all_reduce_worker, args=(free_port(), count, repeats, results),
                       nprocs=2, start_method="spawn")
    return results.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tutorial")
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is warm-up")
    args = parser.parse_args()

    dataset = "fashion-mnist" if locate("fashion-mnist") is not None else "synthetic-digits"
    cores = default_workers()
    rows = trace(load_architecture(args.arch), (1, 28, 28), num_classes=10)
    parameters = sum(row.parameters for row in rows)
    steps = -(-args.train_images // args.batch_size)
    common = ["--dataset", dataset, "--arch", args.arch, "--train-limit",
              str(args.train_images + 1000), "--val-size", "1000", "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--device", "cpu", "--precision", "fp32",
              "--quiet", "--no-report"]
    print(f"# bench_distributed: {args.arch} ({parameters:,} parameters), {dataset}, "
          f"{args.train_images} training images, batch {args.batch_size} ({steps} steps an "
          f"epoch), fp32, {cores} CPU cores ({platform.machine()}, {socket.gethostname()}), "
          f"torch {torch.__version__}\n")

    print("## 1. scaling on one machine (same global batch)\n")
    print("| layout | threads each | epoch (s) | step (ms) | images/s | speed-up | "
          "command wall (s) |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for layout in ("1 process", "2 processes", "2 machines"):
        result = results[layout] = train_run(common, layout, cores)
        threads = cores if layout == "1 process" else max(1, cores // 2)
        speedup = results["1 process"]["epoch"] / result["epoch"]
        print(f"| {layout} | {threads} | {result['epoch']:.2f} | "
              f"{1e3 * result['epoch'] / steps:.1f} | {result['images_per_second']:,.0f} | "
              f"{speedup:.2f} | {result['wall']:.1f} |", flush=True)

    print("\n## 2. communication per step (2 processes, gloo, loopback)\n")
    seconds = all_reduce_seconds(parameters)
    step = results["2 processes"]["epoch"] / steps
    one_step = results["1 process"]["epoch"] / steps
    print("| gradient bytes | all-reduce (ms) | bandwidth (GB/s) | share of the 2-process "
          "step | against the 1-process step |")
    print("|---|---|---|---|---|")
    print(f"| {4 * parameters / 1e6:.1f} MB | {1e3 * seconds:.2f} | "
          f"{4 * parameters / seconds / 1e9:.2f} | {seconds / step:.2f} | "
          f"{seconds / one_step:.2f} |")


if __name__ == "__main__":
    main()
