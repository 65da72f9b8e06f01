"""Time ``cnnkit report`` and ``cnnkit explain`` end to end on both engines, against
``cnnkit evaluate``.

Each command runs as a fresh process (``python -m cnnkit ...``), as a user runs it, so the
times include starting Python and importing the engine (torch's import is timed on its own).
The reference is ``cnnkit evaluate`` on the same run: it loads the same checkpoint and data and
runs the same forward pass over the test split, the part of the report that cannot be avoided.
Every command is timed with ``--engine numpy`` (no PyTorch imported) and ``--engine torch``.
The library calls behind ``explain`` and ``report`` are also timed inside one warm process
(imports done), with torch on the threads it has.

    python benchmarks/bench_report.py RUN_DIR [--image IMAGE] [--repeats 3]

Without ``--image`` the first test image of the run's data set is saved as a PNG and used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(argv: list[str]) -> float:
    """Wall-clock seconds of ``python -m cnnkit argv``; a failure stops the benchmark."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnkit", *argv], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _best(argv: list[str], repeats: int) -> float:
    return min(_run(argv) for _ in range(repeats))


def _sample_image(run_dir: Path, folder: Path) -> Path:
    from PIL import Image

    from cnnkit.engines.checkpoint import load_checkpoint
    from cnnkit.evaluation import load_split

    _, _, images, _ = load_split(load_checkpoint(run_dir), str(run_dir))
    path = folder / "test-image-0.png"
    pixels = images[0]
    Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--image", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        image = args.image or _sample_image(args.run_dir, folder)
        report = folder / "report.html"
        rows = [
            ("cnnkit evaluate RUN --engine torch (reference)",
             _best(["evaluate", str(args.run_dir), "--device", "cpu", "--overwrite",
                    "--engine", "torch", "--figure", str(folder / "confusion.png")],
                   args.repeats)),
        ]
        for engine in ("numpy", "torch"):
            rows.append((f"cnnkit report RUN --engine {engine}",
                         _best(["report", str(args.run_dir), "-o", str(report), "--overwrite",
                                "--engine", engine], args.repeats)))
        size = report.stat().st_size
        for engine in ("numpy", "torch"):
            for method in ("gradcam", "saliency", "integrated-gradients"):
                rows.append((f"cnnkit explain RUN IMAGE --method {method} --engine {engine}",
                             _best(["explain", str(args.run_dir), str(image), "--method",
                                    method, "--engine", engine, "-o",
                                    str(folder / "explain.png"), "--overwrite"],
                                   args.repeats)))
        rows.append(("python -c 'import torch' (start-up part of every command)",
                     min(_time_python(["-c", "import torch"]) for _ in range(args.repeats))))
        rows += _in_process(args.run_dir, image, folder, args.repeats)
    reference = rows[0][1]
    print(f"run {args.run_dir}, {os.cpu_count()} CPUs visible, best of {args.repeats}")
    print(f"{'command':<72} {'seconds':>8} {'vs evaluate':>12}")
    for name, seconds in rows:
        print(f"{name:<72} {seconds:8.2f} {seconds / reference:12.2f}")
    print(f"report size: {size / 1e6:.2f} MB")


def _in_process(run_dir: Path, image: Path, folder: Path, repeats: int) -> list:
    """Library calls in this (warm) process: explain one image and save its figure; build the
    report's HTML."""
    from cnnkit.explain import explain_images, explanation_figure
    from cnnkit.plots import save_figure
    from cnnkit.report import build_report

    def explain(method: str, engine: str) -> None:
        (result,) = explain_images(run_dir, [image], method=method, engine=engine)
        save_figure(explanation_figure(result), folder / "explain.png", overwrite=True)

    def report(engine: str) -> None:
        build_report(run_dir, engine=engine)

    rows = []
    for engine in ("numpy", "torch"):
        for method in ("gradcam", "integrated-gradients"):
            explain(method, engine)  # warm-up: first imports, first figure
            rows.append((f"in process: explain_images + figure, {method}, {engine}",
                         min(_seconds(explain, method, engine) for _ in range(repeats))))
        rows.append((f"in process: build_report, {engine}",
                     min(_seconds(report, engine) for _ in range(repeats))))
    return rows


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _time_python(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
