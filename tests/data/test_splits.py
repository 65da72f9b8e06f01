"""Split files: stratified, seeded, exact round trip, refusals naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.data import load_dataset, read_split_file, split_train_validation, write_split_file

SHAPE = (1, 12, 12)


@pytest.fixture
def data(image_root, tmp_path):
    return load_dataset(f"imagefolder:{image_root}", input_shape=SHAPE,
                        cache_dir=tmp_path / "cache", workers=1)


def test_round_trip(data, tmp_path):
    """Reading a written split gives exactly the listed files' images in each split."""
    path = write_split_file(tmp_path / "split.json", data, val_size=0.2, test_size=0.1, seed=4)
    content = json.loads(path.read_text())
    split = read_split_file(path, data)
    row = {name: index for index, name in enumerate(data.files["train"])}
    for part, images, labels in (("train", split.train_images, split.train_labels),
                                 ("validation", split.val_images, split.val_labels),
                                 ("test", split.test_images, split.test_labels)):
        rows = [row[name] for name in content[part]]
        np.testing.assert_array_equal(images, data.train_images[rows])
        np.testing.assert_array_equal(labels, data.train_labels[rows])
    assert (len(split.train_images), len(split.val_images), len(split.test_images)) == (
        130, 32, 18)  # a tenth of 180 for test, then a fifth of the other 162
    assert np.bincount(split.test_labels).tolist() == [7, 6, 5]  # stratified 70/60/50


def test_same_validation_as_training_split(data, tmp_path):
    """Without a test split the file holds the validation split that cnnkit train draws."""
    path = write_split_file(tmp_path / "split.json", data, seed=7)
    expected = split_train_validation(data.train_labels, None, seed=7)
    content = json.loads(path.read_text())
    assert content["validation"] == [data.files["train"][i] for i in expected.validation]
    assert content["train"] == [data.files["train"][i] for i in expected.train]
    assert content["test"] == []


def test_same_seed_same_file_other_seed_other(data, tmp_path):
    """The same seed writes the same lists; another seed other lists."""
    first = write_split_file(tmp_path / "a.json", data, seed=1).read_text()
    assert write_split_file(tmp_path / "b.json", data, seed=1).read_text() == first
    assert write_split_file(tmp_path / "c.json", data, seed=2).read_text() != first


def test_unknown_file_is_refused(data, tmp_path):
    """A split file naming a file the folder does not have is refused, naming both."""
    path = write_split_file(tmp_path / "split.json", data)
    content = json.loads(path.read_text())
    content["validation"][0] = "a/missing.png"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"split\.json names 'a/missing\.png'") as info:
        read_split_file(path, data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("{broken", "is not JSON"),
    ('{"format": "other"}', "is not a cnnkit split file"),
    ('{"format": "cnnkit-split", "version": 1, "train": "x", "validation": [], "test": [],'
     ' "class_names": []}', "'train' must be a list of strings"),
])
def test_malformed_split_files_are_refused(data, tmp_path, text, message):
    """Files that are not split files are refused in one line naming the file."""
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_split_file(path, data)


def test_duplicates_classes_and_missing_file(data, tmp_path):
    """A file listed twice, other classes, and a missing split file are refused."""
    path = write_split_file(tmp_path / "split.json", data)
    content = json.loads(path.read_text())
    twice = dict(content, validation=[*content["validation"], content["train"][0]])
    path.write_text(json.dumps(twice))
    with pytest.raises(ValueError, match="twice"):
        read_split_file(path, data)
    path.write_text(json.dumps(dict(content, class_names=["x", "y"])))
    with pytest.raises(ValueError, match="has classes x, y"):
        read_split_file(path, data)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_split_file(tmp_path / "none.json", data)
    with pytest.raises(FileExistsError):
        write_split_file(path, data)


def test_added_files_are_left_out_and_reported(data, tmp_path, image_root):
    """Images added after the split was written are in no split, and the report says so."""
    from PIL import Image

    path = write_split_file(tmp_path / "split.json", data)
    Image.new("L", (20, 20), 9).save(image_root / "a" / "late.png")
    grown = load_dataset(f"imagefolder:{image_root}", input_shape=SHAPE,
                         cache_dir=tmp_path / "cache", workers=1)
    lines = []
    split = read_split_file(path, grown, report=lines.append)
    assert len(split.train_images) + len(split.val_images) == 180
    assert lines == [f"1 image(s) of {grown.name} are in no split of {path}; left out"]


def test_not_an_image_folder_is_refused(tmp_path):
    """Split files need file names: a data set without them is refused."""
    with pytest.raises(ValueError, match="not an image folder"):
        write_split_file(tmp_path / "s.json", load_dataset("synthetic-digits"))
