"""``cnnkit data``: list the data sets, fetch their files, describe them."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from cnnkit.data import DATASET_NAMES, fetch, load_dataset, locate, split_train_validation
from cnnkit.engines.config import validation_size
from cnnkit.errors import InvalidArgument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list, fetch and describe data sets",
        description=(
            "Data sets: mnist and fashion-mnist (IDX files, found on disk or downloaded with "
            "SHA-256 verification), synthetic-digits (generated), imagefolder:PATH. "
            "Example: cnnkit data fetch fashion-mnist"
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the data sets and where their files are",
                                 description="Example: cnnkit data list")
    listing.add_argument("--data-dir", help="a folder searched first")
    fetching = actions.add_parser("fetch", help="find or download a data set's files",
                                  description="Example: cnnkit data fetch mnist")
    fetching.add_argument("name", choices=("mnist", "fashion-mnist"))
    fetching.add_argument("--data-dir", help="a folder searched first")
    info = actions.add_parser("info", help="sizes, classes and pixel statistics",
                              description="Example: cnnkit data info synthetic-digits")
    info.add_argument("name", help="mnist, fashion-mnist, synthetic-digits or imagefolder:PATH")
    info.add_argument("--data-dir", help="a folder searched first")
    info.add_argument("--input", metavar="CxHxW", help="image folders: the size to resize to")
    info.add_argument("--val-size", type=validation_size, default=None,
                      help="validation images as in cnnkit train: a count or a fraction "
                      "(default: a sixth)")
    info.add_argument("--seed", type=int, default=1, help="the split's seed (default 1)")
    for sub in (listing, fetching, info):
        sub.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in ("mnist", "fashion-mnist"):
            found = locate(name, args.data_dir)
            where = (
                f"found in {next(iter(found.values())).parent}" if found
                else "not on disk (cnnkit data fetch " + name + " downloads it)"
            )
            print(f"{name:<18} {where}")
        print(f"{'synthetic-digits':<18} generated on demand (no files)")
        print(f"{'imagefolder:PATH':<18} one sub-folder per class of image files")
        return 0
    if args.action == "fetch":
        paths = fetch(args.name, args.data_dir, progress=sys.stderr.isatty(),
                      log=lambda line: print(line, file=sys.stderr))
        for path in paths.values():
            print(path)
        return 0
    from cnnkit.arch import parse_input_shape

    shape = parse_input_shape(args.input) if args.input else None
    if args.name not in DATASET_NAMES and not args.name.startswith("imagefolder:"):
        allowed = ", ".join(DATASET_NAMES)
        raise InvalidArgument(
            f"dataset must be one of {allowed} or "
            f"imagefolder:PATH, got {args.name!r}"
        )
    data = load_dataset(args.name, data_dir=args.data_dir, input_shape=shape,
                        download=False, report=lambda line: print(line, file=sys.stderr))
    if args.name in ("mnist", "fashion-mnist"):
        found = locate(args.name, args.data_dir)
        print(f"files in {next(iter(found.values())).parent}")
    print(f"{data.name}: images {'x'.join(map(str, data.input_shape))}, "
          f"{data.num_classes} classes")
    splits = [("train", data.train_images, data.train_labels)]
    if data.test_images is not None:
        splits.append(("test", data.test_images, data.test_labels))
    for split, images, labels in splits:
        counts = np.bincount(labels, minlength=data.num_classes)
        pixels = images.astype(np.float64) / 255.0 if images.size < 10**8 else None
        stats = f", pixel mean {pixels.mean():.4f}, std {pixels.std():.4f}" if (
            pixels is not None) else ""
        print(f"  {split}: {len(images)} images, per class {counts.min()}..{counts.max()}{stats}")
    print("  classes: " + ", ".join(data.class_names))
    _print_split_table(data, args.val_size, args.seed)
    return 0


def _print_split_table(data, val_size: int | float | None, seed: int) -> None:
    """Images per class in the split that ``cnnkit train`` makes with these settings."""
    split = split_train_validation(data.train_labels, val_size, seed=seed)
    columns = [("train", data.train_labels[split.train]),
               ("validation", data.train_labels[split.validation])]
    if data.test_labels is not None:
        columns.append(("test", data.test_labels))
    counts = [np.bincount(labels, minlength=data.num_classes) for _, labels in columns]
    width = max(len("class"), *(len(name) for name in data.class_names))
    print(f"  split made by cnnkit train (stratified, seed {seed}):")
    print("  " + f"{'class':<{width}}" + "".join(f"{name:>12}" for name, _ in columns))
    for index, name in enumerate(data.class_names):
        print("  " + f"{name:<{width}}" + "".join(f"{c[index]:>12}" for c in counts))
    print("  " + f"{'total':<{width}}" + "".join(f"{c.sum():>12}" for c in counts))
