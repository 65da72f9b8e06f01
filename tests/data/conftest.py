"""A generated image folder shared by the data tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def make_folder(root, counts=(70, 60, 50), seed=0, split=""):
    """Classes a, b, c of small PNG and JPEG files of mixed sizes and modes under root/split."""
    rng = np.random.default_rng(seed)
    for label, count in enumerate(counts):
        folder = root / split / "abc"[label]
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rows, columns = rng.integers(12, 40, size=2)
            pixels = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if index % 3 == 0:
                image.convert("L").save(folder / f"{index:03d}.png")
            elif index % 3 == 1:
                image.save(folder / f"{index:03d}.jpg", quality=90)
            else:
                image.save(folder / f"{index:03d}.png")
    return root


@pytest.fixture
def image_root(tmp_path):
    """180 images in three classes."""
    return make_folder(tmp_path / "photos")
