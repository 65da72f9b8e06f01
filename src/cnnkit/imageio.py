"""Image files in and out, on Pillow, and turning filter results into displayable pixels.

:func:`read_image` reads PNG, JPEG, BMP, TIFF, GIF (first frame) and WebP files in 8 or 16 bits,
grayscale, RGB, RGBA or palette, applies the EXIF orientation and returns float64 values in
[0, 1]. :func:`write_image` writes PNG, JPEG or TIFF (8-bit, or 16-bit grayscale) and ``.npy``
for exact floating-point results. Every write goes to a temporary file in the destination folder
that is then renamed over the target, and an existing file is only replaced with
``overwrite=True``.

Pillow keeps 16 bits only for grayscale images; a 16-bit colour PNG is read at 8-bit precision.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._files import atomic_write
from cnnkit._validate import as_float_array, check_choice, check_int, int_tuple
from cnnkit.budget import check_memory
from cnnkit.errors import BadFile, InvalidArgument, InvalidType, IsAFolder, NotFound, TooLarge

__all__ = [
    "COLOR_MODES",
    "FIT_MODES",
    "LUMA_WEIGHTS",
    "READ_FORMATS",
    "REDUCING_GAP",
    "TO_UINT8_METHODS",
    "WRITE_SUFFIXES",
    "ImageHeader",
    "image_memory",
    "image_shape",
    "pad_to_aspect",
    "read_image",
    "reduce_factors",
    "resize",
    "to_grayscale",
    "to_uint8",
    "write_image",
]

#: ITU-R BT.601 luma weights for (red, green, blue), as used by Pillow's and OpenCV's gray.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: What :func:`read_image` can return: 'keep' (gray stays 2-D, colour keeps its channels and any
#: alpha), 'gray' (2-D luma) or 'rgb' (three channels, alpha dropped).
COLOR_MODES = ("keep", "gray", "rgb")
#: How :func:`resize` meets another aspect ratio: 'stretch' (squash or stretch to the size) or
#: 'pad' (pad to the size's aspect ratio with the image's background first, then resize).
FIT_MODES = ("stretch", "pad")


@dataclass(frozen=True)
class ImageHeader:
    """What a file said about itself while it was read: its size after the EXIF rotation (the
    full size, even where the JPEG decoder scaled it down in draft mode) and its Pillow mode."""

    rows: int
    columns: int
    mode: str
#: Ways :func:`to_uint8` maps floating-point values to 0..255.
TO_UINT8_METHODS = ("rescale", "clip", "abs")
#: Pillow format names that :func:`read_image` accepts.
READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
#: File suffixes :func:`write_image` writes, and the format each one means.
WRITE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".npy": "NPY",
}

# Pillow's pixel limit is a module global; cnnkit applies its own limit (max_pixels) instead and
# switches Pillow's off while it opens a file. The lock keeps concurrent readers consistent.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    from PIL import Image

    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _default_max_pixels() -> int | None:
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def to_grayscale(image: object) -> np.ndarray:
    """Luma of an RGB or RGBA image, ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).

    Alpha is ignored; a 2-D image is returned as float unchanged.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float array.

    Examples
    --------
    >>> to_grayscale([[[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]).round(3).tolist()
    [[0.299, 1.0]]
    """
    array = as_float_array(image, "image", ndims=(2, 3))
    if array.ndim == 2:
        return array
    if array.shape[2] not in (3, 4):
        raise InvalidArgument(
            f"image must have 3 (RGB) or 4 (RGBA) channels to convert to gray, got shape "
            f"{array.shape}"
        )
    weights = np.asarray(LUMA_WEIGHTS, dtype=array.dtype)
    return array[:, :, :3] @ weights


def _plain(pil_image: object, *, reducing: bool = False) -> object:
    """Pillow image in a mode whose pixels cnnkit reads: palette becomes RGB(A), two-level gray
    8-bit gray, CMYK and other colour spaces RGB; with ``reducing``, 16-bit gray becomes 32-bit
    integers, which Pillow's ``reduce`` can average. Floating-point TIFF is refused."""
    mode = pil_image.mode
    if mode == "P":
        has_alpha = "transparency" in pil_image.info
        return pil_image.convert("RGBA" if has_alpha else "RGB")
    if mode == "PA":
        return pil_image.convert("RGBA")
    if mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return pil_image.convert("L" if mode == "1" else "RGB")
    if mode == "F":
        raise BadFile("floating-point TIFF images are not supported; save them as .npy")
    if reducing and mode.startswith("I;16"):
        return pil_image.convert("I")
    return pil_image


def _pixels_to_float(pil_image: object) -> np.ndarray:
    """Pillow image (of a mode :func:`_plain` returns) -> float64 in [0, 1]; 16-bit keeps its
    precision."""
    array = np.asarray(_plain(pil_image))
    if array.dtype == np.uint8:
        return array / 255.0
    if array.dtype.kind in "ui" and array.dtype.itemsize >= 2:
        # 16-bit grayscale ('I;16' or 'I' holding 0..65535).
        return array.astype(np.float64) / 65535.0
    raise BadFile(f"unsupported image mode {pil_image.mode!r} (pixel type {array.dtype})")


def _exif_turn(pil_image: object):
    """The turn (a Pillow ``Image.Transpose``) that the file's EXIF orientation asks for, or
    None, and whether it swaps rows and columns. The table is that of Pillow's
    ``ImageOps.exif_transpose``, which cnnkit does not call because it copies the whole image:
    here the turn comes after the image is reduced."""
    from PIL import ExifTags, Image

    turns = Image.Transpose
    turn = {2: turns.FLIP_LEFT_RIGHT, 3: turns.ROTATE_180, 4: turns.FLIP_TOP_BOTTOM,
            5: turns.TRANSPOSE, 6: turns.ROTATE_270, 7: turns.TRANSVERSE,
            8: turns.ROTATE_90}.get(pil_image.getexif().get(ExifTags.Base.Orientation, 1))
    swaps = turn in (turns.ROTATE_90, turns.ROTATE_270, turns.TRANSPOSE, turns.TRANSVERSE)
    return turn, swaps


def _pixel_bytes(mode: str) -> int:
    """Bytes Pillow keeps per pixel of ``mode`` (three-band RGB takes four)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


#: Bytes per sample of the floating-point steps of :func:`read_image`: the float64 array, a
#: converted copy (gray or RGB), the float32 plane of each channel and its float64 result.
_FLOAT_STEP_BYTES = 8 + 8 + 4 + 8


def _read_peak(rows: int, columns: int, mode: str, factors: tuple[int, int],
               size: tuple[int, int] | None) -> int:
    """Bytes :func:`read_image` needs at most for a ``columns x rows`` file of Pillow ``mode``.

    The decoded pixels in the file's own mode; one copy of them, at most four bytes a pixel
    (a palette or 16-bit gray converted, alpha premultiplied to be reduced, or the copy into
    numpy); and the floating-point steps, on the reduced image padded to the output's aspect ratio
    (or on the whole image when it is not resized).
    """
    decoded = rows * columns * _pixel_bytes(mode)
    # Reduced in its own mode, a gray or colour file needs no copy at its full size.
    copied = 0 if mode in ("L", "RGB", "I") and factors != (1, 1) else rows * columns * 4
    work_rows, work_columns = -(-rows // factors[0]), -(-columns // factors[1])
    if size is not None:
        padded = _padded_shape(work_rows, work_columns, *size)
        work = padded[0] * padded[1] + size[0] * size[1]
    else:
        work = work_rows * work_columns
    return decoded + copied + work * 4 * _FLOAT_STEP_BYTES


def pad_to_aspect(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` ``(H, W)`` or ``(H, W, C)`` padded to the aspect ratio ``rows:columns``.

    The padding goes evenly on both sides of the short axis (one more pixel after when the
    total is odd) and holds the image's background: the median of its border pixels, channel
    by channel. An image already of that aspect ratio is returned as it is.

    >>> pad_to_aspect(np.array([[0.0, 1.0, 0.0]]), 1, 1)
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]])
    """
    height, width = image.shape[:2]
    if height * columns == width * rows:
        return image
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
    background = np.median(border, axis=0)
    # The smallest padded size of the wanted aspect ratio that holds the image.
    new_height = max(height, -(-width * rows // columns))
    new_width = max(width, -(-height * columns // rows))
    top, left = (new_height - height) // 2, (new_width - width) // 2
    padded = np.empty((new_height, new_width, *image.shape[2:]), dtype=image.dtype)
    padded[...] = background
    padded[top:top + height, left:left + width] = image
    return padded


#: An image more than this many times larger than its output (in both axes) is first shrunk
#: by a whole factor, averaging boxes of pixels (Pillow's ``reduce``), and only then padded and
#: resized; so the memory of the resize follows the output, not the input. 3 keeps the result
#: indistinguishable from a direct antialiased resize (Pillow's ``reducing_gap``).
REDUCING_GAP = 3.0


def _padded_shape(height: int, width: int, rows: int, columns: int) -> tuple[int, int]:
    """The smallest shape of the aspect ratio ``rows:columns`` that holds ``height x width``."""
    return max(height, -(-width * rows // columns)), max(width, -(-height * columns // rows))


def reduce_factors(shape: tuple[int, int], size: tuple[int, int], *,
                   fit: str = "stretch") -> tuple[int, int]:
    """The whole factors ``(rows, columns)`` by which an image of ``shape`` is box-averaged
    before it is resized to ``size``: each is the largest that leaves at least
    :data:`REDUCING_GAP` times the output's pixels. With ``fit='pad'`` both axes share one
    factor, so that the aspect ratio (and the padding) stays as it was.

    >>> reduce_factors((1, 20000), (28, 28), fit="pad")
    (238, 238)
    >>> reduce_factors((600, 90), (28, 28))
    (7, 1)
    """
    (height, width), (rows, columns) = shape, size
    if fit == "pad":
        padded_height, padded_width = _padded_shape(height, width, rows, columns)
        factor = max(1, int(min(padded_height / rows, padded_width / columns) / REDUCING_GAP))
        return factor, factor
    return (max(1, int(height / rows / REDUCING_GAP)),
            max(1, int(width / columns / REDUCING_GAP)))


def resize(image: np.ndarray, size: tuple[int, int], *, fit: str = "stretch") -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, C)`` floats in [0, 1] to ``size = (rows, columns)``.

    Each channel goes through Pillow's antialiased bilinear filter, in 32-bit float; an image
    many times larger than ``size`` is box-averaged by a whole factor first
    (:func:`reduce_factors`). ``fit='pad'`` keeps the aspect ratio: the (reduced) image is
    padded with its background (:func:`pad_to_aspect`) before the resize; ``'stretch'``
    squashes it to the size. A feature thinner than a pixel of the reduced image (one row of a
    1x20000 strip) keeps the width of one reduced pixel, so it stays visible.
    """
    from PIL import Image

    check_choice(fit, "fit", FIT_MODES)
    rows, columns = size
    factors = reduce_factors(image.shape[:2], size, fit=fit)
    if factors != (1, 1):
        image = _planes(image, lambda plane: plane.reduce(factors[::-1]))
    if fit == "pad":
        image = pad_to_aspect(image, rows, columns)
    resized = _planes(image, lambda plane: plane.resize((columns, rows),
                                                        Image.Resampling.BILINEAR))
    return np.clip(resized, 0.0, 1.0)


def _planes(image: np.ndarray, operation) -> np.ndarray:
    """``operation`` applied to each channel of ``image`` as a 32-bit float Pillow image."""
    from PIL import Image

    planes = image[:, :, None] if image.ndim == 2 else image
    result = np.stack([
        np.asarray(operation(Image.fromarray(planes[:, :, c].astype(np.float32))),
                   dtype=np.float64)
        for c in range(planes.shape[2])
    ], axis=-1)
    return result[:, :, 0] if image.ndim == 2 else result


#: Channels of the array :func:`read_image` returns with color='keep', by Pillow mode ('PA'
#: also stands for a palette with transparency).
_KEEP_CHANNELS = {"L": 1, "1": 1, "I;16": 1, "I": 1, "I;16B": 1, "LA": 2, "PA": 4, "RGBA": 4}


def _header(path: str | os.PathLike) -> ImageHeader:
    """The size (before any EXIF rotation) and Pillow mode a file declares, read from its
    header alone; a palette file with transparency is reported as mode ``'PA'``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"image file {str(path)!r} does not exist")
    with _pillow_limit_off():
        try:
            with Image.open(path, formats=READ_FORMATS) as pil_image:
                (columns, rows), mode = pil_image.size, pil_image.mode
                if mode == "P" and "transparency" in pil_image.info:
                    mode = "PA"
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError):
            raise InvalidArgument(
                f"{str(path)!r} is not an image file that cnnkit can read "
                f"(readable: {', '.join(READ_FORMATS)})"
            ) from None
    return ImageHeader(rows, columns, mode)


def image_shape(path: str | os.PathLike, *, color: str = "keep") -> tuple[int, ...]:
    """The shape :func:`read_image` would return, read from the file's header alone.

    Nothing is decoded, so a caller can budget memory before reading. EXIF rotation may swap
    the first two numbers; their product is right either way.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "gray.png"
    >>> image_shape(write_image(path, np.zeros((2, 3))), color="rgb")
    (2, 3, 3)
    """
    check_choice(color, "color", COLOR_MODES)
    header = _header(path)
    channels = {"gray": 1, "rgb": 3}.get(color) or _KEEP_CHANNELS.get(header.mode, 3)
    shape = (header.rows, header.columns)
    return shape if channels == 1 else (*shape, channels)


def image_memory(path: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
                 fit: str = "stretch") -> int:
    """Bytes that :func:`read_image` with ``size`` and ``fit`` would need at most for the file,
    estimated from its header alone (the estimate it checks before decoding).

    >>> import tempfile, pathlib
    >>> path = write_image(pathlib.Path(tempfile.mkdtemp()) / "strip.png", np.zeros((1, 20000)))
    >>> image_memory(path, size=28, fit="pad") < 2**20
    True
    """
    target = None if size is None else int_tuple(size, "size", 2, minimum=1)
    check_choice(fit, "fit", FIT_MODES)
    header = _header(path)
    shape = (header.rows, header.columns)
    factors = (1, 1) if target is None else reduce_factors(shape, target, fit=fit)
    return _read_peak(*shape, header.mode, factors, target)


def read_image(
    path: str | os.PathLike,
    *,
    color: str = "keep",
    size: int | tuple[int, int] | None = None,
    max_pixels: int | None = None,
    draft: bool = False,
    fit: str = "stretch",
    with_header: bool = False,
) -> np.ndarray | tuple[np.ndarray, ImageHeader]:
    """Read an image file into a float64 array with values in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG, BMP, TIFF, GIF (first frame) or WebP file.
    color : {'keep', 'gray', 'rgb'}
        'keep': grayscale files give ``(H, W)``, colour files ``(H, W, 3)``, with alpha
        ``(H, W, 4)`` (grayscale with alpha ``(H, W, 2)``); palette files become RGB or RGBA.
        'gray': ``(H, W)`` luma with the ITU-R BT.601 weights (see :func:`to_grayscale`).
        'rgb': ``(H, W, 3)``, alpha dropped, gray repeated.
    size : int or (int, int), optional
        Resize to ``(rows, columns)`` (an int gives a square) with Pillow's antialiased
        bilinear filter, after the EXIF rotation.
    max_pixels : int, optional
        Refuse images with more pixels than this, a guard against decompression bombs;
        default Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 89 million).
    draft : bool
        With ``size``, let the JPEG decoder scale a large file down by 1/2, 1/4 or 1/8 while
        it decodes (Pillow's ``draft`` mode), keeping at least ``max(size)`` pixels on each side
        so that the final resize still only shrinks. Several times faster for photos much
        larger than ``size``; the pixels differ slightly from a full decode followed by the
        resize. Other formats ignore it.
    fit : {'stretch', 'pad'}
        With ``size``: squash the image to it, or keep its aspect ratio by padding it with its
        background first (see :func:`resize`).
    with_header : bool
        Also return the file's :class:`ImageHeader`, so that a caller learns the original size
        and mode without opening the file again.

    Returns
    -------
    numpy.ndarray
        float64, 8-bit files divided by 255, 16-bit by 65535; with ``with_header`` the pair
        ``(array, header)``.

    Raises
    ------
    cnnkit.errors.NotFound
        The file does not exist.
    cnnkit.errors.BadFile
        Not an image, truncated or corrupt.
    cnnkit.errors.TooLarge
        More pixels than ``max_pixels``, or more memory than the machine can give.
    cnnkit.errors.InvalidArgument
        A bad argument.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(folder / "ramp.png", np.linspace(0, 1, 6).reshape(2, 3))
    PosixPath('...ramp.png')
    >>> read_image(folder / "ramp.png").round(2).tolist()
    [[0.0, 0.2, 0.4], [0.6, 0.8, 1.0]]
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_choice(color, "color", COLOR_MODES)
    target = None if size is None else int_tuple(size, "size", 2, minimum=1)
    check_choice(fit, "fit", FIT_MODES)
    limit = _default_max_pixels() if max_pixels is None else check_int(
        max_pixels, "max_pixels", minimum=1
    )
    if not path.exists():
        raise NotFound(f"image file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsAFolder(f"{str(path)!r} is a folder, not an image file")

    corrupt = f"{str(path)!r} is truncated or corrupt and cannot be decoded"
    with _pillow_limit_off(), warnings.catch_warnings():
        # Pillow warns about damaged metadata (EXIF blocks, TIFF tags) that it skips; whether
        # the file is usable is decided by decoding its pixels below.
        warnings.simplefilter("ignore", UserWarning)
        try:
            pil_image = Image.open(path, formats=READ_FORMATS)
        except UnidentifiedImageError:
            raise BadFile(
                f"{str(path)!r} is not an image file that cnnkit can read "
                f"(readable: {', '.join(READ_FORMATS)})"
            ) from None
        except PermissionError:
            raise
        except (OSError, SyntaxError, EOFError, ValueError) as exc:
            raise BadFile(f"{corrupt} ({exc})") from None
        with pil_image:
            columns, rows = pil_image.size
            full_size, mode = (rows, columns), pil_image.mode
            if limit is not None and rows * columns > limit:
                raise TooLarge(
                    f"{str(path)!r} has {columns}x{rows} = {rows * columns} pixels, more than "
                    f"the limit of {limit} that guards against decompression bombs; if you "
                    f"trust the file, raise it with max_pixels={rows * columns} "
                    f"(command line: --max-pixels {rows * columns})"
                )
            if draft and target is not None and pil_image.format == "JPEG":
                # Square request: the EXIF rotation below may swap rows and columns.
                side = max(target)
                pil_image.draft(None, (side, side))
                columns, rows = pil_image.size
            factors = (1, 1) if target is None else reduce_factors((rows, columns), target,
                                                                   fit=fit)
            check_memory(_read_peak(rows, columns, pil_image.mode, factors, target),
                         f"reading {str(path)!r} ({columns}x{rows})")
            try:
                pil_image.load()
                turn, turned = _exif_turn(pil_image)
            except (OSError, SyntaxError, EOFError, ValueError) as exc:
                raise BadFile(f"{corrupt} ({exc})") from None
            if turned:  # EXIF rotation by 90 or 270 degrees
                full_size = full_size[::-1]
                factors = reduce_factors(full_size, target, fit=fit) if target else factors
            plain = _plain(pil_image, reducing=factors != (1, 1))
            if factors != (1, 1):
                # Shrink by whole factors in the file's own pixels (few bytes each) before
                # anything is converted to floating point.
                plain = plain.reduce(factors if turned else factors[::-1])
            if turn is not None:
                plain = plain.transpose(turn)
            array = _pixels_to_float(plain)

    if color == "gray" and array.ndim == 3:
        # RGB(A) to luma; gray + alpha keeps the gray.
        array = to_grayscale(array) if array.shape[2] >= 3 else array[:, :, 0]
    elif color == "rgb":
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.shape[2] == 2:
            array = np.repeat(array[:, :, :1], 3, axis=2)
        else:
            array = array[:, :, :3]
    if target is not None:
        array = resize(array, target, fit=fit)
    array = np.ascontiguousarray(array)
    return (array, ImageHeader(*full_size, mode)) if with_header else array


def _to_integer_pixels(array: np.ndarray, bit_depth: int) -> np.ndarray:
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise InvalidArgument(
                "image values must lie in [0, 1] to be written as pixels, got range "
                f"[{array.min()}, {array.max()}]; convert a filter result with "
                "cnnkit.imageio.to_uint8 first, or write .npy to keep the exact values"
            )
        peak = 255 if bit_depth == 8 else 65535
        return np.rint(array * peak).astype(np.uint8 if bit_depth == 8 else np.uint16)
    peak = 255 if bit_depth == 8 else 65535
    if array.dtype.kind == "b":
        return array.astype(np.uint8 if bit_depth == 8 else np.uint16) * peak
    if array.min() < 0 or array.max() > peak:
        raise InvalidArgument(
            f"integer pixel values must lie in [0, {peak}] for {bit_depth}-bit output, got "
            f"range [{array.min()}, {array.max()}]"
        )
    return array.astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_image(
    path: str | os.PathLike,
    image: object,
    *,
    bit_depth: int | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write an image file, atomically; the format follows the suffix.

    Parameters
    ----------
    path : str or os.PathLike
        ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` or ``.npy``. The folder must exist.
    image : array_like
        ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (``(H, W, 2)`` gray + alpha for
        PNG). Floats must lie in [0, 1] and are rounded to the bit depth; uint8 and uint16 are
        written as they are. For ``.npy`` any real array is saved exactly.
    bit_depth : {8, 16}, optional
        Default 16 for uint16 input, else 8. 16 bits are possible for grayscale PNG and TIFF.
    overwrite : bool
        Replace an existing file.
    quality : int
        JPEG quality, 1 to 95.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(folder / "half.npy", np.full((2, 2), 0.5)).name
    'half.npy'
    """
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InvalidArgument(
            f"output file {str(path)!r} must end in one of {', '.join(WRITE_SUFFIXES)}, "
            f"got {suffix or 'no suffix'!r}"
        )
    file_format = WRITE_SUFFIXES[suffix]
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise InvalidType(f"image must hold real numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise InvalidArgument(f"image must not be empty, got shape {array.shape}")
    if file_format == "NPY":
        return atomic_write(
            path, lambda tmp: np.save(tmp, array, allow_pickle=False), overwrite=overwrite
        )

    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise InvalidArgument(
            "image must be (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) to be written as "
            f"{file_format}, got shape {array.shape}"
        )
    default_depth = 16 if array.dtype == np.uint16 else 8
    bit_depth = default_depth if bit_depth is None else bit_depth
    if bit_depth not in (8, 16):
        raise InvalidArgument(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and (array.ndim == 3 or file_format == "JPEG"):
        raise InvalidArgument(
            "16-bit output is possible for grayscale PNG and TIFF only, got "
            f"shape {array.shape} for {file_format}"
        )
    if file_format == "JPEG" and array.ndim == 3 and array.shape[2] in (2, 4):
        raise InvalidArgument(
            f"JPEG cannot store transparency, got shape {array.shape}; drop the alpha channel "
            "or write PNG"
        )
    if file_format == "TIFF" and array.ndim == 3 and array.shape[2] == 2:
        raise InvalidArgument("gray + alpha images can be written as PNG only")
    quality = check_int(quality, "quality", minimum=1)
    if quality > 95:
        raise InvalidArgument(f"quality must be from 1 to 95, got {quality}")
    pixels = _to_integer_pixels(array, bit_depth)
    # Pillow infers the mode from the array: L, LA, RGB, RGBA, or I;16 for 2-D uint16.
    pil_image = Image.fromarray(pixels)
    options = {"quality": quality} if file_format == "JPEG" else {}
    return atomic_write(
        path,
        lambda tmp: pil_image.save(tmp, format=file_format, **options),
        overwrite=overwrite,
    )


#: Values converted at a time by :func:`to_uint8`, which bounds its temporary memory.
_UINT8_BLOCK = 2**20


def to_uint8(image: object, method: str = "rescale") -> np.ndarray:
    """Turn a float image (a filter's output) into displayable 8-bit values.

    Parameters
    ----------
    image : array_like
        Any real array; values must be finite.
    method : {'rescale', 'clip', 'abs'}
        ``'rescale'`` maps the smallest value to 0 and the largest to 255 (a constant image
        is clipped instead, as there is nothing to stretch); ``'clip'`` treats values as
        brightness in [0, 1], cutting off what lies outside; ``'abs'`` maps ``|value|`` from 0
        to its maximum onto 0..255 (edge strength regardless of sign).

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape, rounded to the nearest integer. The conversion runs in
        blocks, so that it needs little memory beyond the result.

    Examples
    --------
    >>> to_uint8([[-4.0, 0.0, 4.0]]).tolist()
    [[0, 128, 255]]
    >>> to_uint8([[-0.5, 0.5, 2.0]], "clip").tolist()
    [[0, 128, 255]]
    >>> to_uint8([[-4.0, 0.0, 2.0]], "abs").tolist()
    [[255, 0, 128]]
    """
    array = as_float_array(image, "image", ndims=range(1, 8))
    check_choice(method, "method", TO_UINT8_METHODS)
    flat = array.reshape(-1)
    low, high = float(flat.min()), float(flat.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(flat)))
        raise InvalidArgument(
            f"image holds {bad} NaN or infinite values; cannot map them to 0..255"
        )
    peak = max(abs(low), abs(high))
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, _UINT8_BLOCK):
        block = flat[start : start + _UINT8_BLOCK].astype(np.float64)
        if method == "abs":
            unit = np.abs(block)
            if peak > 0:
                unit /= peak
        elif method == "rescale" and high > low:
            unit = block - low
            unit /= high - low
        else:
            unit = np.clip(block, 0.0, 1.0)
        unit *= 255.0
        out[start : start + _UINT8_BLOCK] = np.rint(unit, out=unit)
    return out.reshape(array.shape)
