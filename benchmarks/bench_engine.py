"""One training step of the tutorial CNN: the NumPy engine against PyTorch on the CPU.

A step is forward, cross-entropy, backward and an Adam update, in float32, on 1x28x28 images,
in training mode (dropout on). Each engine runs in its own subprocess with the same thread count
(BLAS threads for NumPy, ``torch.set_num_threads`` for PyTorch), so that each one's memory is
its own:

- time: the median over ``--steps`` steps after two warm-up steps, in ms; the engines run in
  turn ``--repeats`` times and the round with the median ratio is shown;
- peak memory: the process's peak resident set (``ru_maxrss``), and in brackets how far that
  peak lies above the resident set once the model and the batch exist, before the first step
  (what training adds: activations, gradients, optimizer moments, scratch). The first includes
  the libraries, which for PyTorch are several hundred MB; the ratio compares the second.

Then a per-layer profile of the NumPy step (forward and backward time of each layer, the loss and
the optimizer step), averaged over the timed steps.

Run: ``python benchmarks/bench_engine.py`` (``--threads``, ``--batch-sizes``, ``--steps``,
``--repeats``). With ``--conv-layer`` it times the tutorial's second convolution layer alone
(:func:`conv_layer_table`; ``--threads 0`` leaves each library its default thread count).
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
        for index, name, layer in reversed(list(zip(range(len(names)), names, model))):
            start = time.perf_counter()
            if index == 0:
                layer.backward_parameters(grad)  # the input is data: no gradient (as the engine)
            else:
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


def _median_s(function, runs: int = 7) -> float:
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[runs // 2]


def conv_layer_table(batch_sizes: list[int], repeats: int, threads: int | None) -> None:
    """``cnnkit.conv2d`` and ``conv2d_backward`` on the tutorial's second layer against torch.

    32 -> 64 channels, 5x5, padding 2, on 14x14, float32. Each repeat times cnnkit's forward,
    torch's forward, cnnkit's backward (input and weight gradients) and torch's (autograd of
    a forward pass, less that forward), each the median of 7 calls, one after the other; the
    median ratio over the repeats is printed with its range. ``threads`` None: each library's
    default.
    """
    import torch

    import cnnkit

    if threads is not None:
        cnnkit.ops.set_num_threads(threads)
        torch.set_num_threads(threads)
    print(f"conv2d, tutorial layer 2; cnnkit threads {cnnkit.ops.get_num_threads()}, torch "
          f"threads {torch.get_num_threads()}; median of {repeats} repeats (range)")
    print("| batch | pass | cnnkit ms | torch ms | ratio |")
    print("|---|---|---|---|---|")
    for batch in batch_sizes:
        for name, entries in _conv_layer_rounds(batch, repeats).items():
            entries.sort()
            ratio, ours, theirs = entries[len(entries) // 2]
            print(f"| {batch} | {name} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ratio:.2f} "
                  f"({entries[0][0]:.2f}-{entries[-1][0]:.2f}) |")


def _conv_layer_rounds(batch: int, repeats: int) -> dict[str, list]:
    """(ratio, cnnkit s, torch s) of each repeat, for the forward and the backward pass."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    import cnnkit

    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 32, 14, 14)).astype(np.float32)
    weight = (rng.standard_normal((64, 32, 5, 5)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    grad = rng.standard_normal((batch, 64, 14, 14)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(weight).requires_grad_(True)
    tb, tgrad = torch.from_numpy(bias), torch.from_numpy(grad)

    def torch_forward():
        with torch.no_grad():
            F.conv2d(tx, tw, tb, padding=2)

    def torch_both():
        torch.autograd.grad(F.conv2d(tx, tw, tb, padding=2), (tx, tw), tgrad)

    rounds = {"forward": [], "backward (input and weight)": []}
    for _ in range(repeats):
        ours = _median_s(lambda: cnnkit.conv2d(x, weight, bias, padding=2))
        theirs = _median_s(torch_forward)
        rounds["forward"].append((ours / theirs, ours, theirs))
        ours_back = _median_s(lambda: cnnkit.conv2d_backward(grad, x, weight, padding=2))
        theirs_back = _median_s(torch_both) - theirs
        rounds["backward (input and weight)"].append((ours_back / theirs_back, ours_back,
                                                      theirs_back))
    return rounds


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
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of both engines, alternating; the median ratio is shown")
    parser.add_argument("--conv-layer", action="store_true",
                        help="time the tutorial's second convolution layer alone instead")
    parser.add_argument("--worker", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.conv_layer:
        threads = None if args.threads == 0 else args.threads
        conv_layer_table(args.batch_sizes, max(args.repeats, 1), threads)
        return 0
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
        # Alternate the two engines, so that a change in the machine's load hits both; keep the
        # round with the median ratio.
        rounds = []
        for _ in range(args.repeats):
            ours = _run_worker("numpy", batch, args.steps, args.threads)
            theirs = _run_worker("torch", batch, args.steps, args.threads)
            rounds.append((ours["median_s"] / theirs["median_s"], ours, theirs))
        ratio, ours, theirs = sorted(rounds, key=lambda entry: entry[0])[len(rounds) // 2]
        profiles[batch] = (ours["profile"], ours["median_s"])
        memory_ratio = ours["step_peak_mib"] / max(theirs["step_peak_mib"], 1e-9)
        print(f"| {batch} | {ours['median_s'] * 1e3:.1f} | {theirs['median_s'] * 1e3:.1f} | "
              f"{ratio:.2f} | {ours['peak_mib']:.0f} "
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
