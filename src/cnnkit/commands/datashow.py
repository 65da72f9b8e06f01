"""``cnnkit data show``: a figure of a data set's training images and their augmented versions.

The augmentation options are :class:`cnnkit.engines.config.TrainConfig`'s own (``--augment``,
``--erase`` and the warp amounts), validated by it, so the figure shows exactly what
``cnnkit train`` with the same options and ``--seed`` draws in its first steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from cnnkit.errors import InvalidArgument

__all__ = ["register_show", "run_show"]

#: The images and copies a figure may hold.
MAX_IMAGES = 16
MAX_COPIES = 12


def register_show(actions: argparse._SubParsersAction) -> None:
    from cnnkit.commands.train import add_config_options

    show = actions.add_parser(
        "show", help="draw training images beside augmented versions of them",
        description="Draw the first training images of a data set (one per class first) "
        "beside the versions that the augmentation options draw in the first steps of "
        "cnnkit train with the same --seed. Example: cnnkit data show mnist --augment "
        "affine-elastic --out augmented.png")
    show.add_argument("name", help="mnist, fashion-mnist, synthetic-digits or imagefolder:PATH")
    show.add_argument("--out", required=True, metavar="FILE.png", help="the figure to write")
    show.add_argument("--overwrite", action="store_true", help="replace the figure")
    show.add_argument("--data-dir", help="a folder searched first (default: none, only the "
                      "standard places)")
    show.add_argument("--images", type=int, default=8,
                      help=f"training images drawn, one per class first (default 8, at most "
                      f"{MAX_IMAGES})")
    show.add_argument("--copies", type=int, default=5,
                      help=f"augmented versions of each (default 5, at most {MAX_COPIES})")
    show.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    add_config_options(show, groups=("augmentation",))
    show.set_defaults(handler=run_show)


def _first_per_class(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` images: the first of each class in turn, then the next ones."""
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(labels), np.int64)
    starts = np.searchsorted(labels[order], labels[order])
    rank[order] = np.arange(len(labels)) - starts
    # Sort by (rank within its class, position): one of each class, then the second, ...
    return np.lexsort((np.arange(len(labels)), rank))[:count]


def run_show(args: argparse.Namespace) -> int:
    from cnnkit.data import load_dataset
    from cnnkit.engines.augment import Augmentation
    from cnnkit.engines.config import TrainConfig
    from cnnkit.engines.figures import augmentation_figure
    from cnnkit.plots import save_figure

    for flag, value, most in (("--images", args.images, MAX_IMAGES),
                              ("--copies", args.copies, MAX_COPIES)):
        if not 1 <= value <= most:
            raise InvalidArgument(f"{flag} must be between 1 and {most}, got {value}")
    given = {item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)
             if item.metadata and item.metadata["group"] == "augmentation"
             and getattr(args, item.name) is not None}
    config = TrainConfig(dataset=args.name, seed=args.seed, **given)
    if config.augment == "none" and config.erase == 0:
        raise InvalidArgument("data show draws augmented images: give --augment POLICY or "
                              "--erase PROBABILITY")
    if not args.out.lower().endswith(".png"):
        raise InvalidArgument(f"--out must end in .png, got {args.out!r}")
    data = load_dataset(args.name, data_dir=args.data_dir, download=False,
                        progress=sys.stderr.isatty(),
                        report=lambda line: print(line, file=sys.stderr))
    chosen = _first_per_class(np.asarray(data.train_labels), args.images)
    images = np.asarray(data.train_images[np.sort(chosen)])
    from cnnkit.engines.training import image_statistics

    _, _, background = image_statistics(images)
    augmentation = Augmentation(config.augment, config.seed, 0.0 if background == "dark"
                                else 1.0, warp=config.warp, erase=config.erase)
    settings = [f"--augment {config.augment}"] + ([f"--erase {config.erase:g}"]
                                                  if config.erase else [])
    title = f"{data.name}: {' '.join(settings)}, seed {config.seed}"
    figure = augmentation_figure(images, augmentation, copies=args.copies, title=title)
    path = save_figure(figure, args.out, overwrite=args.overwrite)
    print(f"wrote {path}: {len(images)} training images of {data.name}, {args.copies} "
          f"augmented versions each ({' '.join(settings)}, seed {config.seed})")
    return 0
