"""``cnnkit outsize``: the output size of a convolution or pooling, with the formula."""

from __future__ import annotations

import argparse

from cnnkit.errors import InvalidArgument

EXAMPLE = """examples:
  cnnkit outsize --input 32 --kernel 5 --padding 2              # 32
  cnnkit outsize --input 28 --kernel 2 --stride 2               # 14
  cnnkit outsize --input 28 28 --kernel 5 3 --padding same
  cnnkit outsize --input 7 --kernel 3 --padding full --plot padding.png
  cnnkit outsize --input 10 --kernel 3 --padding 2 --stride 2 --plot strided.png
  cnnkit outsize --input 7 --kernel 4 --padding 1 2           # 1 left, 2 right: 7

Formula: o = floor((n + 2p - d*(m - 1) - 1) / s) + 1, which for dilation d = 1 is
floor((n + 2p - m) / s) + 1. Two numbers after --input (rows, columns) give the 2-D form;
--kernel, --padding, --stride and --dilation then take one number for both axes or two. For a
1-D input, two numbers after --padding are the left and right padding (n + left + right
replaces n + 2p)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "outsize",
        help="output size of a convolution, with the formula filled in",
        description="Compute the output size of a sliding window (convolution or pooling) and "
        "print the formula with the numbers put in.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", type=int, nargs="+", required=True, metavar="N",
                        help="input size: N, or ROWS COLUMNS")
    parser.add_argument("--kernel", type=int, nargs="+", required=True, metavar="M",
                        help="kernel size (one or two numbers)")
    parser.add_argument("--padding", nargs="+", default=["0"], metavar="P",
                        help="padding per side (one number; for a 1-D input two are the left "
                        "and right padding, for a 2-D input the rows' and the columns') or "
                        "same, valid, full (default: 0)")
    parser.add_argument("--stride", type=int, nargs="+", default=[1], metavar="S",
                        help="step between windows (one or two numbers; default: 1)")
    parser.add_argument("--dilation", type=int, nargs="+", default=[1], metavar="D",
                        help="spacing between kernel taps, 1 for none (one or two numbers; "
                        "default: 1)")
    parser.add_argument("--plot", metavar="FIGURE",
                        help="draw the windows of a 1-D input (PNG): full, same and valid "
                        "next to the asked padding, with this stride and dilation "
                        "(default: no figure)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FIGURE")
    parser.set_defaults(handler=run)


def _per_axis(values: list, name: str, axes: int) -> list:
    if len(values) == 1:
        return values * axes
    if len(values) == axes:
        return values
    raise InvalidArgument(
        f"--{name} takes {_how_many(axes)} for a {axes}-D --input, got {len(values)}: {values}"
    )


def _how_many(axes: int) -> str:
    return "one integer" if axes == 1 else "one or two integers"


def _padding(values: list[str], axes: int) -> list[int | str]:
    if len(values) == 1 and values[0] in ("same", "valid", "full"):
        return values * axes
    allowed = "one or two integers (left, right)" if axes == 1 else _how_many(axes)
    try:
        numbers = [int(value) for value in values]
    except ValueError:
        raise InvalidArgument(
            f"--padding must be same, valid, full or {allowed}, got {values}"
        ) from None
    if min(numbers) < 0:
        raise InvalidArgument(f"--padding takes non-negative integers, got {numbers}")
    if axes == 1:
        if len(numbers) > 2:
            raise InvalidArgument(f"--padding takes {allowed} for a 1-D --input, got "
                                  f"{len(numbers)}: {numbers}")
        return [tuple(numbers)] if len(numbers) == 2 else numbers
    return _per_axis(numbers, "padding", axes)


def run(args: argparse.Namespace) -> int:
    from cnnkit.shapes import explain_output_size, output_size

    axes = len(args.input)
    if axes not in (1, 2):
        raise InvalidArgument(f"--input takes N or ROWS COLUMNS, got {len(args.input)} numbers")
    if args.plot and axes != 1:
        raise InvalidArgument("--plot draws the 1-D case; give one number to --input")
    for name in ("input", "kernel", "stride", "dilation"):
        values = getattr(args, name)
        if min(values) < 1:
            raise InvalidArgument(f"--{name} takes positive integers, got {values}")
    kernel = _per_axis(args.kernel, "kernel", axes)
    padding = _padding(args.padding, axes)
    stride = _per_axis(args.stride, "stride", axes)
    dilation = _per_axis(args.dilation, "dilation", axes)
    per_axis = list(zip(args.input, kernel, stride, padding, dilation, strict=True))
    sizes = [output_size(*arguments) for arguments in per_axis]
    formulas = [explain_output_size(*arguments) for arguments in per_axis]
    if axes == 1:
        print(f"output size: {sizes[0]}")
        print(f"  o = floor((n + 2p - d*(m - 1) - 1) / s) + 1 = {formulas[0]}")
    else:
        print(f"output shape: {sizes[0]} x {sizes[1]}")
        print(f"  rows:    {formulas[0]}")
        print(f"  columns: {formulas[1]}")
    if args.plot:
        from cnnkit.plots import padding_figure, save_figure

        figure = padding_figure(args.input[0], kernel[0], stride=stride[0], padding=padding[0],
                                dilation=dilation[0])
        print(f"wrote {save_figure(figure, args.plot, overwrite=args.overwrite)}")
    return 0
