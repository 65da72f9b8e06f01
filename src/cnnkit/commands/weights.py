"""``cnnkit weights``: a trained model's kernels, each first-layer one next to the classic kernel
it resembles."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.commands.options import add_engine_options
from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="learned kernels, labelled with the nearest classic kernel (Sobel, Gaussian, ...)",
        description=(
            "Print each first-layer kernel's nearest classic kernel (Sobel, Scharr, Prewitt in "
            "four directions, Laplacian, Gaussian, box, identity) with the cosine similarity "
            "after removing the mean, and draw the kernels of every convolution layer. "
            "Example: cnnkit weights runs/fashion"
        ),
    )
    parser.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    parser.add_argument("-o", "--output", metavar="FIG",
                        help="PNG to write (default: weights.png in the run folder, refreshed "
                        "on every run)")
    parser.add_argument("--best", action="store_true",
                        help="use the run's best checkpoint (default: the last one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file named with -o")
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.explain import nearest_classic_kernel, weights_figure
    from cnnkit.model import TrainedModel
    from cnnkit.plots import save_figure

    source = Path(args.run)
    # The run's own figure is refreshed; a file the user named needs --overwrite.
    replace = args.overwrite or args.output is None
    path = Path(args.output) if args.output else RunFolder.of(source).weights_figure
    if path.exists() and not replace:
        raise AlreadyExists(f"{path} exists; pass --overwrite or choose another -o")
    model = TrainedModel.load(source, engine=args.engine, device=args.device, best=args.best)
    layers = model.conv_weights()
    if layers:
        index, weights = layers[0]
        print(f"layer {index}: {len(weights)} kernels of {weights.shape[2]}x{weights.shape[3]}"
              f"{' (summed over input channels)' if weights.shape[1] > 1 else ''}")
        for number, kernel in enumerate(weights.sum(axis=1)):
            match = nearest_classic_kernel(kernel)
            print(f"  kernel {number:>3}: {match.label}")
    save_figure(weights_figure(model), path, overwrite=replace)
    print(f"figure saved to {path}")
    return 0
