"""``cnnkit evaluate``: accuracy, per-class precision/recall and confusion matrix."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cnnkit.commands.options import add_data_dir_option, add_engine_options
from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy, per-class precision and recall, confusion matrix of a trained model",
        description=(
            "Evaluate a run folder's checkpoint (or a checkpoint file) on a data set's test "
            "split; the confusion matrix is printed and saved as a PNG. "
            "Example: cnnkit evaluate runs/fashion --dataset fashion-mnist"
        ),
    )
    parser.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    parser.add_argument("--dataset", help="data set (default: the one the model was trained on)")
    add_data_dir_option(parser)
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="which split of the data set to evaluate on (default: test; a "
                        "data set without a test split is evaluated on all of its images)")
    parser.add_argument("--best", action="store_true", help="use the run's best checkpoint")
    parser.add_argument("--figure", help="confusion-matrix PNG (default: confusion-SPLIT.png "
                        "in the run folder, or next to the checkpoint, refreshed on every "
                        "evaluation)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --figure file")
    add_engine_options(parser, device="auto")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.engines.figures import save_confusion_matrix
    from cnnkit.evaluation import evaluate

    source = Path(args.source)
    # The run's own figure is refreshed by every evaluation; a file the user named is only
    # replaced with --overwrite.
    if args.figure:
        figure, replace = Path(args.figure), args.overwrite
    else:
        figure, replace = RunFolder.of(source).confusion_figure(args.split), True
    if figure.exists() and not replace:
        raise AlreadyExists(f"{figure} exists; pass --overwrite or choose another --figure")
    if not os.access(figure.parent if str(figure.parent) else ".", os.W_OK) or (
        not figure.parent.is_dir()
    ):
        raise PermissionError(f"cannot write the figure into {figure.parent}")
    result = evaluate(source, args.dataset, split=args.split, data_dir=args.data_dir,
                      device=args.device, best=args.best, engine=args.engine)
    for warning in result.warnings:
        print(f"cnnkit: warning: {warning}", file=sys.stderr)
    print(result.format())
    model = (f"{'best' if args.best else 'last'} checkpoint" if source.is_dir()
             else source.name)
    title = f"{result.dataset} ({result.split}), {model}: {100 * result.accuracy:.2f}%"
    if result.warnings:
        title += "\n(the data set's class names are not the model's)"
    save_confusion_matrix(result.confusion, result.class_names, figure, title=title,
                          overwrite=replace)
    print(f"confusion matrix saved to {figure}")
    return 0
