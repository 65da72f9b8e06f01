"""``cnnkit data``: list the data sets, fetch their files, describe them, split image folders,
and list or clear the cache of decoded image folders."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from cnnkit.commands.datashow import register_show
from cnnkit.data import (
    DATASET_NAMES,
    dataset_names,
    fetch,
    load_dataset,
    locate,
    read_split_file,
    split_train_validation,
    write_split_file,
)
from cnnkit.data.cache import clear_cache, default_cache_dir, list_cache
from cnnkit.engines.config import validation_size
from cnnkit.errors import AlreadyExists, InvalidArgument, NotFound

#: Files whose size and mode ``data info`` reads from the header, at most.
INFO_SAMPLE = 1000


#: How the --data-dir help states its default.
_STANDARD = " (default: none, only the standard places)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list, fetch and describe data sets",
        description=(
            "Data sets: mnist and fashion-mnist (IDX files) and cifar-10 (the binary archive), "
            "found on disk or downloaded with SHA-256 verification; synthetic-digits "
            "(generated), imagefolder:PATH. "
            "Example: cnnkit data fetch fashion-mnist"
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the data sets and where their files are",
                                 description="Example: cnnkit data list")
    listing.add_argument("--data-dir", help="a folder searched first" + _STANDARD)
    fetching = actions.add_parser("fetch", help="find or download a data set's files",
                                  description="Example: cnnkit data fetch mnist")
    fetching.add_argument("name", choices=dataset_names())
    fetching.add_argument("--data-dir", help="a folder searched first" + _STANDARD)
    info = actions.add_parser("info", help="sizes, classes and pixel statistics",
                              description="Example: cnnkit data info synthetic-digits")
    info.add_argument("name", help=", ".join(DATASET_NAMES) + " or imagefolder:PATH")
    info.add_argument("--data-dir", help="a folder searched first" + _STANDARD)
    info.add_argument("--input", metavar="CxHxW",
                      help="image folders: the size to resize to (default: 1x28x28)")
    info.add_argument("--val-size", type=validation_size, default=None,
                      help="validation images as in cnnkit train: a count or a fraction "
                      "(default: a sixth)")
    info.add_argument("--seed", type=int, default=1, help="the split's seed (default 1)")
    info.add_argument("--split-file",
                      help="image folders: show the split this file holds (default: none, the "
                      "seeded split)")
    splitting = actions.add_parser(
        "split", help="write an image folder's train/validation/test file lists",
        description="Example: cnnkit data split imagefolder:photos split.json --test-size 0.1")
    splitting.add_argument("name", help="imagefolder:PATH")
    splitting.add_argument("file", help="the JSON split file to write")
    splitting.add_argument("--input", metavar="CxHxW", default="3x32x32",
                           help="the size images are decoded to (default 3x32x32)")
    splitting.add_argument("--val-size", type=validation_size, default=None,
                           help="a count or a fraction (default: a sixth)")
    splitting.add_argument("--test-size", type=validation_size, default=None,
                           help="a count or a fraction (default: none, or the folder's test/)")
    splitting.add_argument("--seed", type=int, default=1, help="the split's seed (default 1)")
    splitting.add_argument("--overwrite", action="store_true", help="replace the file")
    caching = actions.add_parser(
        "cache", help="list or clear the cache of decoded image folders",
        description="Example: cnnkit data cache list")
    caching.add_argument("cache_action", choices=("list", "clear"))
    caching.add_argument("--cache-dir", help=f"default {default_cache_dir()}")
    for sub in (info, splitting):
        sub.add_argument("--cache-dir",
                         help="where decoded image folders are cached (default: the user cache)")
        sub.add_argument("--no-cache", action="store_true",
                         help="decode without reading or writing the cache")
        sub.add_argument("--workers", type=int, default=None,
                         help="decoding processes (default: the CPUs available)")
    register_show(actions)
    for sub in (listing, fetching, info, splitting, caching):
        sub.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in dataset_names():
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
    if args.action == "cache":
        return _run_cache(args)
    from cnnkit.shapes import parse_input_shape

    shape = parse_input_shape(args.input) if args.input else None
    if args.name not in DATASET_NAMES and not args.name.startswith("imagefolder:"):
        allowed = ", ".join(DATASET_NAMES)
        raise InvalidArgument(
            f"dataset must be one of {allowed} or "
            f"imagefolder:PATH, got {args.name!r}"
        )
    is_folder = args.name.startswith("imagefolder:")
    if args.action == "split" and not is_folder:
        raise InvalidArgument(f"data split needs imagefolder:PATH, got {args.name!r}")
    if is_folder and args.workers is not None and args.workers < 1:
        raise InvalidArgument(f"--workers must be at least 1, got {args.workers}")
    if args.action == "split" and os.path.exists(args.file) and not args.overwrite:
        raise AlreadyExists(f"split file {args.file} already exists; pass --overwrite to "
                            "replace it")
    if is_folder and args.action == "info" and args.split_file and not os.path.isfile(
            args.split_file):
        raise NotFound(f"split file {args.split_file} does not exist or is not a file")
    folder_options = {"cache": not args.no_cache, "cache_dir": args.cache_dir,
                      "workers": args.workers} if is_folder else {}
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr)

    data = load_dataset(args.name, data_dir=getattr(args, "data_dir", None), input_shape=shape,
                        download=False, progress=sys.stderr.isatty(), report=say,
                        **folder_options)
    if args.action == "split":
        path = write_split_file(args.file, data, val_size=args.val_size,
                                test_size=args.test_size, seed=args.seed,
                                overwrite=args.overwrite)
        split = read_split_file(path, data)
        counts = [len(split.train_images), len(split.val_images),
                  0 if split.test_images is None else len(split.test_images)]
        print(f"{path}: train {counts[0]}, validation {counts[1]}, test {counts[2]} images "
              f"(stratified, seed {args.seed})")
        return 0
    if is_folder and args.split_file:
        data = read_split_file(args.split_file, data, report=say)
    if args.name in dataset_names():
        found = locate(args.name, args.data_dir)
        print(f"files in {next(iter(found.values())).parent}")
    print(f"{data.name}: images {'x'.join(map(str, data.input_shape))}, "
          f"{data.num_classes} classes")
    splits = [("train", data.train_images, data.train_labels)]
    if data.val_images is not None:
        splits.append(("validation", data.val_images, data.val_labels))
    if data.test_images is not None:
        splits.append(("test", data.test_images, data.test_labels))
    for split, images, labels in splits:
        counts = np.bincount(labels, minlength=data.num_classes)
        pixels = images.astype(np.float64) / 255.0 if images.size < 10**8 else None
        stats = f", pixel mean {pixels.mean():.4f}, std {pixels.std():.4f}" if (
            pixels is not None) else ""
        print(f"  {split}: {len(images)} images, per class {counts.min()}..{counts.max()}{stats}")
    print("  classes: " + ", ".join(data.class_names))
    _print_split_table(data, args.val_size, args.seed,
                       "split file " + args.split_file if is_folder and args.split_file
                       else None)
    if is_folder:
        _print_folder_details(args, shape, lines)
    return 0


def _print_folder_details(args: argparse.Namespace, shape, lines: list[str]) -> None:
    """Sizes and modes found in the files (a sample of a large folder), unreadable files and the
    state of the cache."""
    from collections import Counter

    from PIL import Image

    from cnnkit.data.cache import load_image_folder

    folder = load_image_folder(args.name[len("imagefolder:"):], shape or (1, 28, 28),
                               cache=not args.no_cache, cache_dir=args.cache_dir, workers=1)
    files = folder.files
    step = max(1, len(files) // INFO_SAMPLE)
    sample = files[::step]
    sizes, modes = Counter(), Counter()
    for name in sample:
        with Image.open(folder.listing.root / name) as image:
            sizes[f"{image.size[0]}x{image.size[1]}"] += 1
            modes[f"{image.format} {image.mode}"] += 1
    where = (f"every one of the {len(files)} readable files" if step == 1
             else f"a sample of {len(sample)} of the {len(files)} readable files")
    print(f"  sizes and modes in {where} (width x height: count):")
    print("    sizes: " + ", ".join(f"{size} {count}" for size, count in sizes.most_common(8))
          + (f", and {len(sizes) - 8} other sizes" if len(sizes) > 8 else ""))
    print("    modes: " + ", ".join(f"{mode} {count}" for mode, count in modes.most_common()))
    print(f"  unreadable files: {len(folder.unreadable)}")
    for line in folder.unreadable[:10]:
        print(f"    {line}")
    if len(folder.unreadable) > 10:
        print(f"    and {len(folder.unreadable) - 10} more")
    if folder.cache_path is None:
        print(f"  cache: {folder.cache_state}")
    else:
        built = any(line.startswith("cache:") for line in lines)
        state = "written now" if built else "up to date, opened"
        print(f"  cache: {state}, {folder.cache_path}")


def _run_cache(args: argparse.Namespace) -> int:
    if args.cache_action == "list":
        entries = list_cache(args.cache_dir)
        where = args.cache_dir or default_cache_dir()
        if not entries:
            print(f"no cached image folders in {where}")
        for entry in entries:
            shape = "x".join(map(str, entry.input_shape)) or "?"
            size_mib = entry.bytes / 2**20
            note = f"  ({entry.problem})" if entry.problem else ""
            print(f"{entry.source}  {shape}  {entry.images} images  {size_mib:.1f} MiB  "
                  f"cnnkit {entry.version}  {entry.path}{note}")
        return 0
    removed = clear_cache(args.cache_dir)
    print(f"removed {len(removed)} cached image folder(s) from "
          f"{args.cache_dir or default_cache_dir()}")
    return 0


def _print_split_table(data, val_size: int | float | None, seed: int,
                       given: str | None) -> None:
    """Images per class in the split that ``cnnkit train`` makes with these settings, or in the
    split the data set comes with."""
    if data.val_labels is not None:
        columns = [("train", data.train_labels), ("validation", data.val_labels)]
        title = f"split given by the {given or 'folder'}"
    else:
        split = split_train_validation(data.train_labels, val_size, seed=seed)
        columns = [("train", data.train_labels[split.train]),
                   ("validation", data.train_labels[split.validation])]
        title = f"split made by cnnkit train (stratified, seed {seed})"
    if data.test_labels is not None:
        columns.append(("test", data.test_labels))
    counts = [np.bincount(labels, minlength=data.num_classes) for _, labels in columns]
    width = max(len("class"), *(len(name) for name in data.class_names))
    print(f"  {title}:")
    print("  " + f"{'class':<{width}}" + "".join(f"{name:>12}" for name, _ in columns))
    for index, name in enumerate(data.class_names):
        print("  " + f"{name:<{width}}" + "".join(f"{c[index]:>12}" for c in counts))
    print("  " + f"{'total':<{width}}" + "".join(f"{c.sum():>12}" for c in counts))
