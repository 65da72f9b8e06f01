"""One training step of the tutorial CNN: the NumPy engine against PyTorch on the CPU.

A step is forward, cross-entropy, backward and an Adam update, in float32, on 1x28x28 images,
in training mode (dropout on). Each engine runs in its own subprocess with the same thread count
(BLAS threads for NumPy, ``torch.set_num_threads`` for PyTorch), so that each one's memory is
its own:

- time: the median over ``--steps`` steps after two warm-up steps, in ms;
- peak memory: the process's peak resident set (``ru_maxrss``), and in brackets how far that
  peak lies above the resident set once the model and the batch exist, before the first step
  (what training adds: activations, gradients, optimizer moments, scratch). The first includes
  the libraries, which for PyTorch are several hundred MB; the ratio compares the second.

Then a per-layer profile of the NumPy step (forward and backward time of each layer, the loss and
the optimizer step), averaged over the timed steps.

Run: ``python benchmarks/bench_engine.py`` (``--threads``, ``--batch-sizes``, ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _numpy_worker(batch: int, steps: int) -> dict:
    import numpy as np

    from cnnkit import nn
    from cnnkit.arch import load_architecture

    model = nn.build_model(load_architecture("tutorial"), (1, 28, 28), 10, seed=0)
    optimizer = nn.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    names = [f"{index} {type(layer).__name__}" for index, layer in enumerate(model)]
    forward = dict.fromkeys(names, 0.0)
    backward = dict.fromkeys(names, 0.0)
    other = {"loss": 0.0, "optimizer": 0.0}

    def step(profile: bool) -> None:
        optimizer.zero_grad()
        x = images
        for name, layer in zip(names, model):
            start = time.perf_counter()
            x = layer.forward(x)
            if profile:
                forward[name] += time.perf_counter() - start
        start = time.perf_counter()
        _, grad = nn.cross_entropy(x, labels)
        if profile:
            other["loss"] += time.perf_counter() - start
        for name, layer in zip(reversed(names), reversed(list(model))):
            start = time.perf_counter()
            grad = layer.backward(grad)
            if profile:
                backward[name] += time.perf_counter() - start
        start = time.perf_counter()
        optimizer.step()
        if profile:
            other["optimizer"] += time.perf_counter() - start

    rss_before = _rss_kib()
    for _ in range(2):
        step(False)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(True)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    profile = {
        "layers": [[name, forward[name] / steps, backward[name] / steps] for name in names],
        **{key: value / steps for key, value in other.items()},
    }
    return _result(times, peak, rss_before, profile)


def _torch_worker(batch: int, steps: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from cnnkit.arch import load_architecture
    from cnnkit.engines.model import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(load_architecture("tutorial"), (1, 28, 28), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    rss_before = _rss_kib()
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _result(times, peak, rss_before, None)


def _result(times, peak_kib, rss_before_kib, profile) -> dict:
    times = sorted(times)
    return {
        "median_s": times[len(times) // 2],
        "best_s": times[0],
        "peak_mib": peak_kib / 1024,
        # Above the resident set once the model and the batch exist (measured before the warm-up
        # steps): activations, gradients, optimizer moments and scratch at their peak.
        "step_peak_mib": max(0.0, (peak_kib - rss_before_kib) / 1024),
        "profile": profile,
    }


def _run_worker(engine: str, batch: int, steps: int, threads: int) -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    command = [sys.executable, __file__, "--worker", engine, "--batch-sizes", str(batch),
               "--steps", str(steps), "--threads", str(threads)]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(output.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "numpy":
        print(json.dumps(_numpy_worker(args.batch_sizes[0], args.steps)))
        return 0
    if args.worker == "torch":
        print(json.dumps(_torch_worker(args.batch_sizes[0], args.steps, args.threads)))
        return 0

    load = os.getloadavg()[0]
    print(f"tutorial CNN, 1x28x28, float32, Adam; {args.threads} threads each; "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at start")
    print("| batch | NumPy ms/step | PyTorch ms/step | ratio | NumPy peak RSS MiB (step) "
          "| PyTorch peak RSS MiB (step) | step-memory ratio |")
    print("|---|---|---|---|---|---|---|")
    profiles = {}
    for batch in args.batch_sizes:
        ours = _run_worker("numpy", batch, args.steps, args.threads)
        theirs = _run_worker("torch", batch, args.steps, args.threads)
        profiles[batch] = (ours["profile"], ours["median_s"])
        memory_ratio = ours["step_peak_mib"] / max(theirs["step_peak_mib"], 1e-9)
        print(f"| {batch} | {ours['median_s'] * 1e3:.1f} | {theirs['median_s'] * 1e3:.1f} | "
              f"{ours['median_s'] / theirs['median_s']:.2f} | {ours['peak_mib']:.0f} "
              f"({ours['step_peak_mib']:.0f}) | {theirs['peak_mib']:.0f} "
              f"({theirs['step_peak_mib']:.0f}) | {memory_ratio:.2f} |")
    for batch, (profile, total) in profiles.items():
        print(f"\nNumPy step at batch {batch}, per layer (ms, mean over {args.steps} steps):")
        print("| layer | forward | backward | share of the step |")
        print("|---|---|---|---|")
        for name, forward, backward in profile["layers"]:
            share = (forward + backward) / total
            print(f"| {name} | {forward * 1e3:.1f} | {backward * 1e3:.1f} | {share:.0%} |")
        for name in ("loss", "optimizer"):
            print(f"| {name} | {profile[name] * 1e3:.1f} | | {profile[name] / total:.0%} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
