"""Image files: round trips for every format and bit depth, and every refusal, on files the
tests generate with Pillow (and OpenCV for a 16-bit colour PNG)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from cnnkit._files import atomic_write
from cnnkit.imageio import read_image, to_grayscale, write_image


@pytest.fixture
def rng():
    return np.random.default_rng(20)


def pixels(rng, shape, dtype=np.uint8):
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def pillow_pixels(path, mode=None):
    """The pixels Pillow itself decodes (optionally converted), the file closed afterwards."""
    with Image.open(path) as image:
        return np.asarray(image if mode is None else image.convert(mode))


def pillow_mode(path):
    with Image.open(path) as image:
        return image.mode


def save_with_pillow(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return path


# --- Lossless round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "shape"),
    [
        (suffix, shape)
        for suffix in (".png", ".bmp", ".tif", ".webp")
        for shape in ((7, 9), (7, 9, 3), (7, 9, 4))
        if not (suffix == ".bmp" and shape == (7, 9, 4))  # BMP has no standard alpha
    ],
)
def test_lossless_8bit_files_read_exactly(tmp_path, rng, suffix, shape):
    """8-bit gray, RGB and RGBA read back as value/255 for PNG, BMP, TIFF and lossless WebP."""
    array = pixels(rng, shape)
    options = {"lossless": True} if suffix == ".webp" else {}
    if suffix == ".webp" and len(shape) == 2:
        # WebP stores colour only; a gray image comes back as three equal channels.
        path = save_with_pillow(tmp_path / f"image{suffix}", array, **options)
        # The ITU-R 601 weights sum to 1 up to rounding.
        np.testing.assert_allclose(read_image(path, color="gray"), array / 255.0, rtol=1e-15)
        return
    path = save_with_pillow(tmp_path / f"image{suffix}", array, **options)
    np.testing.assert_array_equal(read_image(path), array / 255.0)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_files_keep_16_bits(tmp_path, rng, suffix):
    """16-bit grayscale PNG and TIFF read back as value/65535, not truncated to 8 bits."""
    array = pixels(rng, (6, 5), np.uint16)
    path = save_with_pillow(tmp_path / f"deep{suffix}", array)
    assert pillow_mode(path) == "I;16"
    np.testing.assert_array_equal(read_image(path), array / 65535.0)


def test_16bit_colour_png_reads_at_8_bit_precision(tmp_path, rng):
    """Pillow reduces 16-bit colour PNG to 8 bits: values are within 1/255 of the truth."""
    array = pixels(rng, (6, 5, 3), np.uint16)
    path = tmp_path / "deep-colour.png"
    cv2.imwrite(str(path), array[:, :, ::-1])  # OpenCV writes BGR
    result = read_image(path)
    assert result.shape == (6, 5, 3)
    np.testing.assert_allclose(result, array / 65535.0, atol=1 / 255)


def test_palette_files_become_rgb_or_rgba(tmp_path, rng):
    """Palette PNGs read as Pillow's RGB conversion, or RGBA when the palette has transparency."""
    rgb = pixels(rng, (8, 8, 3))
    palette_image = Image.fromarray(rgb).quantize(colors=16)
    palette_image.save(tmp_path / "palette.png")
    expected = np.asarray(palette_image.convert("RGB")) / 255.0
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), expected)
    palette_image.info["transparency"] = 0
    palette_image.save(tmp_path / "transparent.png", transparency=0)
    result = read_image(tmp_path / "transparent.png")
    expected = pillow_pixels(tmp_path / "transparent.png", "RGBA") / 255.0
    assert result.shape == (8, 8, 4)
    np.testing.assert_array_equal(result, expected)


def test_gray_with_alpha_keeps_two_channels(tmp_path, rng):
    """An LA PNG reads as (H, W, 2); 'gray' keeps the gray, 'rgb' repeats it."""
    array = pixels(rng, (5, 4, 2))
    path = save_with_pillow(tmp_path / "la.png", array)
    np.testing.assert_array_equal(read_image(path), array / 255.0)
    np.testing.assert_array_equal(read_image(path, color="gray"), array[:, :, 0] / 255.0)
    rgb = read_image(path, color="rgb")
    assert rgb.shape == (5, 4, 3)
    np.testing.assert_array_equal(rgb[:, :, 2], array[:, :, 0] / 255.0)


def test_gif_reads_the_first_frame(tmp_path, rng):
    """Of an animated GIF, the first frame is read."""
    frames = [Image.fromarray(pixels(rng, (6, 6, 3))).quantize(colors=8) for _ in range(3)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        expected = np.asarray(gif.convert("RGB")) / 255.0
    np.testing.assert_array_equal(read_image(path), expected)


@pytest.mark.parametrize("shape", [(16, 12), (16, 12, 3)])
def test_jpeg_reads_what_pillow_decodes(tmp_path, rng, shape):
    """A JPEG reads as Pillow's own decoding / 255 and stays close to the original."""
    array = np.clip(128 + rng.normal(0, 10, size=shape), 0, 255).astype(np.uint8)
    path = save_with_pillow(tmp_path / "photo.jpg", array, quality=95)
    result = read_image(path)
    np.testing.assert_array_equal(result, pillow_pixels(path) / 255.0)
    assert np.abs(result - array / 255.0).mean() < 0.03


# --- EXIF orientation, grayscale, resize -------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "display"),
    [
        (1, lambda a: a),
        (2, np.fliplr),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, rng, orientation, display):
    """The EXIF orientation tag rotates/mirrors the stored pixels into display order."""
    stored = pixels(rng, (4, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "oriented.png"
    Image.fromarray(stored).save(path, exif=exif)
    np.testing.assert_array_equal(read_image(path), display(stored) / 255.0)


def test_grayscale_uses_itu_601_weights(tmp_path, rng):
    """'gray' is 0.299 R + 0.587 G + 0.114 B: equal to OpenCV's float conversion, and within
    rounding of Pillow's 8-bit 'L'."""
    rgb = pixels(rng, (9, 7, 3))
    path = save_with_pillow(tmp_path / "colour.png", rgb)
    gray = read_image(path, color="gray")
    expected = cv2.cvtColor((rgb / 255.0).astype(np.float32), cv2.COLOR_RGB2GRAY)
    np.testing.assert_allclose(gray, expected, atol=1e-6)
    pillow_gray = pillow_pixels(path, "L").astype(float)
    assert np.abs(gray * 255 - pillow_gray).max() <= 0.5 + 1e-9


def test_to_grayscale_refuses_two_channels():
    """to_grayscale needs RGB or RGBA."""
    with pytest.raises(ValueError, match="3 \\(RGB\\) or 4 \\(RGBA\\)"):
        to_grayscale(np.zeros((2, 2, 2)))


def test_rgb_mode_repeats_gray_and_drops_alpha(tmp_path, rng):
    """'rgb' gives three channels from gray and from RGBA."""
    gray = pixels(rng, (3, 4))
    rgba = pixels(rng, (3, 4, 4))
    gray_path = save_with_pillow(tmp_path / "g.png", gray)
    rgba_path = save_with_pillow(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(gray_path, color="rgb"),
                                  np.repeat(gray[:, :, None], 3, axis=2) / 255.0)
    np.testing.assert_array_equal(read_image(rgba_path, color="rgb"), rgba[:, :, :3] / 255.0)


def test_resize_gives_the_requested_shape_and_keeps_flat_regions(tmp_path):
    """size=(rows, columns) resizes after reading; a constant image stays constant."""
    path = save_with_pillow(tmp_path / "flat.png", np.full((40, 30, 3), 200, dtype=np.uint8))
    result = read_image(path, size=(10, 12))
    assert result.shape == (10, 12, 3)
    np.testing.assert_allclose(result, 200 / 255.0, atol=1e-6)
    assert read_image(path, color="gray", size=16).shape == (16, 16)


# --- Read refusals -----------------------------------------------------------------------------


def test_missing_file_is_refused(tmp_path):
    """A missing file is a FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match=r"nothing\.png.*does not exist"):
        read_image(tmp_path / "nothing.png")


def test_folder_is_refused(tmp_path):
    """A folder is not an image."""
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_image(tmp_path)


def test_non_image_file_is_refused(tmp_path):
    """A text file is refused as not an image, listing the readable formats."""
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels")
    with pytest.raises(ValueError, match=r"not an image file.*PNG, JPEG"):
        read_image(path)


def test_unsupported_format_is_refused(tmp_path, rng):
    """Formats outside the list (here PPM) are refused even though Pillow knows them."""
    path = save_with_pillow(tmp_path / "image.ppm", pixels(rng, (4, 4, 3)))
    with pytest.raises(ValueError, match="not an image file"):
        read_image(path)


@pytest.mark.parametrize(("suffix", "keep"), [(".png", 0.5), (".jpg", 0.5), (".bmp", 0.6)])
def test_truncated_file_is_refused(tmp_path, rng, suffix, keep):
    """A file cut short is refused as truncated or corrupt."""
    full = save_with_pillow(tmp_path / f"full{suffix}", pixels(rng, (64, 64, 3)))
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_image(cut)


def test_corrupt_png_data_is_refused(tmp_path, rng):
    """A PNG whose compressed data is overwritten is refused."""
    path = save_with_pillow(tmp_path / "broken.png", pixels(rng, (32, 32)))
    data = bytearray(path.read_bytes())
    data[60:120] = bytes(60)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_image(path)


def test_decompression_bomb_is_refused_with_the_way_to_raise_the_limit(tmp_path):
    """Too many pixels: the message names the count, the limit and how to raise it."""
    path = save_with_pillow(tmp_path / "big.png", np.zeros((100, 120), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"12000 pixels.*limit of 5000.*max_pixels=12000"
                                         r".*--max-pixels 12000"):
        read_image(path, max_pixels=5000)
    assert read_image(path, max_pixels=12000).shape == (100, 120)


def test_default_limit_is_pillows_and_can_be_raised_beyond_it(tmp_path, monkeypatch):
    """Without max_pixels, Pillow's MAX_IMAGE_PIXELS applies; an explicit larger limit reads
    images Pillow itself would refuse, and Pillow's setting is left as it was."""
    path = save_with_pillow(tmp_path / "big.png", np.zeros((100, 120), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="limit of 1000"):
        read_image(path)
    assert read_image(path, max_pixels=10**6).shape == (100, 120)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"color": "bgr"}, ValueError, "color must be one of"),
        ({"size": 0}, ValueError, "size"),
        ({"size": (2, 3, 4)}, ValueError, "size"),
        ({"max_pixels": 0}, ValueError, "max_pixels"),
        ({"max_pixels": 1.5}, TypeError, "max_pixels"),
    ],
)
def test_read_refuses_bad_arguments(tmp_path, kwargs, error, match):
    """Bad read options are refused before the file is opened."""
    path = save_with_pillow(tmp_path / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(error, match=match):
        read_image(path, **kwargs)


# --- Writing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 3), (5, 6, 4)])
def test_write_float_image_rounds_to_8_bits(tmp_path, rng, suffix, shape):
    """Floats in [0, 1] are written as round(255 x) and read back as that / 255."""
    image = rng.random(shape)
    path = write_image(tmp_path / f"out{suffix}", image)
    np.testing.assert_array_equal(read_image(path), np.rint(image * 255) / 255)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_write_16_bit_gray(tmp_path, rng, suffix):
    """uint16 input, or floats with bit_depth=16, give 16-bit files read back exactly."""
    deep = pixels(rng, (5, 6), np.uint16)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / f"a{suffix}", deep)),
                                  deep / 65535.0)
    image = rng.random((5, 6))
    path = write_image(tmp_path / f"b{suffix}", image, bit_depth=16)
    assert pillow_mode(path) == "I;16"
    np.testing.assert_array_equal(read_image(path), np.rint(image * 65535) / 65535)


def test_write_uint8_and_gray_alpha_png_exactly(tmp_path, rng):
    """uint8 values are written unchanged, including gray + alpha PNG."""
    for shape in ((4, 4), (4, 4, 2), (4, 4, 3), (4, 4, 4)):
        array = pixels(rng, shape)
        path = write_image(tmp_path / f"u{len(shape)}{shape[-1]}.png", array)
        np.testing.assert_array_equal(pillow_pixels(path), array)


@pytest.mark.parametrize(("bit_depth", "scale"), [(8, 255), (16, 65535)])
def test_write_boolean_mask_as_black_and_white(tmp_path, rng, bit_depth, scale):
    """A boolean mask is written as 0 and the bit depth's white."""
    mask = rng.random((5, 6)) > 0.5
    path = write_image(tmp_path / "mask.png", mask, bit_depth=bit_depth)
    np.testing.assert_array_equal(pillow_pixels(path), mask * scale)


def test_write_jpeg_is_close(tmp_path):
    """JPEG output of a smooth colour image at quality 95 is close to the input."""
    ramp = np.linspace(0.1, 0.9, 16)
    image = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (16, 1)),
                      np.tile(ramp[::-1, None], (1, 16))], axis=-1)
    path = write_image(tmp_path / "photo.jpeg", image)
    with Image.open(path) as written:
        assert written.format == "JPEG"
    assert np.abs(read_image(path) - image).mean() < 0.01


def test_write_npy_keeps_exact_values(tmp_path, rng):
    """.npy keeps any real array exactly, negative and large values included."""
    result = rng.standard_normal((5, 7, 3)) * 100
    path = write_image(tmp_path / "result.npy", result)
    np.testing.assert_array_equal(np.load(path), result)


def test_write_refuses_existing_file_unless_overwrite(tmp_path):
    """An existing output is kept unless overwrite=True."""
    path = tmp_path / "keep.png"
    write_image(path, np.zeros((2, 2)))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"already exists.*--overwrite"):
        write_image(path, np.ones((2, 2)))
    assert path.read_bytes() == before
    write_image(path, np.ones((2, 2)), overwrite=True)
    np.testing.assert_array_equal(read_image(path), np.ones((2, 2)))


def test_write_refuses_missing_folder(tmp_path):
    """The output's folder must exist."""
    with pytest.raises(FileNotFoundError, match=r"folder.*does not exist"):
        write_image(tmp_path / "absent" / "out.png", np.zeros((2, 2)))


def test_failed_write_leaves_nothing_behind(tmp_path):
    """A writer that fails leaves neither a temporary file nor a changed target."""
    target = tmp_path / "target.txt"
    target.write_text("original")

    def failing_writer(temporary):
        temporary.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing_writer, overwrite=True)
    assert target.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.txt"]


@pytest.mark.parametrize(
    ("name", "image", "kwargs", "error", "match"),
    [
        ("out.gif", np.zeros((2, 2)), {}, ValueError, "must end in one of"),
        ("out", np.zeros((2, 2)), {}, ValueError, "no suffix"),
        ("out.png", np.full((2, 2), 1.5), {}, ValueError, r"lie in \[0, 1\].*to_uint8"),
        ("out.png", np.full((2, 2), -0.1), {}, ValueError, r"lie in \[0, 1\]"),
        ("out.png", np.full((2, 2), np.nan), {}, ValueError, r"lie in \[0, 1\]"),
        ("out.png", np.full((2, 2), 300), {}, ValueError, r"\[0, 255\]"),
        ("out.jpg", np.zeros((2, 2, 4)), {}, ValueError, "JPEG cannot store transparency"),
        ("out.png", np.zeros((2, 2, 3)), {"bit_depth": 16}, ValueError, "grayscale PNG and TIFF"),
        ("out.jpg", np.zeros((2, 2)), {"bit_depth": 16}, ValueError, "grayscale PNG and TIFF"),
        ("out.png", np.zeros((2, 2)), {"bit_depth": 12}, ValueError, "bit_depth must be 8 or 16"),
        ("out.jpg", np.zeros((2, 2)), {"quality": 0}, ValueError, "quality"),
        ("out.jpg", np.zeros((2, 2)), {"quality": 100}, ValueError, "quality"),
        ("out.png", np.zeros((2, 2, 5)), {}, ValueError, "got shape"),
        ("out.png", np.zeros(4), {}, ValueError, "got shape"),
        ("out.tif", np.zeros((2, 2, 2)), {}, ValueError, "PNG only"),
        ("out.png", np.zeros((0, 2)), {}, ValueError, "must not be empty"),
        ("out.png", np.zeros((2, 2), dtype=complex), {}, TypeError, "real numbers"),
    ],
)
def test_write_refuses_bad_input(tmp_path, name, image, kwargs, error, match):
    """Each unwritable combination is refused with its own message, and nothing is written."""
    with pytest.raises(error, match=match):
        write_image(tmp_path / name, image, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("file_format", "options"),
    [("PNG", {}), ("JPEG", {}), ("BMP", {}), ("TIFF", {}), ("GIF", {}), ("WEBP", {}),
     ("TIFF", {"compression": "tiff_deflate"})],
)
def test_damaged_files_give_an_image_or_a_value_error(tmp_path, file_format, options):
    """Files with random bytes changed or cut off either still decode or are refused with
    ValueError: no other exception type and no warning escapes (warnings are errors here)."""
    rng = np.random.default_rng(31)
    buffer = io.BytesIO()
    Image.fromarray(pixels(rng, (24, 30, 3))).save(buffer, format=file_format, **options)
    original = buffer.getvalue()
    path = tmp_path / f"damaged.{file_format.lower()}"
    refused = 0
    for trial in range(40):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=rng.integers(1, 6)):
            data[position] = rng.integers(0, 256)
        if trial % 3 == 0:
            data = data[: rng.integers(1, len(data))]
        path.write_bytes(bytes(data))
        try:
            assert read_image(path).ndim in (2, 3)
        except ValueError:
            refused += 1
    assert refused > 0


def test_padding_a_thin_strip_needs_memory_of_the_output_not_a_huge_square():
    """A 1x20000 strip fitted to 28x28 by padding is shrunk before it is padded (it used to
    become a 20000x20000 square, 3 GB of float64), and still shows the strip, centred."""
    import tracemalloc

    from cnnkit.imageio import resize

    strip = np.zeros((1, 20000))
    strip[0, 8000:12000] = 1.0  # a bright middle on a dark background
    tracemalloc.start()
    try:
        result = resize(strip, (28, 28), fit="pad")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    assert result.shape == (28, 28)
    # one row among 20000/28: faint, but in the middle rows and columns only
    assert result[13:15, 12:16].min() > 0.005 and result[13:15, :3].max() == 0.0
    assert result[0].max() == 0.0 and result[-1].max() == 0.0
