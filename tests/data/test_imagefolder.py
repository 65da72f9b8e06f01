"""Image folders read with Pillow: classes, conversion, resizing, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.data import load_dataset, read_image_folder
from cnnkit.data.imagefolder import load_image


@pytest.fixture
def folder(tmp_path):
    """Two classes of small RGB images, plus a text file that must be ignored."""
    rng = np.random.default_rng(0)
    for name, count in (("cat", 3), ("dog", 2)):
        (tmp_path / name).mkdir()
        for index in range(count):
            pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{index}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_classes_and_shapes(folder):
    """Sub-folders become sorted classes; images are resized to the requested shape."""
    images, labels, names = read_image_folder(folder, (1, 28, 28))
    assert names == ["cat", "dog"]
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1]


def test_grayscale_and_rgb_match_pillow(folder):
    """Conversion and resizing agree with Pillow's own convert and resize.

    cnnkit resizes in floating point (as it does for every image it reads) and rounds once at the
    end, where Pillow's 8-bit resize rounds each pass: one grey level apart at most.
    """
    path = folder / "dog" / "1.png"
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L").resize((16, 12), Image.Resampling.BILINEAR))
        rgb = np.asarray(image.convert("RGB"))
    resized = load_image(path, (1, 12, 16))[0].astype(int)
    assert np.abs(resized - gray.astype(int)).max() <= 1
    np.testing.assert_array_equal(load_image(path, (3, 20, 30)), rgb.transpose(2, 0, 1))


def test_broken_file_is_skipped_and_reported(folder):
    """An unreadable image is skipped by default and reported by name."""
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    reports = []
    images, _, _ = read_image_folder(folder, (1, 8, 8), report=reports.append)
    assert len(images) == 5
    assert len(reports) == 1 and "broken.png" in reports[0]


def test_broken_file_is_refused_on_request(folder):
    """With on_error='raise' an unreadable image stops the reading, naming the file."""
    (folder / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        read_image_folder(folder, (1, 8, 8), on_error="raise")


def test_missing_and_empty_folders_are_refused(tmp_path):
    """A missing folder, a folder without classes, and classes without images are refused."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image_folder(tmp_path / "nope", (1, 8, 8))
    with pytest.raises(ValueError, match="no class sub-folders"):
        read_image_folder(tmp_path, (1, 8, 8))
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match=r"one class sub-folder .'a'.; a classifier needs"):
        read_image_folder(tmp_path, (1, 8, 8))
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        read_image_folder(tmp_path, (1, 8, 8))


def test_class_without_images_is_reported(folder):
    """A class sub-folder with no readable image is named in a warning."""
    (folder / "empty").mkdir()
    lines = []
    read_image_folder(folder, (1, 8, 8), report=lines.append)
    assert any("no readable images in class sub-folder(s) empty" in line for line in lines)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    """A 16-bit grey file reads as its value / 65535 * 255, as cnnkit filter reads it."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(tmp_path / name / "x.png")
    images, _, _ = read_image_folder(tmp_path, (1, 4, 4))
    assert np.all(images == 128)  # 32768 / 65535 * 255 = 127.502, rounded; convert("L") gave 255


def test_bad_channel_count_and_on_error_are_refused(folder):
    """Only 1 or 3 channels, and only 'skip' or 'raise', are accepted."""
    with pytest.raises(ValueError, match=r"1 \(grayscale\) or 3 \(RGB\)"):
        read_image_folder(folder, (2, 8, 8))
    with pytest.raises(ValueError, match="on_error"):
        read_image_folder(folder, (1, 8, 8), on_error="ignore")


def test_load_dataset_with_imagefolder(folder):
    """imagefolder:PATH gives a data set without a test split, resized as asked."""
    data = load_dataset(f"imagefolder:{folder}", input_shape=(3, 16, 16))
    assert data.input_shape == (3, 16, 16) and data.test_images is None
    assert data.class_names == ["cat", "dog"]
