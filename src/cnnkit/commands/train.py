"""``cnnkit train``: train an architecture on a data set, with checkpoints and resume."""

from __future__ import annotations

import argparse
import os
import sys

from cnnkit.errors import InvalidArgument

# Options forwarded to every process when --nproc/--nnodes start torchrun: (flag, dest).
_VALUE_OPTIONS = (
    ("--dataset", "dataset"), ("--arch", "arch"), ("--input", "input"),
    ("--epochs", "epochs"), ("--batch-size", "batch_size"), ("--lr", "lr"),
    ("--lr-scaling", "lr_scaling"), ("--warmup-epochs", "warmup_epochs"),
    ("--schedule", "schedule"), ("--val-size", "val_size"), ("--train-limit", "train_limit"),
    ("--seed", "seed"), ("--device", "device"), ("--precision", "precision"),
    ("--loader", "loader"), ("--data-dir", "data_dir"), ("--on-error", "on_error"),
    ("--out", "out"), ("--resume", "resume"), ("--threads", "threads"),
)
_SWITCHES = (
    ("--no-channels-last", "no_channels_last"), ("--no-fused", "no_fused"),
    ("--compile", "compile"), ("--no-deterministic", "no_deterministic"),
    ("--overwrite", "overwrite"), ("--quiet", "quiet"),
)


def validation_size(text: str) -> int | float:
    """A count (``10000``) or a fraction (``0.1``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a count such as 10000 or a fraction such as 0.1, got {text!r}"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a CNN (the tutorial's by default) with checkpoints, metrics and resume",
        description=(
            "Train an architecture on a data set; defaults are the tutorial's (its CNN, 20 "
            "epochs, batch 64, Adam lr 1e-3, a sixth of the training images held out for "
            "validation, drawn per class). Example: cnnkit train --dataset fashion-mnist "
            "--epochs 5 --out runs/fashion"
        ),
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="mnist, fashion-mnist, synthetic-digits (default) or "
                      "imagefolder:PATH")
    data.add_argument("--data-dir", help="a folder searched first for data files")
    data.add_argument("--input", metavar="CxHxW", help="image folders: resize to this shape")
    data.add_argument("--val-size", type=validation_size,
                      help="validation images: a count or a fraction (default: a sixth, "
                      "10000 of 60000)")
    data.add_argument("--train-limit", type=int, help="use at most this many training images")
    data.add_argument("--on-error", choices=("skip", "raise"),
                      help="image folders: skip (default) or refuse unreadable files")
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--arch", help="'tutorial' (default) or a JSON spec file")
    model.add_argument("--epochs", type=int, help="passes over the training set (default 20)")
    model.add_argument("--batch-size", type=int, help="global batch size (default 64)")
    model.add_argument("--lr", type=float, help="Adam learning rate at batch 64 (default 1e-3)")
    model.add_argument("--lr-scaling", choices=("none", "linear", "sqrt"),
                       help="scale lr with batch-size/64 (default none)")
    model.add_argument("--warmup-epochs", type=float,
                       help="linear learning-rate warm-up, in epochs (default 0)")
    model.add_argument("--schedule", choices=("constant", "cosine"),
                       help="learning rate after the warm-up (default constant)")
    model.add_argument("--seed", type=int, help="random seed (default 1)")
    speed = parser.add_argument_group("hardware and speed")
    speed.add_argument("--device", help="auto (default: CUDA, MPS, then CPU), cpu, cuda, cuda:N")
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                       help="autocast precision (default auto: bf16 where the hardware has it)")
    speed.add_argument("--loader", choices=("auto", "resident", "stream"),
                       help="keep the data on the device or stream it (default auto)")
    speed.add_argument("--no-channels-last", action="store_true",
                       help="keep the default NCHW memory format")
    speed.add_argument("--no-fused", action="store_true", help="do not use the fused Adam")
    speed.add_argument("--compile", action="store_true",
                       help="torch.compile the model (costs compile time; pays on long runs)")
    speed.add_argument("--no-deterministic", action="store_true",
                       help="allow non-deterministic GPU kernels")
    speed.add_argument("--threads", type=int, help="CPU threads per process")
    runs = parser.add_argument_group("run folder")
    runs.add_argument("--out", help="run folder for checkpoints, metrics and curves")
    runs.add_argument("--resume", metavar="RUN_DIR",
                      help="continue a run after its last complete epoch")
    runs.add_argument("--overwrite", action="store_true",
                      help="replace the files of an earlier run in --out")
    runs.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    multi = parser.add_argument_group("several processes (started through torchrun)")
    multi.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    multi.add_argument("--nnodes", type=int, default=1, help="machines taking part")
    multi.add_argument("--node-rank", type=int, default=0, help="this machine's index")
    multi.add_argument("--master-addr", help="address of machine 0 (several machines)")
    multi.add_argument("--master-port", type=int, help="port on machine 0 (default 29500)")
    parser.set_defaults(handler=run)


def _forward_argv(args: argparse.Namespace) -> list[str]:
    argv = []
    for flag, dest in _VALUE_OPTIONS:
        value = getattr(args, dest)
        if value is not None:
            argv += [flag, str(value)]
    for flag, dest in _SWITCHES:
        if getattr(args, dest):
            argv.append(flag)
    return argv


def run(args: argparse.Namespace) -> int:
    from cnnkit.engines import distributed

    if args.nproc < 1 or args.nnodes < 1:
        raise InvalidArgument(f"--nproc and --nnodes must be at least 1, got {args.nproc}, "
                           f"{args.nnodes}")
    if (args.nproc > 1 or args.nnodes > 1) and "WORLD_SIZE" not in os.environ:
        return distributed.launch(
            _forward_argv(args), args.nproc, nnodes=args.nnodes, node_rank=args.node_rank,
            master_addr=args.master_addr, master_port=args.master_port,
        )

    import torch

    from cnnkit.engines.checkpoint import load_checkpoint
    from cnnkit.engines.training import TrainConfig, train

    if args.threads is not None:
        if args.threads < 1:
            raise InvalidArgument(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    given = {
        "dataset": args.dataset, "arch": args.arch, "input_shape": args.input,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "lr_scaling": args.lr_scaling, "warmup_epochs": args.warmup_epochs,
        "schedule": args.schedule, "val_size": args.val_size, "train_limit": args.train_limit,
        "seed": args.seed, "device": args.device, "precision": args.precision,
        "loader": args.loader, "data_dir": args.data_dir, "on_error": args.on_error,
        "channels_last": False if args.no_channels_last else None,
        "fused_optimizer": False if args.no_fused else None,
        "compile": True if args.compile else None,
        "deterministic": False if args.no_deterministic else None,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if args.resume:
        if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
            raise InvalidArgument("--resume continues the run in its own folder; leave out --out")
        config = TrainConfig.from_dict({**load_checkpoint(args.resume)["config"], **given})
        run_dir = args.resume
    else:
        if not args.out:
            raise InvalidArgument("--out RUN_DIR is needed (or --resume RUN_DIR)")
        config = TrainConfig(**given)
        run_dir = args.out
    quiet = args.quiet
    result = train(
        config, run_dir, resume=bool(args.resume), overwrite=args.overwrite,
        progress=not quiet and sys.stderr.isatty(),
        log=None if quiet else (lambda line: print(line, flush=True)),
    )
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main and not quiet:
        print(f"run folder: {result.run_dir} (checkpoint.pt, best.pt, metrics.csv, curves.png)")
    return 0
