"""``cnnkit convert-checkpoint``: turn a cnnkit 0.1 ``checkpoint.pt`` into safetensors."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-checkpoint",
        help="convert an earlier checkpoint.pt (torch.save) to the safetensors format",
        description=(
            "Read a checkpoint written by cnnkit 0.1 (checkpoint.pt or best.pt, or a run folder "
            "holding them) without running code from it (torch.load with weights_only), and "
            "write checkpoint.safetensors / best.safetensors beside it. Needs PyTorch. "
            "Example: cnnkit convert-checkpoint runs/fashion"
        ),
    )
    parser.add_argument("source", metavar="OLD.pt|RUN_DIR")
    parser.add_argument("--out", metavar="NEW.safetensors",
                        help="the new file (one file only; default: beside the old one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing safetensors checkpoint")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.engines.base import resolve_engine
    from cnnkit.engines.legacy import convert_checkpoint

    resolve_engine("torch")  # reading the old format needs PyTorch: say so in one line
    for old, new in convert_checkpoint(args.source, args.out, overwrite=args.overwrite):
        print(f"{old} -> {new}")
    return 0
