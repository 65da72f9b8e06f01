"""Image folders: one sub-folder per class of ordinary image files, read with Pillow.

``root/cat/001.png, root/cat/002.jpg, root/dog/...``: the classes are the sub-folder names in
sorted order. A folder whose sub-folders are ``train/`` and optionally ``val/`` and ``test/``,
each holding the class sub-folders, is taken as already split. Every image is read with
:func:`cnnkit.imageio.read_image` (JPEG in draft mode), converted to grayscale or RGB and resized
to the requested height and width, in a pool of processes when there are many. A file that cannot
be read (damaged, not an image, a decompression bomb) is reported by name and either skipped or
refused.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._files import display_name, open_regular
from cnnkit._validate import check_choice, check_int
from cnnkit.budget import check_memory
from cnnkit.errors import BadFile, CnnkitError, InvalidArgument, NotFound, TooLarge
from cnnkit.shapes import parse_input_shape

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLIT_FOLDERS",
    "FolderListing",
    "decode_images",
    "default_workers",
    "list_image_folder",
    "load_image",
    "read_image_folder",
]

#: File suffixes taken as images (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
#: Sub-folders that mark a folder as already split, and the split each one holds.
SPLIT_FOLDERS = {"train": "train", "val": "validation", "test": "test"}
#: Files one worker decodes per task: enough to make the cost of a task small against the work.
CHUNK_FILES = 32


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    channels, height, width = parse_input_shape(input_shape)
    if channels not in (1, 3):
        raise InvalidArgument(f"input channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    return channels, height, width


def load_image(path: str | os.PathLike, input_shape: Sequence[int], *,
               fit: str = "stretch", with_header: bool = False):
    """One image file as uint8 ``(C, H, W)``: grayscale (C=1) or RGB (C=3), resized to H×W
    (``fit='pad'`` keeps the aspect ratio: see :func:`cnnkit.imageio.resize`).

    Read through :func:`cnnkit.imageio.read_image`, so EXIF orientation, palettes, 16-bit files
    (scaled, not clipped) and the decompression-bomb limit are handled as everywhere in cnnkit;
    large JPEG files are decoded in draft mode (see ``read_image``). A file that cannot be used
    (also one that vanished or may not be read) raises a :class:`~cnnkit.errors.CnnkitError`
    naming it. With ``with_header`` the file's :class:`cnnkit.imageio.ImageHeader` (original
    size and mode) comes with the pixels, from the same read.
    """
    from cnnkit.imageio import read_image

    channels, height, width = _check_shape(input_shape)
    try:
        with open_regular(path, "image file"):  # a FIFO or a device would block the decoder
            pass
        pixels, header = read_image(
            path, color="gray" if channels == 1 else "rgb", size=(height, width), draft=True,
            fit=fit, with_header=True,
        )
    except PermissionError:
        raise BadFile(f"{str(path)!r} cannot be read (permission denied)") from None
    array = np.rint(pixels * 255.0).astype(np.uint8)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1).copy()
    return (array, header) if with_header else array



def default_workers() -> int:
    """The CPUs this process may run on (its affinity mask, as a batch scheduler sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class FolderListing:
    """The image files of a folder, in the order they are read.

    Attributes
    ----------
    root : pathlib.Path
        The folder.
    class_names : list of str
        Sorted class sub-folder names (of ``train/`` in a split folder).
    files : list of str
        Paths relative to ``root`` with ``/`` separators, split by split, class by class, sorted.
    labels : list of int
        The class of each file.
    splits : list of str
        The split of each file: ``'train'``, ``'validation'`` or ``'test'``.
    presplit : bool
        The folder came split into ``train/``, ``val/`` and ``test/``.
    """

    root: Path
    class_names: list[str]
    files: list[str]
    labels: list[int]
    splits: list[str]
    presplit: bool


def _sub_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())


def _image_files(folder: Path) -> list[str]:
    """The image files below ``folder`` at any depth, relative to it with ``/`` separators, in
    the order of their path parts (that of sorted paths). Directories are read with
    ``os.scandir``, whose entries know their type without a stat: a second start of a cached
    folder of 50,000 files lists it in a fraction of the time paths took."""
    found = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif (entry.is_file()
                      and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES):
                    found.append(prefix + entry.name)
    return sorted(found, key=lambda name: name.split("/"))


def list_image_folder(root: str | os.PathLike) -> FolderListing:
    """List the image files of a class folder, or of a folder split into train/val/test.

    A folder is taken as split when it has a ``train`` sub-folder and every sub-folder is one of
    ``train``, ``val``, ``test``; the classes are then those of ``train/``, and ``val/`` and
    ``test/`` may hold only classes that ``train/`` has. Anything else is one sub-folder per class.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/a", "train/b", "test/b"):
    ...     (root / name).mkdir(parents=True)
    ...     _ = (root / name / "x.png").write_bytes(b"")
    >>> listing = list_image_folder(root)
    >>> listing.presplit, listing.class_names, listing.splits
    (True, ['a', 'b'], ['train', 'train', 'test'])
    >>> listing.files
    ['train/a/x.png', 'train/b/x.png', 'test/b/x.png']
    """
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"image folder {root} does not exist or is not a folder")
    top = _sub_folders(root)
    presplit = "train" in top and set(top) <= set(SPLIT_FOLDERS)
    parts = [(folder, SPLIT_FOLDERS[folder]) for folder in SPLIT_FOLDERS if folder in top]
    if not presplit:
        parts = [("", "train")]
    class_names = _sub_folders(root / parts[0][0])
    if not class_names:
        raise BadFile(f"image folder {root / parts[0][0]} has no class sub-folders (one per class)")
    if len(class_names) == 1:
        raise BadFile(
            f"image folder {root / parts[0][0]} has one class sub-folder ({class_names[0]!r}); "
            "a classifier needs at least two, one sub-folder per class"
        )
    files: list[str] = []
    labels: list[int] = []
    splits: list[str] = []
    for folder, split in parts:
        names = _sub_folders(root / folder)
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise BadFile(
                f"{root / folder / unknown[0]} is a class that {root / 'train'} does not have; "
                "every class of val/ and test/ needs training images"
            )
        for name in names:
            for path in _image_files(root / folder / name):
                files.append(posixpath.join(folder, name, path))
                labels.append(class_names.index(name))
                splits.append(split)
    # Folder names that are not UTF-8 are shown (and stored) as every output shows them.
    return FolderListing(root, [display_name(name) for name in class_names], files, labels,
                         splits, presplit)


def _decode_chunk(
    paths: list[str], input_shape: tuple[int, int, int]
) -> tuple[np.ndarray, list[CnnkitError | None]]:
    """Decode files in a worker: the images that could be read, and each file's error or None."""
    images = np.zeros((len(paths), *input_shape), dtype=np.uint8)
    errors: list[CnnkitError | None] = []
    for index, path in enumerate(paths):
        try:
            images[index] = load_image(path, input_shape)
            errors.append(None)
        except (BadFile, TooLarge, NotFound) as exc:
            errors.append(exc)
    return images, errors


def decode_images(
    paths: Sequence[str | os.PathLike],
    input_shape: Sequence[int],
    out: np.ndarray,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> list[CnnkitError | None]:
    """Decode image files into ``out[i]``, in a pool of processes when there are many.

    Files are handed out ``CHUNK_FILES`` at a time, so that the cost of a task stays small against
    the decoding; with one worker, or a single chunk, the files are decoded in this process. The
    pixels do not depend on the number of workers. Rows of files that could not be read are
    zero.

    Parameters
    ----------
    paths : sequence of path-like
        The files.
    input_shape : sequence of 3 ints
        ``(channels, height, width)``.
    out : numpy.ndarray
        uint8 ``(len(paths), C, H, W)``, written in place (an array or a memory map).
    workers : int, optional
        Processes to use; default :func:`default_workers`.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    list
        For each file, None or the :class:`~cnnkit.errors.CnnkitError` that refused it.
    """
    from tqdm import tqdm

    shape = _check_shape(input_shape)
    workers = default_workers() if workers is None else check_int(workers, "workers", minimum=1)
    if out.shape != (len(paths), *shape) or out.dtype != np.uint8:
        raise InvalidArgument(
            f"out must be uint8 {(len(paths), *shape)} for these files, got {out.dtype} {out.shape}"
        )
    names = [os.fspath(path) for path in paths]
    starts = range(0, len(names), CHUNK_FILES)
    errors: list[CnnkitError | None] = [None] * len(names)
    with tqdm(total=len(names), disable=not progress, unit="image", desc="decoding") as bar:

        def store(start: int, result: tuple[np.ndarray, list[CnnkitError | None]]) -> None:
            images, chunk_errors = result
            out[start : start + len(images)] = images
            errors[start : start + len(images)] = chunk_errors
            bar.update(len(images))

        if workers == 1 or len(starts) <= 1:
            for start in starts:
                store(start, _decode_chunk(names[start : start + CHUNK_FILES], shape))
            return errors
        # forkserver: workers start from a clean process, not a fork of one that may hold
        # threads (a progress bar's, torch's) in the middle of a lock.
        context = multiprocessing.get_context("forkserver")
        with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(starts)), mp_context=context
        ) as pool:
            futures = {
                pool.submit(_decode_chunk, names[start : start + CHUNK_FILES], shape): start
                for start in starts
            }
            try:
                for future in concurrent.futures.as_completed(futures):
                    store(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return errors


def read_image_folder(
    root: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    on_error: str = "skip",
    report: Callable[[str], None] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every image under ``root/<class>/`` into memory (no cache; see
    :func:`cnnkit.data.cache.load_image_folder` for the cached, split-aware loader).

    A split folder (``train/``, ``val/``, ``test/``) is read whole, split after split.

    Parameters
    ----------
    root : path-like
        The folder holding one sub-folder per class.
    input_shape : sequence of 3 ints
        ``(channels, height, width)``; channels 1 (grayscale) or 3 (RGB).
    on_error : {'skip', 'raise'}
        What to do with a file that cannot be read: leave it out (and call ``report`` with its
        name and the reason) or refuse the whole folder.
    report : callable, optional
        Receives one line per skipped file.
    workers : int, optional
        Decoding processes; default all the CPUs available.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(N, C, H, W)``.
    labels : numpy.ndarray
        int64 ``(N,)``, indices into ``class_names``.
    class_names : list of str
        Sub-folder names, sorted.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("a", "b"):
    ...     (root / name).mkdir()
    ...     Image.new("L", (40, 30), 200).save(root / name / "x.png")
    >>> images, labels, names = read_image_folder(root, (1, 28, 28))
    >>> images.shape, labels.tolist(), names
    ((2, 1, 28, 28), [0, 1], ['a', 'b'])
    """
    check_choice(on_error, "on_error", ("skip", "raise"))
    shape = _check_shape(input_shape)
    listing = list_image_folder(root)
    images, _, readable = decode_listing(listing, shape, workers=workers, progress=progress,
                                         on_error=on_error, report=report)
    labels = np.asarray(listing.labels, dtype=np.int64)
    return images[readable], labels[readable], listing.class_names


def decode_listing(
    listing: FolderListing,
    shape: tuple[int, int, int],
    *,
    workers: int | None,
    progress: bool,
    on_error: str,
    report: Callable[[str], None] | None,
) -> tuple[np.ndarray, list, np.ndarray]:
    """Every file of ``listing`` decoded into one uint8 array (memory checked first).

    Returns the array (a row per file, zeros for unreadable ones), the error of each file (None
    where it was read) and the indices of the readable rows.
    """
    check_memory(len(listing.files) * int(np.prod(shape)), f"the images of {listing.root}")
    images = np.zeros((len(listing.files), *shape), dtype=np.uint8)
    errors = decode_images(
        [listing.root / name for name in listing.files], shape, images,
        workers=workers, progress=progress,
    )
    return images, errors, settle_errors(listing, errors, on_error=on_error, report=report)


def settle_errors(
    listing: FolderListing,
    errors: Sequence[CnnkitError | str | None],
    *,
    on_error: str,
    report: Callable[[str], None] | None,
) -> np.ndarray:
    """Refuse the first unreadable file (``on_error='raise'``) or report each one; warn about
    classes left without images. Returns the mask of readable files.
    """
    readable = np.array([error is None for error in errors], dtype=bool)
    for error in errors:
        if error is None:
            continue
        if on_error == "raise":
            raise error if isinstance(error, CnnkitError) else BadFile(error)
        if report is not None:
            report(f"skipped {error}")
    if not readable.any():
        raise BadFile(f"image folder {listing.root} holds no readable images")
    present = set(np.asarray(listing.labels, dtype=np.int64)[readable].tolist())
    empty = [name for index, name in enumerate(listing.class_names) if index not in present]
    if empty and report is not None:
        report(f"warning: no readable images in class sub-folder(s) {', '.join(empty)}")
    return readable
