"""Budgets of ``cnnkit filter`` and ``cnnkit kernel``: huge kernels and images are refused in
one line (exit 2, no traceback) before memory is spent, and the image pipeline's peak memory
stays within its stated bytes per pixel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.commands.filter import PER_PLANE_BYTES, PER_VALUE_BYTES
from cnnkit.errors import TooLarge
from cnnkit.filters import MAX_KERNEL_FILE_BYTES, gaussian_kernel1d, make_kernel, parse_kernel

SOURCE = Path(__file__).resolve().parents[2] / "src"
#: Address space allowed to a refused command: enough for Python, numpy and Pillow, far below
#: what the refused work would take.
ADDRESS_SPACE = 1536 * 2**20
TIME_LIMIT = 60


def run_limited(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``cnnkit ARGV`` in a child with a bounded address space and a time limit."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))\n"
        "from cnnkit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=TIME_LIMIT,
    )


def assert_refused(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnkit: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


@pytest.fixture
def small_png(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "argv, phrases",
    [
        (["filter", "small.png", "--kernel", "gaussian:sigma=1000", "-o", "out.png"],
         ["radius", "1024"]),
        (["kernel", "gaussian", "--sigma", "1000"], ["radius", "1024"]),
        (["filter", "small.png", "--kernel", "box:size=20000", "-o", "out.png"],
         ["20000", "largest kernel side"]),
        (["kernel", "box", "--size", "20000"], ["20000", "largest kernel side"]),
        (["filter", "small.png", "--kernel", "gaussian:sigma=100", "-o", "out.png"],
         ["can pad at most 63"]),
    ],
)
def test_huge_kernels_are_refused_before_they_are_built(tmp_path, small_png, argv, phrases):
    """sigma=1000 and box 20000 are refused in one line, within a small address space and a
    time bound; a kernel wider than the image allows is refused before it is decomposed."""
    assert_refused(run_limited(*argv, cwd=tmp_path), *phrases)


def test_huge_kernel_file_is_refused_unread(tmp_path, small_png):
    """A kernel file over MAX_KERNEL_FILE_BYTES is refused by its size, before reading."""
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(MAX_KERNEL_FILE_BYTES + 1)
    result = run_limited("filter", "small.png", "--kernel", "huge.txt", "-o", "out.png",
                         cwd=tmp_path)
    assert_refused(result, "huge.txt", f"{MAX_KERNEL_FILE_BYTES + 1:,} bytes")


def test_big_image_is_refused_with_the_bytes_needed(tmp_path):
    """A small PNG of 6000 x 6000 RGB pixels would need gigabytes through the pipeline: it is
    refused before decoding, naming the bytes needed and available."""
    path = tmp_path / "big.png"
    Image.new("RGB", (6000, 6000)).save(path)
    assert path.stat().st_size < 1_000_000
    result = run_limited("filter", "big.png", "--kernel", "sobel-x", "-o", "out.png",
                         cwd=tmp_path)
    assert_refused(result, "6000x6000", "of memory", "available")


def test_library_refusals_are_cnnkit_errors():
    """The same refusals from the library raise TooLarge (a ValueError)."""
    with pytest.raises(TooLarge, match="radius"):
        gaussian_kernel1d(1000.0)
    with pytest.raises(TooLarge, match="largest kernel side"):
        make_kernel("box", size=20000)
    with pytest.raises(TooLarge, match="largest kernel side"):
        parse_kernel(np.zeros((1, 3000)))


def test_pipeline_peak_memory_per_pixel(tmp_path):
    """``cnnkit filter`` on an RGB image, on the two-pass and on the FFT path, stays within
    PER_VALUE_BYTES per value and PER_PLANE_BYTES per pixel above the memory in use before."""
    rows, columns = 1200, 1000
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)).save(path)
    code = (
        "import json, resource, sys\n"
        "import numpy, PIL.Image, PIL.PngImagePlugin, matplotlib\n"
        "from cnnkit.cli import main\n"
        "import cnnkit.filters, cnnkit.imageio, cnnkit.budget, cnnkit.commands.filter\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "status = main(sys.argv[1:])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps([status, after - before]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    bound = rows * columns * (3 * PER_VALUE_BYTES + PER_PLANE_BYTES)
    for kernel in ("gaussian:sigma=2", "gaussian:sigma=30"):
        result = subprocess.run(
            [sys.executable, "-c", code, "filter", str(path), "--kernel", kernel, "-o", "out.png",
             "--overwrite"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIME_LIMIT,
        )
        status, grown = json.loads(result.stdout.strip().splitlines()[-1])
        assert status == 0, result.stderr
        assert grown < bound, f"{kernel}: {grown / (rows * columns):.1f} bytes per pixel"
