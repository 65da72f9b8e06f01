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
    ("{broken", "is not valid JSON"),
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


# ---- the validation split with --train-limit ------------------------------------------------

MNIST_LIKE = np.repeat(np.arange(10), 6000)  # 60,000 labels, 6,000 per class


@pytest.mark.parametrize(
    ("train_limit", "val_size", "validation", "training"),
    [
        (10_000, None, 1_667, 8_333),  # the default sixth is a sixth of the limited set
        (5_000, 0.1, 500, 4_500),  # a fraction is a fraction of the limited set
        (5_000, 700, 700, 4_300),  # an integer is an absolute count
        (None, None, 10_000, 50_000),  # no limit: the tutorial's 10,000 of 60,000
    ],
)
def test_limit_first_then_split(train_limit, val_size, validation, training):
    """train_limit picks the images first; val_size is held out of those, stratified."""
    split = split_train_validation(MNIST_LIKE, val_size, seed=3, train_limit=train_limit)
    assert (len(split.validation), len(split.train)) == (validation, training)
    assert not np.intersect1d(split.validation, split.train).size
    counts = np.bincount(MNIST_LIKE[split.validation], minlength=10)
    assert counts.max() - counts.min() <= 1  # every class in its share


def test_split_without_limit_is_unchanged_by_the_limit_rule():
    """Without train_limit the validation images are the stratified sample they always were."""
    from cnnkit.data import stratified_sample

    split = split_train_validation(MNIST_LIKE, 0.1, seed=5)
    np.testing.assert_array_equal(split.validation, stratified_sample(MNIST_LIKE, 6_000, 5))


def test_val_size_leaving_too_few_training_images_is_refused():
    """A validation split that leaves fewer training images than classes is refused by name."""
    with pytest.raises(ValueError, match=r"hold out 995 of the 1000 images available and "
                                         r"leave 5 to train on; at least 10 \(one per class\)"):
        split_train_validation(MNIST_LIKE, 995, seed=1, train_limit=1_000)
    split = split_train_validation(MNIST_LIKE, 990, seed=1, train_limit=1_000)
    assert np.unique(MNIST_LIKE[split.train]).size == 10
