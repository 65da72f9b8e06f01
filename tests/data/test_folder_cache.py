"""Parallel decoding and the memory-mapped cache of image folders."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from cnnkit.data import load_dataset
from cnnkit.data.cache import clear_cache, list_cache, load_image_folder
from cnnkit.data.imagefolder import read_image_folder

SHAPE = (3, 16, 16)


def _load(root, cache_dir, lines=None, **options):
    return load_image_folder(root, SHAPE, cache_dir=cache_dir, workers=1,
                             report=None if lines is None else lines.append, **options)


def test_parallel_equals_serial(image_root):
    """Two worker processes give the same pixels, labels and order as one."""
    serial = read_image_folder(image_root, SHAPE, workers=1)
    parallel = read_image_folder(image_root, SHAPE, workers=2)
    np.testing.assert_array_equal(serial[0], parallel[0])
    np.testing.assert_array_equal(serial[1], parallel[1])
    assert serial[0].shape == (180, *SHAPE)


def test_cache_equals_fresh_decode(image_root, tmp_path):
    """A cache built, then opened, holds the fresh decode bit for bit, memory-mapped."""
    fresh = read_image_folder(image_root, SHAPE, workers=1)
    built = _load(image_root, tmp_path / "cache")
    opened = _load(image_root, tmp_path / "cache")
    assert (built.cache_state, opened.cache_state) == ("built", "opened")
    assert isinstance(opened.images, np.memmap) and not opened.images.flags.writeable
    np.testing.assert_array_equal(opened.images, fresh[0])
    np.testing.assert_array_equal(opened.labels, fresh[1])


def test_changed_added_removed_files_update_only_those(image_root, tmp_path):
    """Changing, adding and removing a file re-decodes only those, and equals a fresh decode."""
    _load(image_root, tmp_path / "cache")
    changed = image_root / "a" / "001.jpg"
    Image.new("RGB", (20, 20), (255, 0, 0)).save(changed)
    os.utime(changed, ns=(1, 1))
    Image.new("RGB", (25, 21), (0, 255, 0)).save(image_root / "b" / "new.png")
    (image_root / "c" / "002.png").unlink()
    lines = []
    updated = _load(image_root, tmp_path / "cache", lines)
    assert updated.cache_state == "updated"
    assert any("1 changed, 1 added, 1 removed" in line and "decoding 2" in line
               for line in lines), lines
    fresh = read_image_folder(image_root, SHAPE, workers=1)
    np.testing.assert_array_equal(updated.images, fresh[0])
    np.testing.assert_array_equal(updated.labels, fresh[1])
    assert _load(image_root, tmp_path / "cache").cache_state == "opened"


@pytest.mark.parametrize("damage", ["truncate", "manifest", "labels", "extra bytes"])
def test_damaged_cache_is_rebuilt(image_root, tmp_path, damage):
    """A damaged cache is detected by its checks, said so, and rebuilt, never used."""
    entry = _load(image_root, tmp_path / "cache").cache_path
    images = entry / "images.npy"
    if damage == "truncate":
        os.truncate(images, images.stat().st_size - 100)
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json")
    elif damage == "labels":
        np.save(entry / "labels.npy", np.zeros(3, dtype=np.int64))
    else:
        with open(images, "ab") as handle:
            handle.write(b"\0" * 48)
    lines = []
    rebuilt = _load(image_root, tmp_path / "cache", lines)
    assert rebuilt.cache_state == "built"
    assert any("damaged" in line and "rebuilding" in line for line in lines), lines
    fresh = read_image_folder(image_root, SHAPE, workers=1)
    np.testing.assert_array_equal(rebuilt.images, fresh[0])


def test_unreadable_files_are_remembered(image_root, tmp_path):
    """A broken file is reported on every load, also from the cache, and refused on request."""
    (image_root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for _ in range(2):
        lines = []
        folder = _load(image_root, tmp_path / "cache", lines)
        assert len(folder.images) == 180
        assert any("broken.png" in line for line in lines)
    with pytest.raises(ValueError, match=r"broken\.png"):
        _load(image_root, tmp_path / "cache", on_error="raise")


def test_two_builders_share_one_cache(image_root, tmp_path):
    """Two threads building the same cache at once both get it right; one of them builds."""
    results = []

    def build():
        results.append(_load(image_root, tmp_path / "cache"))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.cache_state for result in results) == ["built", "opened"]
    np.testing.assert_array_equal(results[0].images, results[1].images)
    assert [path.name for path in (tmp_path / "cache").iterdir() if path.is_dir()] == [
        results[0].cache_path.name]


def test_cache_list_and_clear(image_root, tmp_path):
    """list_cache names the source, shape and size; clear_cache removes the cache folders."""
    _load(image_root, tmp_path / "cache")
    entries = list_cache(tmp_path / "cache")
    assert len(entries) == 1 and entries[0].source == str(image_root.resolve())
    assert entries[0].input_shape == SHAPE and entries[0].images == 180
    assert entries[0].problem is None
    assert len(clear_cache(tmp_path / "cache")) == 1
    assert list_cache(tmp_path / "cache") == []


def test_manifest_records_files(image_root, tmp_path):
    """The manifest holds the source, the shape, the classes, the version and every file."""
    entry = _load(image_root, tmp_path / "cache").cache_path
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["source"] == str(image_root.resolve())
    assert manifest["input_shape"] == list(SHAPE) and manifest["class_names"] == ["a", "b", "c"]
    assert len(manifest["files"]) == 180 and manifest["cnnkit_version"]


def test_presplit_folder_is_used_as_given(tmp_path):
    """train/, val/ and test/ become the training, validation and test splits."""
    from tests.data.conftest import make_folder

    root = tmp_path / "split"
    make_folder(root, (10, 8), split="train")
    make_folder(root, (3, 2), seed=1, split="val")
    make_folder(root, (4, 4), seed=2, split="test")
    data = load_dataset(f"imagefolder:{root}", input_shape=SHAPE, cache_dir=tmp_path / "c")
    assert len(data.train_images) == 18 and len(data.val_images) == 5
    assert len(data.test_images) == 8 and data.class_names == ["a", "b"]
    assert data.test_labels.tolist() == [0] * 4 + [1] * 4
    assert data.files["validation"][0] == "val/a/000.png"
    fresh = read_image_folder(root / "test", SHAPE, workers=1)
    np.testing.assert_array_equal(data.test_images, fresh[0])


def test_presplit_folder_with_unknown_class_is_refused(tmp_path):
    """A class in test/ that train/ lacks is refused, naming the folder."""
    from tests.data.conftest import make_folder

    make_folder(tmp_path / "s", (2, 2), split="train")
    make_folder(tmp_path / "s", (2, 2, 2), split="test")
    with pytest.raises(ValueError, match=r"test/c is a class that .*train does not have"):
        load_dataset(f"imagefolder:{tmp_path / 's'}", input_shape=SHAPE, cache=False)


def test_bad_arguments_are_refused(image_root, tmp_path):
    """workers below 1 and a cache_dir that is a file are refused, naming the argument."""
    with pytest.raises(ValueError, match="workers"):
        read_image_folder(image_root, SHAPE, workers=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="cache_dir"):
        _load(image_root, tmp_path / "file")
