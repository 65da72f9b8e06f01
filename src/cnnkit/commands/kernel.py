"""``cnnkit kernel``: print a kernel's weights (and optionally draw it)."""

from __future__ import annotations

import argparse

import numpy as np

from cnnkit.errors import InvalidArgument

EXAMPLE = """examples:
  cnnkit kernel sobel-x
  cnnkit kernel sobel-y --size 5
  cnnkit kernel gaussian --sigma 1 --radius 2
  cnnkit kernel "[[0,1,0],[1,-4,1],[0,1,0]]" --plot laplacian.png

names: sobel-x, sobel-y, scharr-x, scharr-y, prewitt-x, prewitt-y, laplacian, gaussian, box,
binomial, sharpen, emboss, identity; or any kernel text that 'cnnkit filter --kernel' takes."""

#: Command-line options that become keyword parameters of the named kernel.
_PARAMETERS = ("size", "sigma", "radius", "truncate", "neighbours", "amount")
#: Kernels with more rows or columns print their centre row only, unless --all.
_PRINT_LIMIT = 15


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kernel",
        help="print a named kernel's weights",
        description="Print the weights of a named kernel (or of a kernel you give), and "
        "optionally draw it as a heat map.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="kernel name or kernel text")
    parser.add_argument("--size", type=int,
                        help="size (sobel, box, binomial, identity: default 3; gaussian: "
                        "default 2*radius+1)")
    parser.add_argument("--sigma", type=float, help="standard deviation (gaussian; default 1)")
    parser.add_argument("--radius", type=int,
                        help="radius (gaussian; default int(truncate*sigma + 0.5))")
    parser.add_argument("--truncate", type=float,
                        help="radius in sigmas (gaussian; default 4)")
    parser.add_argument("--neighbours", type=int, help="4 or 8 (laplacian; default 4)")
    parser.add_argument("--amount", type=float, help="strength (sharpen; default 1)")
    parser.add_argument("--all", action="store_true",
                        help=f"print every weight of a kernel larger than {_PRINT_LIMIT}x"
                        f"{_PRINT_LIMIT} (default: its centre row only)")
    parser.add_argument("--plot", metavar="FIGURE",
                        help="also draw the kernel into this PNG (default: no figure)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FIGURE")
    parser.set_defaults(handler=run)


def format_kernel(kernel: np.ndarray) -> str:
    """The weights as aligned rows; whole numbers without decimals, others to 6 digits."""
    cells = [
        [f"{value:.0f}" if float(value).is_integer() else f"{value:.6g}" for value in row]
        for row in kernel
    ]
    width = max(len(cell) for row in cells for cell in row)
    return "\n".join("  " + " ".join(cell.rjust(width) for cell in row) for row in cells)


def kernel_title(name: str, params: dict, shape: tuple[int, int]) -> str:
    """A kernel's name, the parameters given and its size, as printed and as figure title.

    >>> kernel_title("gaussian", {"sigma": 3.0}, (25, 25))
    'gaussian sigma=3: 25 x 25'
    """
    given = ", ".join(f"{key}={value:g}" for key, value in params.items())
    return f"{name}{' ' + given if given else ''}: {shape[0]} x {shape[1]}"


def run(args: argparse.Namespace) -> int:
    from cnnkit.filters import (
        KERNEL_NAMES,
        kernel_defaults,
        make_kernel,
        parse_kernel,
        separable_factors,
    )

    params = {name: getattr(args, name) for name in _PARAMETERS if getattr(args, name) is not None}
    shown = params
    if args.name in KERNEL_NAMES:
        kernel = make_kernel(args.name, **params)
        shown = {**kernel_defaults(args.name), **params}
    elif params:
        options = ", ".join(f"--{name}" for name in params)
        raise InvalidArgument(f"{options} apply to named kernels only, not to {args.name!r}")
    else:
        kernel = parse_kernel(args.name)
    rows, columns = kernel.shape
    title = kernel_title(args.name, shown, kernel.shape)
    print(f"{title}, sum {kernel.sum():.6g}")
    if max(rows, columns) <= _PRINT_LIMIT or args.all:
        print(format_kernel(kernel))
    else:
        print(f"centre row (row {rows // 2}; --all prints all {rows * columns} weights):")
        print(format_kernel(kernel[rows // 2 : rows // 2 + 1]))
    if 1 not in kernel.shape and separable_factors(kernel) is not None:
        print("rank 1: filtering runs it as a column pass and a row pass")
    if args.plot:
        from cnnkit.plots import kernel_figure, save_figure

        written = save_figure(kernel_figure(kernel, title=title), args.plot,
                              overwrite=args.overwrite)
        print(f"wrote {written}")
    return 0
