"""Image folders: one sub-folder per class of ordinary image files, read with Pillow.

``root/cat/001.png, root/cat/002.jpg, root/dog/...``: the classes are the sub-folder names in
sorted order. Every image is read with :func:`cnnkit.imageio.read_image`, converted to grayscale
or RGB and resized to the requested height and width. A file that cannot be read (damaged, not an
image, a decompression bomb) is reported by name and either skipped or refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnnkit._validate import check_choice
from cnnkit.errors import BadFile, InvalidArgument, NotFound, TooLarge

__all__ = ["IMAGE_SUFFIXES", "load_image", "read_image_folder"]

#: File suffixes taken as images (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    from cnnkit.arch import parse_input_shape

    channels, height, width = parse_input_shape(input_shape)
    if channels not in (1, 3):
        raise InvalidArgument(f"input channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    return channels, height, width


def load_image(path: str | os.PathLike, input_shape: Sequence[int]) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``: grayscale (C=1) or RGB (C=3), resized to H×W.

    Read through :func:`cnnkit.imageio.read_image`, so EXIF orientation, palettes, 16-bit files
    (scaled, not clipped) and the decompression-bomb limit are handled as everywhere in cnnkit.
    A file that cannot be used raises a :class:`~cnnkit.errors.CnnkitError` naming it.
    """
    from cnnkit.imageio import read_image

    channels, height, width = _check_shape(input_shape)
    pixels = read_image(path, color="gray" if channels == 1 else "rgb", size=(height, width))
    array = np.rint(pixels * 255.0).astype(np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1).copy()


def read_image_folder(
    root: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    on_error: str = "skip",
    report: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every image under ``root/<class>/``.

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
    _check_shape(input_shape)
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"image folder {root} does not exist or is not a folder")
    class_names = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if not class_names:
        raise BadFile(f"image folder {root} has no class sub-folders (one per class)")
    if len(class_names) == 1:
        raise BadFile(
            f"image folder {root} has one class sub-folder ({class_names[0]!r}); a classifier "
            "needs at least two, one sub-folder per class"
        )
    images, labels = [], []
    for label, name in enumerate(class_names):
        files = sorted(
            path
            for path in (root / name).rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )
        for path in files:
            try:
                images.append(load_image(path, input_shape))
            except (BadFile, TooLarge) as exc:
                if on_error == "raise":
                    raise
                if report is not None:
                    report(f"skipped {exc}")
                continue
            labels.append(label)
    if not images:
        raise BadFile(f"image folder {root} holds no readable images")
    present = set(labels)
    empty = [name for index, name in enumerate(class_names) if index not in present]
    if empty and report is not None:
        report(f"warning: no readable images in class sub-folder(s) {', '.join(empty)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64), class_names
