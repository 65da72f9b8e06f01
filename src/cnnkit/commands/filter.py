"""``cnnkit filter``: apply a kernel to an image file (or a built-in sample) and save the result."""

from __future__ import annotations

import argparse

import numpy as np

from cnnkit._files import open_regular
from cnnkit.errors import InvalidArgument

EXAMPLE = """examples:
  cnnkit filter photo.jpg --kernel sobel-x -o edges.png
  cnnkit filter photo.jpg --kernel gaussian:sigma=2 -o blurred.png
  cnnkit filter --sample grid --kernel "[[-1,0,1],[-2,0,2],[-1,0,1]]" --convolve -o out.npy
  cnnkit filter --sample grid --kernel box:size=5 --padding valid -o inside.npy

--padding says how much border the kernel may use: same (the default) keeps the image's size,
full gives every position where the kernel overlaps the image (k - 1 more rows and columns),
valid only those where it lies wholly inside (k - 1 fewer), and a number P pads P on each
side. --padding-mode says what the border holds (reflect, the default, mirrors the image;
zeros is what the tutorial's formulas use).

kernels: a name (sobel-x, sobel-y, scharr-x, scharr-y, prewitt-x, prewitt-y, laplacian,
gaussian, box, binomial, sharpen, emboss, identity) with optional parameters after ':'
(gaussian:sigma=2,radius=5  sobel-x:size=5  box:size=7  laplacian:neighbours=8),
a nested list "[[...]]", rows "1,2,1; 2,4,2; 1,2,1", or a .npy/.csv/.txt file.

A .npy output keeps the exact floating-point result. Image outputs are 8-bit: with
--display auto, results within [0, 1] (blurs) are kept as they are and others (edges) are
rescaled from their smallest to their largest value; the choice is printed."""


def add_input_arguments(
    parser: argparse.ArgumentParser, *, image_required: bool, always_gray: bool = False
) -> None:
    """IMAGE or --sample, plus the reading options; shared with ``cnnkit edges``, which reads
    every image in gray (``always_gray``)."""
    from cnnkit.filters import SAMPLE_NAMES

    parser.add_argument(
        "image", nargs="?", metavar="IMAGE",
        help="PNG, JPEG, BMP, TIFF, GIF or WebP file"
        + ("" if image_required else " (default: the built-in grid sample)"),
    )
    parser.add_argument(
        "--sample", choices=SAMPLE_NAMES,
        help="use a built-in generated image instead of a file (default: "
        + ("none, give IMAGE" if image_required else "grid, when no IMAGE is given") + ")",
    )
    parser.add_argument(
        "--gray", action="store_true",
        help="convert to grayscale first"
        + (" (always done here)" if always_gray else "; default: colour filtered per channel"),
    )
    parser.add_argument(
        "--resize", type=int, nargs=2, metavar=("ROWS", "COLUMNS"),
        help="resize the image after reading it (default: keep its size; samples are 128x128)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="refuse images with more pixels (default: Pillow's limit, about 89 million)",
    )


def load_input(
    args: argparse.Namespace, *, default_sample: str | None = None, gray: bool = False
) -> np.ndarray:
    """The image named by IMAGE or --sample, as float64 in [0, 1] (gray with ``--gray`` or
    ``gray=True``)."""
    from cnnkit.filters import sample_image
    from cnnkit.imageio import read_image

    if args.image is not None and args.sample is not None:
        raise InvalidArgument("give either IMAGE or --sample, not both")
    if args.image is None:
        sample = args.sample or default_sample
        if sample is None:
            raise InvalidArgument("give an IMAGE file or --sample NAME")
        size = tuple(args.resize) if args.resize else 128
        return sample_image(sample, size)
    with open_regular(args.image, "image file"):  # a FIFO or a device would block the decoder
        pass
    return read_image(
        args.image,
        color="gray" if args.gray or gray else "keep",
        size=tuple(args.resize) if args.resize else None,
        max_pixels=args.max_pixels,
    )


def pipeline_bytes(shape: tuple[int, ...]) -> int:
    """Peak memory of ``cnnkit filter`` on an image of ``shape`` (as read), in bytes.

    The image is read as float64 (8 bytes per value, with the decoded 8- or 16-bit pixels
    beside it while it is read), filtered in place one channel at a time (a padded copy of one
    channel and, on the FFT path, about five plane-sized complex spectra of half width), and
    turned into 8-bit pixels that the encoder copies once. ``tests/cli/test_filter_budget.py``
    measures the real peak against this bound.
    """
    rows, columns = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    return rows * columns * (PER_VALUE_BYTES * channels + PER_PLANE_BYTES) + FIXED_BYTES


#: Bytes per value of the image kept through the pipeline: its float64 copy, the decoded pixels
#: while reading and the 8-bit result with the encoder's copy of it.
PER_VALUE_BYTES = 12
#: Bytes per pixel of the work on one channel (padded copy and FFT spectra).
PER_PLANE_BYTES = 48
#: Interpreter, libraries and tiles.
FIXED_BYTES = 64 * 2**20


def register(subparsers: argparse._SubParsersAction) -> None:
    from cnnkit.filters import PADDING_MODES

    parser = subparsers.add_parser(
        "filter",
        help="apply a kernel (Sobel, Gaussian, your own) to an image",
        description="Apply a kernel to an image and save the result (PNG, JPEG, TIFF or .npy). "
        "Colour images are filtered channel by channel.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(parser, image_required=True)
    parser.add_argument("--kernel", required=True, metavar="SPEC", help="the kernel (see below)")
    parser.add_argument(
        "--convolve", action="store_true",
        help="true convolution (flip the kernel); default: correlation, as OpenCV's filter2D",
    )
    parser.add_argument(
        "--padding", type=_padding_argument, default="same", metavar="full|same|valid|P",
        help="how much border: same size, full, valid or P on each side (default: same)",
    )
    parser.add_argument(
        "--padding-mode", choices=PADDING_MODES, default="reflect",
        help="what the border holds (default: reflect)",
    )
    parser.add_argument(
        "--display", choices=("auto", "rescale", "clip", "abs"), default="auto",
        help="how an image output maps values to 0..255 (default: auto)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.set_defaults(handler=run)


def _padding_argument(text: str) -> str | int:
    """``--padding``: a padding name or a non-negative integer."""
    if text in ("full", "same", "valid"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(
        f"must be full, same, valid or a non-negative integer, got {text!r}"
    )


def run(args: argparse.Namespace) -> int:
    from cnnkit.budget import check_memory
    from cnnkit.filters import filter_image, parse_kernel
    from cnnkit.imageio import WRITE_SUFFIXES, image_shape, to_uint8, write_image

    suffix = args.output.lower().rpartition(".")[2]
    if f".{suffix}" not in WRITE_SUFFIXES:
        raise InvalidArgument(
            f"output file {args.output!r} must end in one of {', '.join(WRITE_SUFFIXES)}"
        )
    # Budget from the image's header first: nothing large is built before it is known to fit.
    if args.image is not None and args.sample is None:
        with open_regular(args.image, "image file"):
            pass
        shape = image_shape(args.image, color="gray" if args.gray else "keep")
        if args.resize:
            shape = (*args.resize, *shape[2:])
        # Any padding but 'same' writes the result beside the image instead of over it.
        result_bytes = 0 if args.padding == "same" else 8 * int(np.prod(shape))
        check_memory(pipeline_bytes(shape) + result_bytes,
                     f"filtering the {shape[1]}x{shape[0]} image")
    kernel = parse_kernel(args.kernel)
    image = load_input(args)
    # The image is ours: with 'same' padding filter it in place, which saves the memory of a
    # second copy.
    result = filter_image(
        image,
        kernel,
        operation="convolve" if args.convolve else "correlate",
        padding_mode=args.padding_mode,
        padding=args.padding,
        out=image if args.padding == "same" else None,
    )
    colour = image.ndim == 3 and image.shape[2] > 1
    del image
    low, high = float(result.min()), float(result.max())
    if suffix == "npy":
        written = write_image(args.output, result, overwrite=args.overwrite)
        how = "exact float64 values"
    else:
        method = args.display
        if method == "auto":
            method = "clip" if low >= 0.0 and high <= 1.0 else "rescale"
        written = write_image(args.output, to_uint8(result, method), overwrite=args.overwrite)
        how = {
            "clip": "8-bit, values in [0, 1] scaled by 255 (outside clipped)",
            "rescale": f"8-bit, values rescaled from [{low:.4g}, {high:.4g}] to 0..255",
            "abs": f"8-bit, |values| rescaled from [0, {max(abs(low), abs(high)):.4g}] to 0..255",
        }[method]
    rows, columns = kernel.shape
    operation = "convolution" if args.convolve else "correlation"
    border = "no border" if args.padding in ("valid", 0) else f"{args.padding_mode} border"
    print(
        f"wrote {written} ({how}); kernel {rows}x{columns} {operation}, padding {args.padding} "
        f"({border}), result {result.shape[0]}x{result.shape[1]}, range [{low:.4g}, {high:.4g}]"
    )
    if colour and low < 0.0:
        print("note: the colour image was filtered channel by channel, so its signed response "
              "is shown per channel (in colour); add --gray to filter its brightness only")
    return 0
