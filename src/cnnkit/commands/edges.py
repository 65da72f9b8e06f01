"""``cnnkit edges``: the tutorial's edge figure for an image file or a built-in sample."""

from __future__ import annotations

import argparse

from cnnkit.commands.filter import add_input_arguments, load_input

EXAMPLE = """examples:
  cnnkit edges                          # the built-in grid of lines -> edges.png
  cnnkit edges photo.jpg -o photo-edges.png
  cnnkit edges --sample circles --convolve -o circles.png

Panels: the image (in gray), vertical edges (sobel-x: brightness changing across the
columns), horizontal edges (sobel-y: changing down the rows) and the edge magnitude. By default
the Sobel kernels are correlated with the image, so brightness rising to the right or
downwards is positive (light); --convolve flips the kernels, as the textbook formula does,
which turns the signs around."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from cnnkit.filters import PADDING_MODES

    parser = subparsers.add_parser(
        "edges",
        help="Sobel edge figure of an image (or of the built-in grid)",
        description="Draw an image next to its vertical and horizontal Sobel edges and the "
        "edge magnitude, and save the figure as PNG.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_arguments(parser, image_required=False, always_gray=True)
    parser.add_argument(
        "--size", type=int, default=3, metavar="N",
        help="Sobel kernel size: 3, 5, 7, ... (default: 3)"
    )
    parser.add_argument(
        "--convolve", action="store_true",
        help="flip the kernels (true convolution); default: correlation, kernels as written"
    )
    parser.add_argument(
        "--padding-mode", choices=PADDING_MODES, default="reflect",
        help="how the border is extended (default: reflect)",
    )
    parser.add_argument(
        "-o", "--output", default="edges.png", metavar="FIGURE",
        help="PNG file to write (default: edges.png)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FIGURE")
    parser.set_defaults(handler=run)


def edge_title(size: int, operation: str, padding_mode: str) -> str:
    """The edge figure's title: how its panels were computed.

    >>> edge_title(3, "convolve", "zeros")
    'Sobel 3x3 edges by convolution (kernels flipped), zeros border'
    """
    how = ("correlation (kernels as written)" if operation == "correlate"
           else "convolution (kernels flipped)")
    return f"Sobel {size}x{size} edges by {how}, {padding_mode} border"


def run(args: argparse.Namespace) -> int:
    from cnnkit.filters import sobel
    from cnnkit.plots import edge_figure, save_figure

    image = load_input(args, default_sample="grid", gray=True)
    options = {
        "size": args.size,
        "operation": "convolve" if args.convolve else "correlate",
        "padding_mode": args.padding_mode,
    }
    figure = edge_figure(image, sobel(image, 1, **options), sobel(image, 0, **options),
                         title=edge_title(**options))
    written = save_figure(figure, args.output, overwrite=args.overwrite)
    rows, columns = image.shape[:2]
    print(f"wrote {written} (edge figure of a {rows}x{columns} image)")
    return 0
