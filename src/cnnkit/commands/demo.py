"""``cnnkit demo``: a guided tour of the building blocks on built-in data.

The tour prints, in order: convolution against correlation on the built-in line picture, the
three named paddings in 1-D, the output-size formula, max and average pooling, and three input
channels into five filters; then it writes the edge and blur figures and trains the tutorial's
CNN briefly: on Fashion-MNIST when its files are installed or can be downloaded, on the built-in
synthetic digits otherwise, and it says which and why.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from cnnkit import (
    avg_pool2d,
    conv2d,
    convolve1d,
    convolve2d,
    correlate2d,
    explain_output_size,
    max_pool2d,
)
from cnnkit._files import check_output_folder
from cnnkit.errors import InvalidArgument, NotFound
from cnnkit.filters.samples import grid_lines

DEFAULT_OUT = "cnnkit-demo"
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a tour of convolution, padding, pooling and training on built-in data",
        description=(
            "A tour of cnnkit's building blocks on built-in data: convolution and correlation, "
            "padding, the output-size formula, pooling, multi-channel filters, the edge and "
            "blur figures, and a short training run of the tutorial's CNN.\n\n"
            "Examples:\n  cnnkit demo\n  cnnkit demo --no-train --out tour"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"folder for the figures and the training run (default: {DEFAULT_OUT}, or "
        f"{DEFAULT_OUT}-2, -3, ... when that one is taken)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the demo's files in an existing --out"
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--no-train", action="store_true", help="skip the training run")
    parser.add_argument(
        "--epochs", type=int, default=3, help="training epochs (default: 3, about a minute)"
    )
    parser.set_defaults(handler=run)


def _heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


def _matrix(array: np.ndarray, indent: str = "    ") -> str:
    text = np.array2string(np.asarray(array), precision=2, suppress_small=True, max_line_width=96)
    return "\n".join(indent + line for line in text.splitlines())


def tour_convolution() -> None:
    _heading("1. Convolution flips the kernel, correlation does not")
    image = grid_lines(16, spacing=8, thickness=2)
    print("The built-in picture: black (0) lines on white (1); rows 0-7 of a 16x16 crop:")
    print(_matrix(image[:8, :]))
    print("Sobel K_x (vertical edges):")
    print(_matrix(SOBEL_X))
    corr = correlate2d(image, SOBEL_X, "same", padding_mode="reflect")
    conv = convolve2d(image, SOBEL_X, "same", padding_mode="reflect")
    print("correlate2d(image, K_x, 'same', padding_mode='reflect') on row 0. The border is the "
          "image mirrored;\ncorrelate2d's default border is zeros, which would add edges at the "
          "border of this white picture:")
    print(_matrix(corr[0]))
    print("convolve2d(image, K_x, 'same', padding_mode='reflect') on row 0 (the kernel "
          "flipped): the sign changes:")
    print(_matrix(conv[0]))
    print("Brightness rising left to right answers +4 per unit step with correlation.")


def tour_padding() -> None:
    _heading("2. Padding in 1-D: full, same, valid")
    x, w = np.array([1, 3, 2, 4, 5, 6, 1, 3]), np.array([1, 0, 3, 1, 2])
    print(f"x = {x.tolist()}  (n={x.size}),  w = {w.tolist()}  (m={w.size})")
    for padding in ("full", "same", "valid"):
        out = convolve1d(x, w, padding)
        print(f"  {padding:>5}: length {out.size:2d}  {out.astype(int).tolist()}")
    out = convolve1d([3, 2, 1, 7, 1, 2, 5, 4], [0.5, 0.75, 1.0, 0.25], padding=0, stride=2)
    print(f"  stride 2, no padding, x=[3,2,1,7,1,2,5,4], w=[0.5,0.75,1,0.25]: {out.tolist()}")


def tour_output_size() -> None:
    _heading("3. Output size: o = floor((n + 2p - m) / s) + 1")
    for n, m, p, s in ((32, 5, 2, 1), (28, 2, 0, 2), (7, 3, 0, 2)):
        print(f"  n={n}, m={m}, p={p}, s={s}:  {explain_output_size(n, m, s, p)}")


def tour_pooling() -> None:
    _heading("4. Pooling (stride defaults to the kernel size)")
    x = np.arange(1.0, 26.0).reshape(1, 5, 5)
    print("input:")
    print(_matrix(x[0]))
    print("max_pool2d(x, 2):")
    print(_matrix(max_pool2d(x, 2)[0]))
    print("avg_pool2d(x, 2):")
    print(_matrix(avg_pool2d(x, 2)[0]))
    print("max_pool2d(x, 2, ceil_mode=True) keeps the partial windows:")
    print(_matrix(max_pool2d(x, 2, ceil_mode=True)[0]))


def tour_channels() -> None:
    _heading("5. Three input channels into five filters")
    rng = np.random.default_rng(0)
    image = rng.random((3, 32, 32))
    weight = rng.standard_normal((5, 3, 5, 5))
    bias = np.zeros(5)
    out = conv2d(image, weight, bias, padding=2)
    print(f"  input {image.shape} (C, H, W), weight {weight.shape} (filters, C, kh, kw)")
    print(f"  conv2d(..., padding=2) -> {out.shape}: each filter sums over all 3 channels")
    print(f"  parameters: 5*3*5*5 weights + 5 biases = {weight.size + bias.size}")


#: Blur strengths shown in the demo's blur figure.
DEMO_SIGMAS = (1.0, 3.0)


def demo_figures(out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write the edge figure and the blur figure of the built-in grid image as PNG files.

    ``edges.png`` is the tutorial's figure (original, vertical and horizontal Sobel edges,
    edge magnitude); ``blur.png`` shows the grid blurred with Gaussian sigma 1 and 3. Both use
    the filters' default border, reflect (the image mirrored), and their titles say so. The
    filters compute the panels and :mod:`cnnkit.plots` draws them. Both files are written
    atomically into the existing folder ``out_dir``; existing files are replaced only with
    ``overwrite``. Returns the two paths.

    >>> import tempfile
    >>> [path.name for path in demo_figures(tempfile.mkdtemp())]
    ['edges.png', 'blur.png']
    """
    from cnnkit.commands.edges import edge_title
    from cnnkit.filters import gaussian_blur, sobel
    from cnnkit.plots import edge_figure, filter_figure, save_figure

    folder = Path(out_dir)
    if not folder.is_dir():
        raise NotFound(f"output folder {str(folder)!r} does not exist")
    image = grid_lines(128)
    blurred = {f"sigma = {sigma:g}": gaussian_blur(image, sigma) for sigma in DEMO_SIGMAS}
    figures = {
        "edges.png": edge_figure(image, sobel(image, 1), sobel(image, 0),
                                 title=edge_title(3, "correlate", "reflect")),
        "blur.png": filter_figure(image, blurred,
                                  title="Gaussian blur of the grid image, reflect border"),
    }
    return [
        save_figure(figure, folder / name, overwrite=overwrite)
        for name, figure in figures.items()
    ]


def figures(folder: Path, overwrite: bool) -> None:
    _heading("6. Edges and blur on the built-in picture")
    for path in demo_figures(folder, overwrite=overwrite):
        print(f"  wrote {path}")


def training(folder: Path, epochs: int, overwrite: bool) -> None:
    from cnnkit.engines.demo import demo_dataset, demo_training

    _heading("7. Training the tutorial's CNN")
    dataset, line = demo_dataset(progress=True)
    print(f"  {line}")
    result = demo_training(folder / "train", dataset=dataset, epochs=epochs,
                           overwrite=overwrite)
    print(
        f"  {result['dataset']}: test accuracy {result['test_accuracy']:.2%} after "
        f"{result['epochs']} epoch(s), {result['train_seconds']:.0f} s of training"
    )
    print(f"  run folder: {result['run_dir']}  (try: cnnkit evaluate {result['run_dir']})")


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise InvalidArgument(f"--epochs must be a positive integer, got {args.epochs}")
    folder = None
    if not (args.no_figures and args.no_train):
        folder = free_output_folder(args.out, args.overwrite)
    tour_convolution()
    tour_padding()
    tour_output_size()
    tour_pooling()
    tour_channels()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if not args.no_figures:
        figures(folder, args.overwrite)
    if not args.no_train:
        training(folder, args.epochs, args.overwrite)
    return 0


def free_output_folder(requested: str | None, overwrite: bool) -> Path:
    """The folder the demo writes into, never clobbering a user's files.

    An explicit folder that holds files is refused unless ``overwrite``; the default folder
    moves on to ``cnnkit-demo-2``, ``-3``, ... when it is taken.
    """
    if requested is not None:
        path = Path(requested)
        check_output_folder(
            path, overwrite=overwrite, hint="pass --overwrite to replace the demo's files in it"
        )
        return path
    path, number = Path(DEFAULT_OUT), 1
    while path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        number += 1
        path = Path(f"{DEFAULT_OUT}-{number}")
    return path
