"""Time ``cnnkit report`` and ``cnnkit explain`` end to end, against ``cnnkit evaluate``.

Each command runs as a fresh process (``python -m cnnkit ...``), as a user runs it, so the
times include starting Python and importing torch (timed on its own in the last row). The
reference is ``cnnkit evaluate`` on the same run: it loads the same checkpoint and data and runs
the same forward pass over the test split, the part of the report that cannot be avoided.
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

    from cnnkit.engines.evaluation import load_model, load_split

    _, state = load_model(run_dir)
    _, _, images, _ = load_split(state, str(run_dir))
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
            ("cnnkit evaluate RUN (reference)",
             _best(["evaluate", str(args.run_dir), "--device", "cpu", "--overwrite",
                    "--figure", str(folder / "confusion.png")], args.repeats)),
            ("cnnkit report RUN",
             _best(["report", str(args.run_dir), "-o", str(report), "--overwrite"],
                   args.repeats)),
        ]
        size = report.stat().st_size
        for method in ("gradcam", "saliency", "integrated-gradients"):
            rows.append((f"cnnkit explain RUN IMAGE --method {method}",
                         _best(["explain", str(args.run_dir), str(image), "--method", method,
                                "-o", str(folder / "explain.png"), "--overwrite"],
                               args.repeats)))
        rows.append(("python -c 'import torch' (start-up part of every command)",
                     min(_time_python(["-c", "import torch"]) for _ in range(args.repeats))))
        rows += _in_process(args.run_dir, image, folder, args.repeats)
    reference = rows[0][1]
    print(f"run {args.run_dir}, {os.cpu_count()} CPUs visible, best of {args.repeats}")
    print(f"{'command':<62} {'seconds':>8} {'vs evaluate':>12}")
    for name, seconds in rows:
        print(f"{name:<62} {seconds:8.2f} {seconds / reference:12.2f}")
    print(f"report size: {size / 1e6:.2f} MB")


def _in_process(run_dir: Path, image: Path, folder: Path, repeats: int) -> list:
    """Library calls in this (warm) process: explain one image and save its figure; build the
    report's HTML."""
    from cnnkit.explain import explain_images, explanation_figure
    from cnnkit.plots import save_figure
    from cnnkit.report import build_report

    def explain(method: str) -> None:
        (result,) = explain_images(run_dir, [image], method=method)
        save_figure(explanation_figure(result), folder / "explain.png", overwrite=True)

    rows = []
    for method in ("gradcam", "integrated-gradients"):
        explain(method)  # warm-up: first imports, first figure
        rows.append((f"in process: explain_images + figure, {method}",
                     min(_seconds(explain, method) for _ in range(repeats))))
    rows.append(("in process: build_report",
                 min(_seconds(build_report, run_dir) for _ in range(repeats))))
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
