"""``cnnkit report``: a run's self-contained HTML report."""

from __future__ import annotations

import argparse

from cnnkit.commands.options import add_data_dir_option, add_engine_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a run's self-contained HTML report (RUN/report.html)",
        description=(
            "Write one HTML file that needs nothing else: configuration, architecture, "
            "learning curves, per-class precision/recall/F1, a clickable confusion matrix, "
            "the most confidently wrong images, first-layer kernels, feature maps, attributions "
            "and a PCA map of the features. RUN/report.html is refreshed; a file named with -o "
            "is only replaced with --overwrite. Example: cnnkit report runs/fashion"
        ),
    )
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write here instead (default: RUN_DIR/report.html)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing FILE named with -o")
    add_data_dir_option(parser)
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.report import write_report

    path = write_report(args.run, args.output, overwrite=args.overwrite,
                        data_dir=args.data_dir, device=args.device, engine=args.engine)
    print(f"report written to {path}")
    return 0
