"""explain, weights and report on a machine without PyTorch: the NumPy engine gives the same
sections, classes and figures as the PyTorch engine."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image
from tests.processes import cnnkit_process

from cnnkit.data import load_dataset


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', page)


def _accuracy(page: str) -> str:
    return re.search(r"accuracy <strong>([0-9.]+%)</strong>", page).group(1)


def _size(path) -> tuple[int, int]:
    with Image.open(path) as picture:
        return picture.size


def test_report_explain_and_weights_without_torch(trained_run, tmp_path):
    """With torch impossible to import, report, explain and weights run on the NumPy engine
    and print and draw what the PyTorch engine does for the same run."""
    image = load_dataset("synthetic-digits").test_images[3, 0]
    Image.fromarray(image).save(tmp_path / "digit.png")
    pages, printed, sizes = {}, {}, {}
    for torch in (False, True):
        name = "torch" if torch else "numpy"
        extra = ["--engine", "torch"] if torch else []
        cnnkit_process("report", trained_run, "-o", f"{name}.html", *extra, cwd=tmp_path,
                       torch=torch)
        pages[name] = (tmp_path / f"{name}.html").read_text()
        explained = cnnkit_process("explain", trained_run, "digit.png", "-o", f"{name}.png",
                                   "--method", "integrated-gradients", *extra, cwd=tmp_path,
                                   torch=torch)
        weights = cnnkit_process("weights", trained_run, "-o", f"w-{name}.png", "--patches",
                                 f"p-{name}.png", "--images", "500", *extra, cwd=tmp_path,
                                 torch=torch)
        printed[name] = (explained.stdout.replace(f"{name}.png", "FIG"),
                         weights.stdout.replace(f"w-{name}.png", "FIG").replace(
                             f"p-{name}.png", "PATCHES"))
        sizes[name] = [_size(tmp_path / f"{prefix}{name}.png") for prefix in ("", "w-", "p-")]
    assert _sections(pages["numpy"]) == _sections(pages["torch"]) == [
        "data", "architecture", "curves", "metrics", "confusion", "wrong", "kernels",
        "patches", "examples", "pca", "sanity"]
    assert _accuracy(pages["numpy"]) == _accuracy(pages["torch"])
    assert printed["numpy"] == printed["torch"]
    assert "figure saved to FIG" in printed["numpy"][0]
    assert sizes["numpy"] == sizes["torch"]
    with Image.open(tmp_path / "numpy.png") as figure:
        assert np.asarray(figure).std() > 0
