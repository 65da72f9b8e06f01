"""``cnnkit predict``: classify image files and folders of them with a trained model."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from cnnkit._files import atomic_write, display_name
from cnnkit.commands.options import add_engine_options, add_invert_option, warning_line
from cnnkit.errors import AlreadyExists, InvalidArgument, NotFound


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify image files (or folders of them) with a trained checkpoint",
        description=(
            "Bring each image to the model's input (grayscale or RGB, padded to the model's "
            "aspect ratio with its background colour, resized, and inverted when its border "
            "is dark and the training images' background light, or the other way round) and "
            "print the most probable classes, or write them to a CSV file. A picture that "
            "looks unlike the training images gets a warning line on stderr. Folders are "
            "searched recursively. Example: cnnkit predict runs/fashion photos/ --csv "
            "predictions.csv"
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT|RUN_DIR")
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--top", type=int, default=3, help="classes given per image (default 3)")
    add_invert_option(parser)
    parser.add_argument("--csv", metavar="OUT.csv",
                        help="write one row per image (path, top classes and probabilities, "
                        "inverted, padded, warnings) instead of printing them (default: print "
                        "them)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    parser.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="unreadable files: list and skip them (default) or stop")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="images read and classified together (default 256)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar, summary or warning lines (warnings stay in --json "
                        "and --csv output)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def _check_csv(path: str, overwrite: bool) -> Path:
    """Refuse, before any work, a CSV file that would replace one or has no folder to go to."""
    target = Path(path)
    if target.is_dir():
        raise InvalidArgument(f"--csv {path} is a folder; name a file such as {path}/out.csv")
    if target.exists() and not overwrite:
        raise AlreadyExists(f"--csv {path} already exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise NotFound(f"the folder of --csv {path} does not exist; create it first")
    return target


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """``text`` safe for a spreadsheet cell: names that are not UTF-8 shown as everywhere
    (``\\xNN``), and a cell that would start a formula prefixed with a single quote (OWASP's
    rule; every cell is also quoted).

    >>> csv_cell("=HYPERLINK(1)"), csv_cell("cat")
    ("'=HYPERLINK(1)", 'cat')
    """
    text = display_name(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _write_csv(path: Path, results, top: int, overwrite: bool) -> None:
    header = ["image"]
    for rank in range(1, top + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    header += ["inverted", "padded", "warnings"]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(header)
            for result in results:
                row = [csv_cell(result.path)]
                for name, probability in zip(result.classes, result.probabilities,
                                             strict=True):
                    row += [csv_cell(name), f"{probability:.6f}"]
                writer.writerow([*row, int(result.inverted), int(result.padded),
                                 csv_cell("; ".join(result.warnings))])

    atomic_write(path, write, overwrite=overwrite)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluation import predict

    if args.csv and args.json:
        raise InvalidArgument("--csv and --json are two outputs; choose one")
    target = _check_csv(args.csv, args.overwrite) if args.csv else None
    quiet = args.quiet
    show_bar = not quiet and sys.stderr.isatty()
    bar = None
    skipped: list[str] = []

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="img", desc="predict", leave=False)
        bar.update(done)

    try:
        results = predict(args.checkpoint, args.images, top_k=args.top, invert=args.invert,
                          device=args.device, engine=args.engine, batch_size=args.batch_size,
                          on_error=args.on_error, report=skipped.append,
                          progress=progress if show_bar else None)
    finally:
        if bar is not None:
            bar.close()
    if not quiet:  # listed once the bar is gone (and not when nothing could be read at all)
        for line in skipped:
            print(line, file=sys.stderr)
        for result in results:
            if result.warnings:
                print(warning_line(result.path, result.warnings), file=sys.stderr)
    if target is not None:
        # predict returns at least one result; every one has the same number of classes
        _write_csv(target, results, len(results[0].classes), args.overwrite)
    elif args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        for result in results:
            notes = [note for note, done in (("inverted", result.inverted),
                                              ("padded", result.padded)) if done]
            note = f" ({', '.join(notes)})" if notes else ""
            ranked = ", ".join(
                f"{name} {100 * probability:.1f}%"
                for name, probability in zip(result.classes, result.probabilities, strict=True)
            )
            print(f"{result.path}{note}: {ranked}")
    if not quiet and not args.json:
        _summary(results, skipped, target)
    return 0


def _summary(results, skipped: list[str], target: Path | None) -> None:
    """What was done, in a few lines: inversions, padding, skipped files, the CSV."""
    inverted = sum(result.inverted for result in results)
    padded = sum(result.padded for result in results)
    if inverted:
        print(f"inverted {inverted} of {len(results)} image(s) to match the training images' "
              "background (their border was on the other side of one half)")
    if padded:
        print(f"padded {padded} of {len(results)} image(s) to the model's aspect ratio with "
              "their background colour before resizing")
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s) (listed above)")
    if target is not None:
        print(f"{len(results)} image(s) classified: {target}")
