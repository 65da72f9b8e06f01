"""Split files: the exact train / validation / test file lists of an image folder, kept as JSON.

A run that reads its split from a file trains and validates on the same images as every other run
that reads it, whatever the seed or the cnnkit version, so results can be reproduced and
compared. The lists are drawn stratified and seeded (:func:`cnnkit.data.split_train_validation`);
a folder that comes split into ``train/``, ``val/`` and ``test/`` keeps its own split.

The file::

    {"format": "cnnkit-split", "version": 1, "dataset": "imagefolder:photos", "seed": 1,
     "class_names": ["cat", "dog"], "train": ["cat/001.jpg", ...], "validation": [...],
     "test": [...]}

Paths are relative to the image folder, with ``/`` separators.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnkit._files import atomic_write
from cnnkit._json import read_json
from cnnkit._validate import check_int
from cnnkit.budget import check_memory
from cnnkit.errors import BadFile, InvalidArgument

__all__ = ["SPLIT_FORMAT", "read_split_file", "write_split_file"]

SPLIT_FORMAT = "cnnkit-split"
SPLIT_VERSION = 1
SPLITS = ("train", "validation", "test")
#: Split files are lists of names; anything larger than this is not one.
MAX_SPLIT_FILE_BYTES = 256 * 2**20


def _files_of(dataset) -> dict[str, list[str]]:
    if not dataset.files:
        raise InvalidArgument(
            f"split files name image files; dataset {dataset.name!r} is not an image folder"
        )
    return dataset.files


def write_split_file(
    path: str | os.PathLike,
    dataset,
    *,
    val_size: int | float | None = None,
    test_size: int | float | None = None,
    seed: int = 1,
    overwrite: bool = False,
) -> Path:
    """Draw a stratified, seeded split of an image folder and write its file lists as JSON.

    Splits the folder already has (``val/``, ``test/``) are written as they are. Otherwise a test
    split of ``test_size`` (none by default) is drawn from the training images first, then the
    validation split of ``val_size`` (default a sixth) from the rest, with the same rule and seed
    as ``cnnkit train`` uses, so that without ``test_size`` the file holds the split a run makes.

    Parameters
    ----------
    path : path-like
        The JSON file to write (atomically).
    dataset : Dataset
        From ``load_dataset('imagefolder:PATH', ...)``.
    val_size, test_size : int or float, optional
        A count or a fraction of the training images.
    seed : int
        The split's seed.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
    """
    from cnnkit.data import split_train_validation

    files = _files_of(dataset)
    seed = check_int(seed, "seed")
    labels = np.asarray(dataset.train_labels)
    train = np.arange(len(labels))
    lists = {split: list(names) for split, names in files.items() if split != "train"}
    if "test" not in lists and test_size is not None:
        drawn = split_train_validation(labels, test_size, seed=seed + 2)
        lists["test"] = [files["train"][row] for row in drawn.validation]
        train = drawn.train
    if "validation" not in lists:
        drawn = split_train_validation(labels[train], val_size, seed=seed)
        lists["validation"] = [files["train"][row] for row in train[drawn.validation]]
        train = train[drawn.train]
    lists["train"] = [files["train"][row] for row in train]
    content = {
        "format": SPLIT_FORMAT,
        "version": SPLIT_VERSION,
        "dataset": dataset.name,
        "seed": seed,
        "class_names": list(dataset.class_names),
        **{split: lists.get(split, []) for split in SPLITS},
    }
    text = json.dumps(content, indent=1)
    return atomic_write(
        path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite
    )


def _read_lists(path: Path) -> dict:
    content = read_json(path, "split file", max_bytes=MAX_SPLIT_FILE_BYTES)
    if not isinstance(content, dict) or content.get("format") != SPLIT_FORMAT:
        raise BadFile(f"{path} is not a cnnkit split file (no \"format\": \"{SPLIT_FORMAT}\")")
    if content.get("version") != SPLIT_VERSION:
        raise BadFile(f"split file {path} has version {content.get('version')!r}; "
                      f"this cnnkit reads version {SPLIT_VERSION}")
    for key in (*SPLITS, "class_names"):
        value = content.get(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise BadFile(f"split file {path}: {key!r} must be a list of strings")
    return content


def read_split_file(
    path: str | os.PathLike,
    dataset,
    *,
    report: Callable[[str], None] | None = None,
):
    """The image folder ``dataset`` split as the file says: a new Dataset whose training,
    validation and test images are exactly the files listed.

    Refused, naming the file, when it is not a split file, when its classes differ from the
    folder's, when a file is listed twice, or when it names a file that is not among the folder's
    readable images. Images of the folder that the file does not list (added since) are left
    out, and ``report`` says how many.

    Returns
    -------
    Dataset
        ``val_images``/``val_labels`` set; ``test_images`` None when the file lists no test images.
        The rows are gathered into memory.
    """
    from cnnkit.data import Dataset

    path = Path(path)
    files = _files_of(dataset)
    content = _read_lists(path)
    if content["class_names"] != list(dataset.class_names):
        raise BadFile(
            f"split file {path} has classes {', '.join(content['class_names'])}; "
            f"{dataset.name} has {', '.join(dataset.class_names)}"
        )
    arrays = {"train": (dataset.train_images, dataset.train_labels),
              "validation": (dataset.val_images, dataset.val_labels),
              "test": (dataset.test_images, dataset.test_labels)}
    where = {name: (split, row) for split, names in files.items()
             for row, name in enumerate(names)}
    seen: set[str] = set()
    for split in SPLITS:
        for name in content[split]:
            if name in seen:
                raise BadFile(f"split file {path} lists {name!r} twice")
            if name not in where:
                raise BadFile(
                    f"split file {path} names {name!r}, which is not among the readable images "
                    f"of {dataset.name}"
                )
            seen.add(name)
    if not content["train"]:
        raise BadFile(f"split file {path} lists no training images")
    left_out = len(where) - len(seen)
    if left_out and report is not None:
        report(f"{left_out} image(s) of {dataset.name} are in no split of {path}; left out")
    parts = {}
    for split in SPLITS:
        names = content[split]
        if not names:
            parts[split] = (None, None)
            continue
        check_memory(len(names) * int(np.prod(dataset.input_shape)), f"the {split} images")
        images = np.empty((len(names), *dataset.input_shape), dtype=np.uint8)
        labels = np.empty(len(names), dtype=np.int64)
        for source in SPLITS:
            rows = [(index, where[name][1]) for index, name in enumerate(names)
                    if where[name][0] == source]
            if rows:
                target, origin = (np.array(column) for column in zip(*rows))
                images[target] = arrays[source][0][origin]
                labels[target] = arrays[source][1][origin]
        parts[split] = (images, labels)
    return Dataset(
        dataset.name, *parts["train"], *parts["test"], list(dataset.class_names),
        *parts["validation"], {split: list(content[split]) for split in SPLITS if content[split]},
    )
