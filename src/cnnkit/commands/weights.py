"""``cnnkit weights``: a trained model's kernels against the classic kernels and against random
ones, and the image patches each filter responds to most."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.commands.options import add_data_dir_option, add_engine_options
from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="learned kernels against classic and random ones, and what each filter sees",
        description=(
            "Print each first-layer kernel's nearest classic kernel (Sobel, Scharr, Prewitt in "
            "four directions, Laplacian, Gaussian, box, identity) with the cosine similarity "
            "after removing the mean, and the share of randomly initialised kernels it beats "
            "('no close match' below the 95th percentile); draw the kernels, trained and at "
            "initialisation, and for every convolution the test patches that excite each "
            "channel most. Example: cnnkit weights runs/fashion"
        ),
    )
    parser.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    parser.add_argument("-o", "--output", metavar="FIG",
                        help="PNG to write (default: weights.png in the run folder, refreshed "
                        "on every run)")
    parser.add_argument("--patches", metavar="FIG",
                        help="PNG of the top patches (default: patches.png in the run folder, "
                        "refreshed on every run)")
    parser.add_argument("--no-patches", action="store_true",
                        help="skip the patches (they need the run's test images)")
    parser.add_argument("--images", type=int, default=2000, metavar="N",
                        help="test images searched for the patches (default 2000)")
    add_data_dir_option(parser)
    parser.add_argument("--best", action="store_true",
                        help="use the run's best checkpoint (default: the last one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file named with -o")
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.errors import InvalidArgument
    from cnnkit.evidence import (
        patches_figure,
        summarise_kernels,
        top_patches,
        weights_figure,
    )
    from cnnkit.model import TrainedModel
    from cnnkit.plots import save_figure

    source = Path(args.run)
    if args.images < 1:
        raise InvalidArgument(f"--images must be at least 1, got {args.images}")
    # The run's own figures are refreshed; files the user named need --overwrite.
    targets = [(Path(args.output) if args.output else RunFolder.of(source).weights_figure,
                args.overwrite or args.output is None)]
    if not args.no_patches:
        targets.append((Path(args.patches) if args.patches
                        else RunFolder.of(source).patches_figure,
                        args.overwrite or args.patches is None))
    for path, replace in targets:
        if path.exists() and not replace:
            raise AlreadyExists(f"{path} exists; pass --overwrite or choose another name")
    model = TrainedModel.load(source, engine=args.engine, device=args.device, best=args.best)
    summary = summarise_kernels(model)
    print("\n".join(summary.lines()))
    (path, replace), *rest = targets
    save_figure(weights_figure(model, summary), path, overwrite=replace)
    print(f"figure saved to {path}")
    if rest:
        (path, replace), = rest
        images = _test_images(model, args)
        if images is None:
            return 0
        patches = {layer: top_patches(model, images, layer) for layer in model.info.conv_layers}
        save_figure(patches_figure(model, patches), path, overwrite=replace)
        names = ", ".join(model.info.names[layer] for layer in patches)
        print(f"patches of {names} over {len(images):,} test images saved to {path}")
    return 0


def _test_images(model, args: argparse.Namespace):
    """The first ``--images`` test images of the run's data set, or None (said) without them."""
    from cnnkit.data.registry import DatasetNotFoundError, DownloadError
    from cnnkit.evaluation import load_split

    try:
        _, _, images, _ = load_split(model.checkpoint, f"the model in {args.run}",
                                     data_dir=args.data_dir)
    except (DatasetNotFoundError, DownloadError) as exc:
        print(f"patches skipped: the {model.info.dataset} images are not available ({exc})")
        return None
    return images[:args.images]
