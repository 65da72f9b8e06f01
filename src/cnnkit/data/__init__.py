"""Data sets for training: MNIST-style IDX files, CIFAR-10, synthetic digits and image folders.

Every data set comes out the same way: uint8 images ``(N, C, H, W)``, int64 labels, class names,
and a test split when the data set has one. Pixel values stay 0..255 here; the engine scales
them to [0, 1] and standardises them with the training split's mean and standard deviation,
which it stores in the checkpoint so that evaluation and prediction use the same numbers.

Names:

- ``mnist``, ``fashion-mnist``: IDX files, found on disk or downloaded (see
  :mod:`cnnkit.data.registry`);
- ``cifar-10``: the binary version's archive, found on disk or downloaded the same way, read
  into 3×32×32 images (:mod:`cnnkit.data.cifar`);
- ``synthetic-digits``: 12,000 training and 2,000 test images drawn from a fixed seed
  (:mod:`cnnkit.data.synthetic`), no files needed;
- ``auto`` (what training uses when no data set is named): the tutorial's ``mnist`` when it is
  on disk or can be downloaded, ``synthetic-digits`` otherwise (:func:`choose_dataset` decides
  and says why);
- ``imagefolder:PATH``: one sub-folder per class (:mod:`cnnkit.data.imagefolder`); all images
  are training images, unless the folder comes split into ``train/``, ``val/`` and ``test/``.
  Decoded in parallel once, then opened from a memory-mapped cache (:mod:`cnnkit.data.cache`).
  :func:`write_split_file` and :func:`read_split_file` keep a split
  (:mod:`cnnkit.data.splits`); :mod:`cnnkit.data.stream` serves batches from data larger than
  memory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._validate import check_int
from cnnkit.data.cache import load_image_folder
from cnnkit.data.cifar import read_cifar10
from cnnkit.data.idx import read_idx, write_idx
from cnnkit.data.imagefolder import read_image_folder
from cnnkit.data.registry import (
    ARCHIVE_DATASETS,
    IDX_DATASETS,
    DatasetNotFoundError,
    DownloadError,
    dataset_names,
    dataset_spec,
    fetch,
    locate,
    search_folders,
)
from cnnkit.data.splits import read_split_file, write_split_file
from cnnkit.data.synthetic import make_digits
from cnnkit.errors import BadFile, InvalidArgument, InvalidType

__all__ = [
    "AUTO_DATASET",
    "DATASET_NAMES",
    "DEFAULT_VAL_FRACTION",
    "TUTORIAL_DATASET",
    "Dataset",
    "DatasetChoice",
    "DatasetNotFoundError",
    "DownloadError",
    "Split",
    "check_labels",
    "choose_dataset",
    "dataset_names",
    "fetch",
    "flips_allowed",
    "is_digits",
    "load_dataset",
    "load_image_folder",
    "locate",
    "make_digits",
    "read_idx",
    "read_image_folder",
    "read_split_file",
    "resolve_val_size",
    "search_folders",
    "split_train_validation",
    "stratified_sample",
    "write_idx",
    "write_split_file",
]

#: Names accepted by :func:`load_dataset` (plus ``imagefolder:PATH``).
DATASET_NAMES = (*dataset_names(), "synthetic-digits")

#: The tutorial holds out the first 10,000 of MNIST's 60,000 training images: one sixth.
DEFAULT_VAL_FRACTION = 1 / 6

#: Height and width of the images of the IDX data sets (MNIST's format).
IDX_IMAGE_SIZE = (28, 28)

SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_SEED = 12_000, 2_000, 20_231

#: The data set training uses when none is named, resolved by :func:`choose_dataset`.
AUTO_DATASET = "auto"
#: The tutorial's data set, which ``auto`` means when it can be had.
TUTORIAL_DATASET = "mnist"


def is_digits(name: str) -> bool:
    """Whether data set ``name`` holds light digits on a dark background (MNIST and its kind).

    Image folders are not known to: their content is the user's.

    >>> is_digits("mnist"), is_digits("cifar-10"), is_digits("synthetic-digits")
    (True, False, True)
    """
    if name == "synthetic-digits":
        return True
    spec = dataset_spec(name)
    return spec is not None and spec.digits


def flips_allowed(name: str) -> bool:
    """Whether a left-right mirrored image of data set ``name`` still shows its class.

    Not for digits (a mirrored 2 is no 2); clothes and image folders (the user's choice) allow it.

    ``auto`` (:func:`choose_dataset`) means MNIST or synthetic digits: digits either way.

    >>> flips_allowed("mnist"), flips_allowed("fashion-mnist"), flips_allowed("imagefolder:x")
    (False, True, True)
    """
    if name in ("synthetic-digits", AUTO_DATASET):
        return False
    spec = dataset_spec(name)
    return spec is None or spec.flips_allowed


#: How messages name the registered data sets.
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar-10": "CIFAR-10"}


@dataclass(frozen=True)
class DatasetChoice:
    """What :func:`choose_dataset` settled on, and why.

    ``name`` is ``wanted`` when its files are in ``folder`` (``downloaded`` just now, or found
    there), ``'synthetic-digits'`` otherwise; ``obstacle`` then says why ``wanted`` could not be
    had, and ``looked_in`` lists the folders searched.
    """

    name: str
    wanted: str
    folder: Path | None = None
    downloaded: bool = False
    obstacle: str | None = None
    looked_in: tuple[Path, ...] = ()

    def describe(self) -> str:
        """The line training logs when no data set was named.

        >>> print(DatasetChoice("synthetic-digits", "mnist", obstacle="downloads are off "
        ...     "because CNNKIT_OFFLINE is set", looked_in=(Path("/data"),)).describe())
        ... # doctest: +NORMALIZE_WHITESPACE
        data set: synthetic-digits, as none was named (--dataset): MNIST, the tutorial's data
        set, is not in /data and downloads are off because CNNKIT_OFFLINE is set; synthetic
        digits, which need no files, stand in for it
        """
        title = _TITLES.get(self.wanted, self.wanted)
        if self.wanted == TUTORIAL_DATASET:
            title += ", the tutorial's data set,"
        if self.name == self.wanted:
            where = "was not on disk and has been downloaded into" if self.downloaded else "is in"
            reason = f"{title} {where} {self.folder}"
        else:
            folders = ", ".join(str(folder) for folder in self.looked_in)
            reason = (f"{title} is not in {folders} and {self.obstacle}; synthetic digits, which "
                      "need no files, stand in for it")
        return f"data set: {self.name}, as none was named (--dataset): {reason}"


def choose_dataset(
    wanted: str = TUTORIAL_DATASET,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = False,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    report: Callable[[str], None] | None = None,
) -> DatasetChoice:
    """The registered data set ``wanted`` when it can be had, synthetic digits otherwise, and
    why.

    ``wanted`` can be had when its files are in one of the folders
    :func:`~cnnkit.data.registry.search_folders` lists (``data_dir`` first), or when they can be
    downloaded into the user cache (``download`` and ``$CNNKIT_OFFLINE`` unset; ``mirrors`` and
    ``timeout`` as :func:`~cnnkit.data.registry.fetch` takes them). A failed download, for
    example without a network, falls back to synthetic digits, which need no files, and the
    choice names the failure (``report`` also receives each failed mirror).

    ``dataset='auto'`` in training is ``choose_dataset()``: the tutorial's MNIST; ``cnnkit
    demo`` asks for Fashion-MNIST.
    """
    found = locate(wanted, data_dir)
    if found is not None:
        return DatasetChoice(wanted, wanted, next(iter(found.values())).parent)
    looked_in = tuple(search_folders(wanted, data_dir))
    if not download or os.environ.get("CNNKIT_OFFLINE"):
        obstacle = ("downloads are off because CNNKIT_OFFLINE is set" if download
                    else "downloading was not allowed")
        return DatasetChoice("synthetic-digits", wanted, obstacle=obstacle, looked_in=looked_in)
    failures: list[str] = []

    def failed(line: str) -> None:
        failures.append(line)
        if report is not None:
            report(line)

    try:
        paths = fetch(wanted, data_dir, progress=progress, mirrors=mirrors, timeout=timeout,
                      log=failed)
    except DatasetNotFoundError as exc:
        obstacle = f"the download failed: {failures[-1] if failures else exc}"
        return DatasetChoice("synthetic-digits", wanted, obstacle=obstacle, looked_in=looked_in)
    return DatasetChoice(wanted, wanted, next(iter(paths.values())).parent, downloaded=True)


@dataclass
class Dataset:
    """Images and labels of one data set.

    Attributes
    ----------
    name : str
        As given to :func:`load_dataset`.
    train_images, test_images : numpy.ndarray
        uint8 ``(N, C, H, W)``; ``test_images`` is None when the data set has no test split.
        A cached image folder gives read-only memory maps (indexing them with an index array
        gives an ordinary array in memory).
    train_labels, test_labels : numpy.ndarray
        int64 ``(N,)``.
    class_names : list of str
        Index -> name.
    val_images, val_labels : numpy.ndarray or None
        A validation split that comes with the data (a ``val/`` folder, a split file); None
        when the validation images are to be drawn from the training images
        (:func:`split_train_validation`).
    files : dict or None
        Image folders: ``{'train': [...], 'validation': [...], 'test': [...]}``, the file
        (relative to the folder) of each row of each split present.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: list[str]
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    files: dict[str, list[str]] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(n) for n in self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _read_idx_split(
    paths: dict, prefix: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    images_path = paths[f"{prefix}-images-idx3-ubyte"]
    labels_path = paths[f"{prefix}-labels-idx1-ubyte"]
    labels = read_idx(labels_path, expect=(None,))
    images = read_idx(images_path, expect=(len(labels), *IDX_IMAGE_SIZE))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise BadFile(
            f"{prefix} files do not match: images {images.shape} in {images_path}, labels "
            f"{labels.shape} in {labels_path}"
        )
    if images.dtype != np.uint8:
        raise BadFile(f"{images_path} holds {images.dtype} pixels; IDX images must be uint8")
    check_labels(labels, num_classes, str(labels_path))
    return images[:, None], labels.astype(np.int64)


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Refuse labels that are not whole numbers in ``0 .. num_classes - 1``, naming the first.

    Checked when the data is loaded, so that a bad label stops a run before it trains, not
    after.

    >>> check_labels(np.array([0, 9, 10]), 10, "labels.idx")
    Traceback (most recent call last):
    ...
    cnnkit.errors.BadFile: labels.idx: label 10 at position 2 is outside 0..9 (10 classes)
    """
    if labels.dtype.kind not in "iu":
        raise BadFile(f"{where}: labels must be integers, got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        index = int(bad[0])
        raise BadFile(
            f"{where}: label {int(labels[index])} at position {index} is outside "
            f"0..{num_classes - 1} ({num_classes} classes)"
            + (f"; {bad.size} labels are out of range" if bad.size > 1 else "")
        )


def stratified_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices drawn at random within each class, in proportion to the class sizes.

    Each class gets ``count * class_size / total`` places, rounded down, and the places left
    over go to the classes with the largest remainders (ties to the lower class). Within a class
    the images are drawn with ``numpy.random.default_rng(seed)``. The indices come back sorted,
    so the sample keeps the data set's order.

    >>> labels = np.array([0] * 6 + [1] * 3)
    >>> np.bincount(labels[stratified_sample(labels, 3, seed=0)]).tolist()
    [2, 1]
    """
    count = check_int(count, "count", minimum=0)
    if count > len(labels):
        raise InvalidArgument(f"cannot draw {count} of {len(labels)} images")
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    exact = sizes * count / len(labels)
    quota = np.floor(exact).astype(np.int64)
    leftover = count - int(quota.sum())
    order = np.lexsort((np.arange(len(classes)), -(exact - quota)))
    quota[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(inverse == index))[:take]
        for index, take in enumerate(quota)
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """Indices into a data set's training images: those trained on and those validated on."""

    train: np.ndarray
    validation: np.ndarray


def split_train_validation(
    labels: np.ndarray,
    val_size: int | float | None,
    *,
    seed: int,
    train_limit: int | None = None,
) -> Split:
    """The images a run uses: first at most ``train_limit`` of them, then the validation split.

    Limit first, then split: ``train_limit`` images are drawn from all of ``labels`` (seed
    ``seed + 1``), and ``val_size`` of *those* are held out for validation (seed ``seed``), so a
    fraction is a fraction of the limited set and a count is an absolute number of images (see
    :func:`resolve_val_size`). Both draws are stratified: every class is represented in the
    proportion it has in the whole data set, whatever order the files come in (an image folder
    lists its files class by class). The same seed gives the same split.

    >>> labels = np.repeat(np.arange(3), 20)
    >>> split = split_train_validation(labels, 0.25, seed=1, train_limit=12)
    >>> np.bincount(labels[split.validation]).tolist(), np.bincount(labels[split.train]).tolist()
    ([1, 1, 1], [3, 3, 3])
    """
    used = np.arange(len(labels))
    if train_limit is not None and check_int(train_limit, "train_limit", minimum=1) < len(used):
        used = stratified_sample(labels, train_limit, seed + 1)
    classes = len(np.unique(labels[used]))
    val_count = resolve_val_size(val_size, len(used), min_train=classes)
    validation = used[stratified_sample(labels[used], val_count, seed)]
    return Split(np.setdiff1d(used, validation, assume_unique=True), validation)


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
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        ``'mnist'``, ``'fashion-mnist'``, ``'cifar-10'``, ``'synthetic-digits'`` or
        ``'imagefolder:PATH'``.
    data_dir : path-like, optional
        Searched first for the files of a registered data set.
    input_shape : sequence of 3 ints, optional
        ``(C, H, W)`` images are brought to (image folders only: the other data sets are
        1×28×28, CIFAR-10 3×32×32, and a different shape is refused).
    download : bool
        Allow downloading the missing files of a registered data set.
    progress : bool
        Show a progress bar while downloading or decoding.
    on_error : {'skip', 'raise'}
        Image folders: what to do with unreadable files.
    report : callable, optional
        Receives a line for each skipped file or failed mirror, and what the cache did.
    cache : bool
        Image folders: keep the decoded images in the cache and open them from there next time
        (see :func:`cnnkit.data.cache.load_image_folder`).
    cache_dir : path-like, optional
        Image folders: where the cache lives (default the user's cache folder).
    workers : int, optional
        Image folders: decoding processes (default all the CPUs available).

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
        folder = load_image_folder(
            root, shape, cache=cache, cache_dir=cache_dir, workers=workers, progress=progress,
            on_error=on_error, report=report,
        )
        return dataset_from_folder(name, folder)
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
        num_classes = len(IDX_DATASETS[name].class_names)
        train_images, train_labels = _read_idx_split(paths, "train", num_classes)
        test_images, test_labels = _read_idx_split(paths, "t10k", num_classes)
        data = Dataset(
            name,
            train_images,
            train_labels,
            test_images,
            test_labels,
            list(IDX_DATASETS[name].class_names),
        )
    elif name in ARCHIVE_DATASETS:
        paths = fetch(name, data_dir, download_missing=download, progress=progress, log=report)
        splits = read_cifar10(next(iter(paths.values())), ARCHIVE_DATASETS[name].class_names)
        data = Dataset(
            name,
            splits.train_images,
            splits.train_labels.astype(np.int64),
            splits.test_images,
            splits.test_labels.astype(np.int64),
            list(splits.class_names),
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


def dataset_from_folder(name: str, folder) -> Dataset:
    """A :class:`Dataset` over the rows of a loaded image folder, split as the folder is (slices
    of a memory map stay memory maps)."""
    parts = {}
    for split in ("train", "validation", "test"):
        rows = folder.splits.get(split)
        parts[split] = (
            (None, None, None) if rows is None
            else (folder.images[rows], folder.labels[rows], folder.files[rows])
        )
    if parts["train"][0] is None:
        raise BadFile(f"image folder {folder.listing.root} holds no readable training images")
    return Dataset(
        name, parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1],
        list(folder.listing.class_names), parts["validation"][0], parts["validation"][1],
        {split: part[2] for split, part in parts.items() if part[2] is not None},
    )


def resolve_val_size(val_size: int | float | None, count: int, *, min_train: int = 1) -> int:
    """The number of validation images held out of ``count`` images for ``val_size``.

    ``None`` is the default, a sixth (the tutorial's 10,000 of 60,000); a float in [0, 1) is a
    fraction of ``count``; an integer is an absolute count. A split that leaves fewer than
    ``min_train`` images to train on (the callers pass one per class) is refused.

    >>> resolve_val_size(None, 60000), resolve_val_size(0.1, 5000), resolve_val_size(500, 60000)
    (10000, 500, 500)
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
    if count - size < min_train:
        left = max(count - size, 0)
        raise InvalidArgument(
            f"val_size {val_size} would hold out {size} of the {count} images available and "
            f"leave {left} to train on; at least {min_train} (one per class) must remain; "
            "choose a smaller count or fraction"
        )
    return size
