"""Data sets for training: MNIST-style IDX files, synthetic digits and image folders.

Every data set comes out the same way: uint8 images ``(N, C, H, W)``, int64 labels, class names,
and a test split when the data set has one. Pixel values stay 0..255 here; the engine scales
them to [0, 1] and standardises them with the training split's mean and standard deviation,
which it stores in the checkpoint so that evaluation and prediction use the same numbers.

Names:

- ``mnist``, ``fashion-mnist``: IDX files, found on disk or downloaded (see
  :mod:`cnnkit.data.registry`);
- ``synthetic-digits``: 12,000 training and 2,000 test images drawn from a fixed seed
  (:mod:`cnnkit.data.synthetic`), no files needed;
- ``imagefolder:PATH``: one sub-folder per class (:mod:`cnnkit.data.imagefolder`); all images
  are training images.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_int
from cnnkit.data.idx import read_idx, write_idx
from cnnkit.data.imagefolder import read_image_folder
from cnnkit.data.registry import (
    IDX_DATASETS,
    DatasetNotFoundError,
    DownloadError,
    fetch,
    locate,
    search_folders,
)
from cnnkit.data.synthetic import make_digits
from cnnkit.errors import InvalidArgument, InvalidType

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_VAL_FRACTION",
    "Dataset",
    "DatasetNotFoundError",
    "DownloadError",
    "fetch",
    "load_dataset",
    "locate",
    "make_digits",
    "read_idx",
    "read_image_folder",
    "resolve_val_size",
    "search_folders",
    "write_idx",
]

#: Names accepted by :func:`load_dataset` (plus ``imagefolder:PATH``).
DATASET_NAMES = ("mnist", "fashion-mnist", "synthetic-digits")

#: The tutorial holds out the first 10,000 of MNIST's 60,000 training images: one sixth.
DEFAULT_VAL_FRACTION = 1 / 6

SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_SEED = 12_000, 2_000, 20_231


@dataclass
class Dataset:
    """Images and labels of one data set.

    Attributes
    ----------
    name : str
        As given to :func:`load_dataset`.
    train_images, test_images : numpy.ndarray
        uint8 ``(N, C, H, W)``; ``test_images`` is None when the data set has no test split.
    train_labels, test_labels : numpy.ndarray
        int64 ``(N,)``.
    class_names : list of str
        Index -> name.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: list[str]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(n) for n in self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _read_idx_split(paths: dict, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(paths[f"{prefix}-images-idx3-ubyte"])
    labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InvalidArgument(
            f"{prefix} files do not match: images {images.shape}, labels {labels.shape}"
        )
    return images[:, None].astype(np.uint8), labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _synthetic(seed: int) -> tuple[np.ndarray, ...]:
    train_images, train_labels = make_digits(SYNTHETIC_TRAIN, seed)
    test_images, test_labels = make_digits(SYNTHETIC_TEST, seed + 1)
    return train_images[:, None], train_labels, test_images[:, None], test_labels


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    input_shape: Sequence[int] | None = None,
    download: bool = True,
    progress: bool = False,
    on_error: str = "skip",
    report: Callable[[str], None] | None = None,
) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        ``'mnist'``, ``'fashion-mnist'``, ``'synthetic-digits'`` or ``'imagefolder:PATH'``.
    data_dir : path-like, optional
        Searched first for IDX files.
    input_shape : sequence of 3 ints, optional
        ``(C, H, W)`` images are brought to (image folders only: the other data sets are
        1×28×28 and a different shape is refused).
    download : bool
        Allow downloading missing IDX files.
    progress : bool
        Show a progress bar while downloading.
    on_error : {'skip', 'raise'}
        Image folders: what to do with unreadable files.
    report : callable, optional
        Receives a line for each skipped file or failed mirror.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = load_dataset("synthetic-digits")
    >>> data.train_images.shape, data.test_images.shape, data.num_classes
    ((12000, 1, 28, 28), (2000, 1, 28, 28), 10)
    """
    if not isinstance(name, str):
        raise InvalidType(f"dataset must be a string, got {type(name).__name__}")
    if name.startswith("imagefolder:"):
        root = name[len("imagefolder:") :]
        shape = tuple(input_shape) if input_shape is not None else (1, 28, 28)
        images, labels, class_names = read_image_folder(
            root, shape, on_error=on_error, report=report
        )
        return Dataset(name, images, labels, None, None, class_names)
    if name == "synthetic-digits":
        train_images, train_labels, test_images, test_labels = _synthetic(SYNTHETIC_SEED)
        data = Dataset(
            name,
            train_images,
            train_labels.astype(np.int64),
            test_images,
            test_labels.astype(np.int64),
            [str(d) for d in range(10)],
        )
    elif name in IDX_DATASETS:
        paths = fetch(name, data_dir, download_missing=download, progress=progress, log=report)
        train_images, train_labels = _read_idx_split(paths, "train")
        test_images, test_labels = _read_idx_split(paths, "t10k")
        data = Dataset(
            name,
            train_images,
            train_labels,
            test_images,
            test_labels,
            list(IDX_DATASETS[name].class_names),
        )
    else:
        allowed = ", ".join(repr(n) for n in DATASET_NAMES)
        raise InvalidArgument(
            f"dataset must be one of {allowed} or "
            f"'imagefolder:PATH', got {name!r}"
        )
    if input_shape is not None and tuple(input_shape) != data.input_shape:
        shape_text = "x".join(map(str, data.input_shape))
        raise InvalidArgument(
            f"dataset {name!r} has {shape_text} images, not "
            f"{'x'.join(map(str, input_shape))}; only image folders are resized"
        )
    return data


def resolve_val_size(val_size: int | float | None, count: int) -> int:
    """The number of validation images for ``val_size`` (a count, a fraction, or the default).

    The default (``None``) is a sixth of the training images: the tutorial's 10,000 of 60,000.
    A split that leaves no training image is refused.

    >>> resolve_val_size(None, 60000), resolve_val_size(0.1, 60000), resolve_val_size(500, 60000)
    (10000, 6000, 500)
    """
    count = check_int(count, "count", minimum=1)
    if val_size is None:
        size = round(count * DEFAULT_VAL_FRACTION)
    elif isinstance(val_size, float):
        if not 0.0 <= val_size < 1.0:
            raise InvalidArgument(f"val_size as a fraction must be in [0, 1), got {val_size}")
        size = round(count * val_size)
    else:
        size = check_int(val_size, "val_size", minimum=0)
    if size >= count:
        raise InvalidArgument(
            f"val_size {val_size} would hold out {size} of the {count} training images and leave "
            "none to train on; choose a smaller count or a fraction below 1"
        )
    return size
