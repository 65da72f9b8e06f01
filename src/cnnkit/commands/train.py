"""``cnnkit train``: train an architecture on a data set, with checkpoints and resume.

The options are derived from the fields of :class:`cnnkit.engines.config.TrainConfig` (their
metadata holds the help text, group and flag), so the configuration is defined in one place.
With ``--nproc``/``--nnodes``/``--max-restarts`` the command starts itself under torchrun
(:mod:`cnnkit.engines.launch`); the started processes read the configuration this process
validated from a JSON file (``--config``) instead of re-spelling its flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import typing
from pathlib import Path
from typing import TYPE_CHECKING

from cnnkit.engines.config import TrainConfig
from cnnkit.engines.launch import DEFAULT_RDZV_TIMEOUT, LaunchPlan, launch
from cnnkit.engines.recipes import apply_recipe
from cnnkit.errors import BadFile, InvalidArgument, NotFound
from cnnkit.runfolder import CONFIG_NAME, RunFolder

if TYPE_CHECKING:
    from cnnkit.engines.checkpoint import Checkpoint

#: Options of the configuration that only the PyTorch engine uses; a resumed run that switches to
#: the NumPy engine drops the saved values it did not give again.
_TORCH_ONLY = ("device", "precision", "loader", "compile")


def _flag(item: dataclasses.Field) -> str:
    if item.metadata["flag"]:
        return item.metadata["flag"]
    name = item.name.replace("_", "-")
    return f"--no-{name}" if item.default is True else f"--{name}"


def _options() -> list[dataclasses.Field]:
    """The fields of :class:`TrainConfig` that are command-line options."""
    return [item for item in dataclasses.fields(TrainConfig) if item.metadata]


class _ListRecipes(argparse.Action):
    """``--list-recipes``: print the recipes and stop, like ``--help``."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from cnnkit.engines.recipes import recipe_lines

        print("\n".join(recipe_lines()))
        parser.exit()


def add_config_options(parser: argparse.ArgumentParser,
                       groups: tuple[str, ...] | None = None) -> None:
    """One option per :class:`TrainConfig` field (of the option groups ``groups``, or all);
    unset options stay None (keep the default)."""
    made: dict[str, argparse._ArgumentGroup] = {}
    hints = typing.get_type_hints(TrainConfig)
    for item in _options():
        meta = item.metadata
        if groups is not None and meta["group"] not in groups:
            continue
        group = made.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        if hints[item.name] is bool:
            group.add_argument(_flag(item), dest=item.name, action="store_const",
                               const=not item.default, help=meta["help"])
            continue
        group.add_argument(_flag(item), dest=item.name, type=meta["parse"], help=meta["help"],
                           choices=meta["choices"], metavar=meta["metavar"])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a CNN (the tutorial's by default) with checkpoints, metrics and resume",
        description=(
            "Train an architecture on a data set with the PyTorch or the NumPy engine; defaults "
            "are the tutorial's (MNIST when it is on disk or can be downloaded, otherwise "
            "synthetic digits, the first line saying which and why; its CNN, 20 epochs, batch "
            "64, Adam lr 1e-3, a sixth of the training images held out for validation, drawn "
            "per class). Example: cnnkit train --dataset fashion-mnist --epochs 5 --out "
            "runs/fashion"
        ),
    )
    parser.add_argument("--config", metavar="CONFIG.json",
                        help="start from a saved configuration (a run's config.json); the "
                        "options given on the command line override it (default: none)")
    parser.add_argument("--list-recipes", action=_ListRecipes,
                        help="print the named recipes (--recipe), their settings and measured "
                        "results, and stop")
    add_config_options(parser)
    parser.add_argument("--threads", type=int, help="torch: CPU threads per process (default: "
                        "PyTorch's choice)")
    runs = parser.add_argument_group("run folder")
    # Exactly one of the two names the run folder; argparse's usage line says so.
    folder = runs.add_mutually_exclusive_group(required=True)
    folder.add_argument("--out", metavar="RUN_DIR",
                        help="new run folder for checkpoints, metrics and curves (required, "
                        "unless --resume)")
    folder.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a run in its folder after its last complete epoch (with "
                        "either engine)")
    runs.add_argument("--overwrite", action="store_true",
                      help="replace the files of an earlier run in --out")
    runs.add_argument("--quiet", action="store_true",
                      help="no progress bar or epoch lines: only the final result line")
    runs.add_argument("--no-report", action="store_true",
                      help="do not write report.html at the end (cnnkit report RUN writes it)")
    multi = parser.add_argument_group(
        "several processes and machines (torch engine, through torchrun's elastic launcher)")
    multi.add_argument("--nproc", type=int, default=1,
                       help="processes on this machine (default: 1)")
    multi.add_argument("--nnodes", default="1", metavar="N|MIN:MAX",
                       help="machines taking part; MIN:MAX goes on while at least MIN of them "
                       "are there (default: 1)")
    multi.add_argument("--node-rank", type=int, metavar="R",
                       help="0 on the machine that hosts the rendezvous at --rdzv-endpoint, "
                       "1.. on the others (default: decided from the endpoint's host name)")
    multi.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="where the machines meet: machine 0's address and a free port, the "
                       "same on every machine (needed with --nnodes above 1; default: none)")
    multi.add_argument("--rdzv-id", metavar="ID",
                       help="the job's name, the same on every machine (default: made from "
                       "--rdzv-endpoint and the run folder; on one machine a fresh one)")
    multi.add_argument("--rdzv-timeout", type=int, default=DEFAULT_RDZV_TIMEOUT,
                       metavar="SECONDS", help="give up, with exit status 2, when not every "
                       f"machine has joined after this long (default {DEFAULT_RDZV_TIMEOUT})")
    multi.add_argument("--max-restarts", type=int, default=0, metavar="N",
                       help="after a process fails, restart them all from the last checkpoint, "
                       "up to N times (default 0)")
    parser.set_defaults(handler=run)


def _read_config_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise NotFound(f"no configuration file at {file}")
    if file.stat().st_size > 2**20:
        raise BadFile(f"{file} is larger than 1 MiB; it is not a training configuration")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadFile(f"{file} is not a JSON training configuration") from None


def build_config(args: argparse.Namespace, resumed: Checkpoint | None = None) -> TrainConfig:
    """The run's configuration: the ``resumed`` checkpoint's or ``--config``'s, overridden by the
    options."""
    given = {item.name: getattr(args, item.name) for item in _options()
             if getattr(args, item.name) is not None}
    base = dict(resumed.config) if resumed is not None else {}
    if args.config:
        saved = _read_config_file(args.config)
        if not isinstance(saved, dict):
            raise BadFile(f"{args.config} must hold a JSON object (a run's {CONFIG_NAME})")
        base.update(saved)
    if given.get("engine") == "numpy":
        base = {key: value for key, value in base.items() if key not in _TORCH_ONLY}
    recipe = given.pop("recipe", None)
    if recipe is not None and resumed is not None:
        if recipe != resumed.config.get("recipe"):
            raise InvalidArgument(
                f"--recipe {recipe} cannot change the recipe of a resumed run (it was trained "
                f"with {resumed.config.get('recipe')!r}); give single options to change its "
                "settings")
        recipe = None  # its settings are in the checkpoint's configuration already
    if recipe is None:
        return TrainConfig.from_dict({**base, **given})
    # A saved configuration (--config), then the recipe's values, then the options given.
    base.pop("recipe_overrides", None)
    return TrainConfig.from_dict({**base, **apply_recipe(recipe, given)})


def _launch_plan(args: argparse.Namespace) -> LaunchPlan | None:
    """How torchrun is to start this run, or None for one process started here (and for each
    process torchrun started)."""
    plan = LaunchPlan(nproc=args.nproc, nnodes=args.nnodes, node_rank=args.node_rank,
                      rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id,
                      rdzv_timeout=args.rdzv_timeout, max_restarts=args.max_restarts)
    if plan.nproc > 1 or plan.max_nodes > 1 or plan.max_restarts > 0:
        return None if "WORLD_SIZE" in os.environ else plan
    if args.rdzv_endpoint or args.rdzv_id or args.rdzv_timeout != DEFAULT_RDZV_TIMEOUT:
        raise InvalidArgument("--rdzv-endpoint, --rdzv-id and --rdzv-timeout are for runs "
                              "through torchrun: give --nproc, --nnodes or --max-restarts")
    return None


def run(args: argparse.Namespace) -> int:
    plan = _launch_plan(args)
    if args.threads is not None and args.threads < 1:
        raise InvalidArgument(f"--threads must be at least 1, got {args.threads}")
    from cnnkit.engines.checkpoint import load_checkpoint

    # A resumed run's checkpoint is read once: for its configuration here, and for its state by
    # the training loop.
    if args.resume:  # what a killed run left is tidied (and a run it set aside put back)
        note = RunFolder(args.resume).recover()
        if note:
            print(note)
    resumed = load_checkpoint(args.resume) if args.resume else None
    config = build_config(args, resumed)
    if plan is not None and config.engine == "numpy":
        raise InvalidArgument("the numpy engine runs in one process, without torchrun; leave "
                              "out --nproc, --nnodes and --max-restarts or use --engine torch")
    if plan is not None:
        return _launch(args, config, plan.with_job_id(args.out or args.resume))

    from cnnkit.engines.tensorboard import observers_for
    from cnnkit.engines.training import train

    if args.threads is not None and config.engine != "numpy":
        import torch

        torch.set_num_threads(args.threads)
    quiet = args.quiet
    observers = observers_for(config)
    try:
        result = train(
            config, args.resume or args.out, resume=resumed is not None, checkpoint=resumed,
            overwrite=args.overwrite, progress=not quiet and sys.stderr.isatty(),
            log=None if quiet else (lambda line: print(line, flush=True)), observers=observers,
        )
    finally:
        for observer in observers:
            observer.close()
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main and not args.no_report:
        _write_report(result, result.dataset)  # 'auto' resolved by training
    if is_main and not quiet:
        run_folder = RunFolder(result.run_dir)
        files = [run_folder.checkpoint, run_folder.best, run_folder.metrics, run_folder.curves]
        if not args.no_report:
            files.append(run_folder.report)
        print(f"run folder: {result.run_dir} (trained by the {result.engine} engine: "
              f"{', '.join(path.name for path in files)})")
    elif is_main:
        print(_result_line(result))
    return 0


def _result_line(result) -> str:
    """The one line ``--quiet`` keeps: the final accuracy and where the run is."""
    last = result.history[-1] if result.history else {}
    if result.test_accuracy is not None:
        score = f"test accuracy {100 * result.test_accuracy:.2f}%"
    elif last.get("val_accuracy") is not None:
        score = f"validation accuracy {100 * last['val_accuracy']:.2f}% (no test split)"
    else:
        score = "no test split"
    return f"{score}; run folder: {result.run_dir}"


def _write_report(result, dataset: str) -> None:
    """The run's HTML report, on the engine that trained it, from the test pass that training
    made (a run of several processes, or one without a test split, makes its own)."""
    from cnnkit.report import TestPass, write_report

    outputs = result.test_outputs
    test_pass = None if outputs is None else TestPass(
        dataset, "test", outputs["images"], outputs["labels"], outputs["probabilities"],
        outputs["features"])
    write_report(result.run_dir, engine=result.engine, test_pass=test_pass)


def _launch(args: argparse.Namespace, config: TrainConfig, plan: LaunchPlan) -> int:
    """Start this command under torchrun as ``plan`` says; each process reads ``config`` from a
    JSON file. When the job is over, the lock its failed attempts kept is released."""
    with tempfile.TemporaryDirectory(prefix="cnnkit-train-") as folder:
        path = RunFolder(folder).config  # named as a run's own configuration
        path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
        argv = ["--config", str(path)]
        if args.resume:
            argv += ["--resume", args.resume]
        else:
            argv += ["--out", args.out]
        if args.threads is not None:
            argv += ["--threads", str(args.threads)]
        argv += [flag for flag, on in (("--overwrite", args.overwrite),
                                       ("--quiet", args.quiet),
                                       ("--no-report", args.no_report)) if on]
        try:
            launch(argv, plan)
        finally:
            RunFolder(args.out or args.resume).end_job(plan.rdzv_id)
    return 0
