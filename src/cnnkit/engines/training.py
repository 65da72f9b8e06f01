"""Training a spec with PyTorch: the run folder, the loop, checkpoints and resume.

The loop reads top to bottom in phases: set up processes and device, load and split the data,
build the model and optimizer (or restore them from the last checkpoint), then for each epoch
train, validate, and save. A run folder holds::

    config.json     the full configuration
    metrics.csv     one row per epoch: losses, accuracies, learning rate, time, throughput
    checkpoint.pt   the last complete epoch (weights, optimizer, epoch, history, config)
    best.pt         the epoch with the best validation accuracy so far
    curves.png      loss and accuracy curves (drawn when the run ends)

Reproducibility: the weights are initialised from ``seed``; the shuffling order of epoch ``e`` is
drawn from ``(seed, e)`` and the dropout masks from ``(seed, e, rank)``, so a run resumed after
epoch ``e`` draws exactly the numbers an uninterrupted run draws. On the CPU the same seed gives
bit-identical results; on CUDA ``deterministic=True`` asks PyTorch for deterministic kernels.

With several processes (torchrun), each process trains on its shard of every global batch and
DistributedDataParallel averages the gradients; the loss of each process is scaled so that the
average equals the loss of the whole global batch, which makes an N-process run follow the
one-process run with the same global batch. Only rank 0 prints and writes files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit._validate import check_choice, check_int
from cnnkit.arch import Architecture, load_architecture, parse_input_shape, trace
from cnnkit.budget import FLOAT32_BYTES, check_disk, check_memory, training_memory
from cnnkit.data import Dataset, load_dataset, split_train_validation
from cnnkit.engines import distributed
from cnnkit.engines.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from cnnkit.engines.loaders import LOADER_MODES, BatchLoader
from cnnkit.engines.model import (
    PRECISIONS,
    autocast_dtype,
    build_model,
    choose_device,
    resolve_precision,
)
from cnnkit.errors import BadFile, InvalidArgument, InvalidType, TrainingError
from cnnkit.runfolder import RunFolder

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "evaluate_loader", "train"]

SCHEDULES = ("constant", "cosine")
LR_SCALINGS = ("none", "linear", "sqrt")
#: The batch size the tutorial's learning rate was chosen for; ``lr_scaling`` is relative to it.
BASE_BATCH_SIZE = 64
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_seconds",
    "images_per_second",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run; it travels inside every checkpoint.

    The defaults are the tutorial's: its CNN, 20 epochs, batch 64, Adam with learning rate 1e-3,
    a sixth of the training images (10,000 of MNIST's 60,000) held out for validation, drawn
    at random within each class (seeded).
    """

    dataset: str = "synthetic-digits"  # mnist, fashion-mnist, synthetic-digits, imagefolder:PATH
    arch: str = "tutorial"  # a built-in name or a JSON spec file
    input_shape: tuple[int, int, int] | None = None  # image folders are resized to it
    epochs: int = 20
    batch_size: int = 64  # global: summed over processes
    lr: float = 1e-3  # Adam's learning rate at batch 64 (see lr_scaling)
    lr_scaling: str = "none"  # none, linear or sqrt in batch_size / 64
    warmup_epochs: float = 0.0  # linear warm-up from lr/10 over this many epochs
    schedule: str = "constant"  # constant, or cosine decay to zero after the warm-up
    val_size: int | float | None = None  # a count, a fraction, or None for a sixth
    train_limit: int | None = None  # use at most this many training images (after the split)
    seed: int = 1
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    precision: str = "auto"  # auto, fp32, bf16, fp16 (autocast)
    channels_last: bool = True  # channels-last memory format for convolutions
    fused_optimizer: bool = True  # one fused Adam kernel per step where PyTorch has it
    compile: bool = False  # torch.compile the model (pays off only for long runs)
    loader: str = "auto"  # auto, resident (data on the device) or stream
    deterministic: bool = True
    data_dir: str | None = None
    on_error: str = "skip"  # image folders: skip or refuse unreadable files

    def __post_init__(self) -> None:
        if self.input_shape is not None:
            self.input_shape = parse_input_shape(self.input_shape)
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        if self.train_limit is not None:
            check_int(self.train_limit, "train_limit", minimum=1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise InvalidArgument(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.warmup_epochs, (int, float)) or self.warmup_epochs < 0:
            raise InvalidArgument(
                "warmup_epochs must be a number "
                f">= 0, got {self.warmup_epochs!r}"
            )
        check_choice(self.lr_scaling, "lr_scaling", LR_SCALINGS)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_choice(self.precision, "precision", PRECISIONS)
        check_choice(self.loader, "loader", LOADER_MODES)
        check_choice(self.on_error, "on_error", ("skip", "raise"))

    @property
    def base_lr(self) -> float:
        """The learning rate after scaling for the batch size."""
        ratio = self.batch_size / BASE_BATCH_SIZE
        factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]
        return self.lr * factor

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A configuration from its saved form; unknown keys are refused by name."""
        if not isinstance(data, dict):
            raise BadFile(f"a training configuration must be an object, got {type(data).__name__}")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadFile(f"the saved training configuration has unknown keys {unknown}")
        return cls(**data)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if data["input_shape"] is not None:
            data["input_shape"] = list(data["input_shape"])
        return data


@dataclass
class TrainResult:
    """What a run produced: its folder, metric history and the final test accuracy."""

    run_dir: Path
    history: list[dict] = field(default_factory=list)
    test_accuracy: float | None = None
    test_loss: float | None = None
    train_seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    loader: str = "resident"


def pixel_statistics(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of uint8 pixels in [0, 1] units, exact, from a histogram.

    >>> pixel_statistics(np.array([0, 255], dtype=np.uint8))
    (0.5, 0.5)
    """
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255.0
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    variance = float((counts * (values - mean) ** 2).sum() / total)
    return mean, max(math.sqrt(variance), 1e-6)


def _border_mean(images: np.ndarray) -> float:
    """Mean of the outermost pixels: low for white-on-black data sets such as MNIST."""
    border = np.concatenate(
        [images[..., 0, :].ravel(), images[..., -1, :].ravel(),
         images[..., :, 0].ravel(), images[..., :, -1].ravel()]
    )
    return float(border.mean()) / 255.0


def _lr_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimizer step ``step`` (counted from 0 over the whole run)."""
    base = config.base_lr
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return base * (0.1 + 0.9 * step / warmup)
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch - warmup
        progress = (step - warmup) / max(1, total)
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base


def evaluate_loader(
    model: torch.nn.Module,
    loader: BatchLoader,
    *,
    precision: str = "fp32",
    context: distributed.Context | None = None,
    collect: bool = False,
) -> dict:
    """Loss and accuracy of ``model`` over every batch of ``loader`` (gathered over processes).

    With ``collect`` the predicted and true labels are returned too (one process only).
    """
    context = context or distributed.Context()
    device = loader.device
    dtype = autocast_dtype(precision)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    predictions, truths = [], []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for batch in loader.batches():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(batch.images)
            logits = logits.float()
            predicted = logits.argmax(1)
            totals[0] += F.cross_entropy(logits, batch.labels, reduction="sum")
            totals[1] += (predicted == batch.labels).sum()
            totals[2] += len(batch.labels)
            if collect:
                predictions.append(predicted.cpu())
                truths.append(batch.labels.cpu())
    model.train(was_training)
    distributed.all_reduce_sum(totals, context)
    loss_sum, correct, count = totals.tolist()
    result = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1),
              "count": int(count)}
    if collect:
        result["predictions"] = torch.cat(predictions).numpy() if predictions else np.array([])
        result["labels"] = torch.cat(truths).numpy() if truths else np.array([])
    return result


def _metrics_csv(history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: row.get(key, "") for key in METRIC_COLUMNS})
    return buffer.getvalue()


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed the global RNGs (dropout) from (seed, epoch, rank) alone."""
    torch.manual_seed((seed * 1_000_003 + epoch) * 1_009 + rank)


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    evaluate_test: bool = True,
    on_epoch: Callable[[dict, torch.nn.Module], bool | None] | None = None,
) -> TrainResult:
    """Train ``config`` and write the run folder ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration.
    run_dir : path-like
        The run folder; it must not exist or be empty unless ``overwrite`` (or ``resume``).
    resume : bool
        Continue the run in ``run_dir`` after its last complete epoch. ``config`` must describe
        the same model (architecture, input shape, classes); a difference is refused by name.
        ``epochs`` may be raised to train longer.
    overwrite : bool
        Allow replacing the files of an earlier run in ``run_dir``.
    progress : bool
        Show a progress bar per epoch (rank 0 only).
    log : callable, optional
        Receives status lines (rank 0 only).
    evaluate_test : bool
        Evaluate the final model on the test split when the data set has one.
    on_epoch : callable, optional
        Called after each epoch (once its checkpoint is written) with the epoch's metrics row
        and the model; returning True ends the run there (used by the benchmark to stop at a
        target accuracy).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        When the loss becomes NaN or infinite; the last good checkpoint is kept.
    """
    if not isinstance(config, TrainConfig):
        raise InvalidType(f"config must be a TrainConfig, got {type(config).__name__}")
    run_dir = Path(run_dir)
    device = choose_device(config.device)
    context, device = distributed.setup(device)
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    finished = False
    try:
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        result = _train(config, run_dir, device, context, resume=resume, overwrite=overwrite,
                        progress=progress, log=log, evaluate_test=evaluate_test,
                        on_epoch=on_epoch)
        finished = True
        return result
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]
        distributed.shutdown(context, clean=finished)


def _train(
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    context: distributed.Context,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
    log: Callable[[str], None] | None,
    evaluate_test: bool,
    on_epoch: Callable[[dict, torch.nn.Module], bool | None] | None,
) -> TrainResult:
    def say(line: str) -> None:
        if log is not None and context.is_main:
            log(line)

    # Phase 1: check everything before the run folder is touched: the folder, the checkpoint to
    # resume, the data, the architecture against the data and against memory and disk.
    run = RunFolder(run_dir)
    saved = None
    if resume:
        if context.is_main:
            run.check_resumable(run_dir / CHECKPOINT_NAME)
        saved = load_checkpoint(run_dir)
    elif context.is_main:
        run.check_new(overwrite=overwrite)
    data = load_dataset(
        config.dataset, data_dir=config.data_dir, input_shape=config.input_shape,
        progress=progress and context.is_main, on_error=config.on_error,
        report=say,
    )
    split = split_train_validation(data.train_labels, config.val_size, seed=config.seed,
                                   train_limit=config.train_limit)
    val_images, val_labels = (data.train_images[split.validation],
                              data.train_labels[split.validation])
    train_images, train_labels = data.train_images[split.train], data.train_labels[split.train]
    arch = _architecture(config, saved)
    model_info = {
        "arch": arch.to_dict(),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "mean": None,
        "std": None,
        "background": None,
    }
    if saved is not None:
        check_compatible(saved["model_info"], model_info, f"the checkpoint in {run_dir}")
        model_info = saved["model_info"]
    else:
        model_info["mean"], model_info["std"] = pixel_statistics(train_images)
        model_info["background"] = "dark" if _border_mean(train_images) < 0.5 else "light"
    eval_batch = max(config.batch_size, 512)
    _check_budgets(arch, data, max(config.batch_size, eval_batch), run_dir, context)

    # Phase 2: the run folder: locked against a second writer; an earlier run set aside with
    # overwrite, removed only once this run's first checkpoint is written.
    if context.is_main:
        run.open(overwrite=overwrite and not resume)
    try:
        return _fit(config, run, device, context, arch=arch, saved=saved,
                    model_info=model_info, data=data, train=(train_images, train_labels),
                    validation=(val_images, val_labels), eval_batch=eval_batch,
                    progress=progress, say=say, evaluate_test=evaluate_test,
                    on_epoch=on_epoch)
    except BaseException:
        if context.is_main:
            run.restore()
        raise
    finally:
        if context.is_main:
            run.unlock()


def _architecture(config: TrainConfig, saved: dict | None) -> Architecture:
    """The run's architecture: the checkpoint's own when resuming, else ``config.arch``.

    A resumed run never reloads the spec file it was started with (it may have moved or
    changed); an ``arch`` different from the one saved in its configuration is loaded and
    compared with the checkpoint.
    """
    if saved is None:
        return load_architecture(config.arch)
    stored = load_architecture(saved["model_info"]["arch"])
    if config.arch != saved["config"].get("arch"):
        wanted = load_architecture(config.arch)
        check_compatible(saved["model_info"], {"arch": wanted.to_dict()}, "the checkpoint")
    return stored


def _check_budgets(
    arch: Architecture, data: Dataset, batch_size: int, run_dir: Path,
    context: distributed.Context,
) -> None:
    """Refuse a network that does not fit in memory, or whose checkpoints do not fit on disk."""
    rows = trace(arch, data.input_shape, data.num_classes)
    parameters = sum(row.parameters for row in rows)
    shapes = [data.input_shape] + [row.output_shape for row in rows]
    check_memory(
        training_memory(parameters, shapes, batch_size),
        f"training {arch.name!r} ({parameters:,} parameters) at batch {batch_size}",
        hint="choose a smaller architecture or --batch-size",
    )
    if context.is_main:
        # Weights and two Adam moments per checkpoint; the last and the best, each written
        # beside the file it replaces.
        check_disk(run_dir, 4 * 3 * FLOAT32_BYTES * parameters, "the run's checkpoints")


def _fit(
    config: TrainConfig,
    run: RunFolder,
    device: torch.device,
    context: distributed.Context,
    *,
    arch: Architecture,
    saved: dict | None,
    model_info: dict,
    data: Dataset,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    eval_batch: int,
    progress: bool,
    say: Callable[[str], None],
    evaluate_test: bool,
    on_epoch: Callable[[dict, torch.nn.Module], bool | None] | None,
) -> TrainResult:
    """Phases 3 to 7: build, train epoch by epoch with checkpoints, and test."""
    run_dir = run.path
    (train_images, train_labels), (val_images, val_labels) = train, validation
    val_count = len(val_labels)
    precision = resolve_precision(config.precision, device)
    loader_args = {"device": device, "mean": model_info["mean"], "std": model_info["std"],
                   "mode": config.loader, "channels_last": config.channels_last}
    train_loader = BatchLoader(train_images, train_labels, batch_size=config.batch_size,
                               rank=context.rank, world=context.world, **loader_args)
    val_loader = (
        BatchLoader(val_images, val_labels, batch_size=eval_batch, rank=context.rank,
                    world=context.world, **loader_args)
        if val_count else None
    )
    say(
        f"{config.dataset}: {len(train_images)} training, {val_count} validation images "
        f"({'x'.join(map(str, data.input_shape))}, {data.num_classes} classes); "
        f"device {device}, {context.world} process(es), precision {precision}, "
        f"data {train_loader.mode} on the device"
        + ("" if train_loader.mode == "resident" else " (streamed from host memory)")
    )

    # Phase 3: model and optimizer, fresh or from the checkpoint.
    torch.manual_seed(config.seed)
    model = build_model(arch, data.input_shape, data.num_classes).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = config.fused_optimizer and device.type in ("cuda", "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.base_lr, fused=fused or None)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    start_epoch, history, best_accuracy = 0, [], -1.0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if "scaler" in saved and precision == "fp16":
            scaler.load_state_dict(saved["scaler"])
        start_epoch, history = saved["epoch"], saved["history"]
        best_accuracy = saved.get("best_accuracy", -1.0)
        say(f"resuming after epoch {start_epoch} of {config.epochs}")
    raw_model = model
    if config.compile:
        model = torch.compile(model)
    if context.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if context.is_main:
        run.write_text(run.config, json.dumps(config.to_dict(), indent=2) + "\n")
        run.write_text(run.metrics, _metrics_csv(history))

    dtype = autocast_dtype(precision)
    steps_per_epoch = len(train_loader)
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        # Phase 4: one epoch of training.
        _seed_epoch(config.seed, epoch, context.rank)
        model.train()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
        bar = _progress_bar(progress and context.is_main, len(train_images), epoch, config.epochs)
        epoch_start = time.perf_counter()
        lr = config.base_lr
        for step, batch in enumerate(train_loader.batches(config.seed, epoch)):
            lr = _lr_at(config, epoch * steps_per_epoch + step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(batch.images)
            loss_sum = F.cross_entropy(logits.float(), batch.labels, reduction="sum")
            # DDP averages gradients over processes; scaling by world / global batch makes
            # that average the gradient of the mean loss over the whole global batch.
            loss = loss_sum * (context.world / batch.global_size)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            totals[0] += loss_sum.detach()
            totals[1] += (logits.detach().argmax(1) == batch.labels).sum()
            totals[2] += len(batch.labels)
            if (step + 1) % 25 == 0 or step + 1 == steps_per_epoch:
                _check_finite(totals, context, epoch, run_dir)
                if bar is not None:  # tqdm shows the throughput (img/s) itself
                    done = totals.tolist()
                    bar.n = min(int(done[2]) * context.world, len(train_images))
                    bar.set_postfix(loss=f"{done[0] / max(done[2], 1):.4f}", refresh=False)
                    bar.refresh()
        if bar is not None:
            bar.close()
        distributed.all_reduce_sum(totals, context)
        loss_sum, correct, count = totals.tolist()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds = time.perf_counter() - epoch_start

        # Phase 5: validation, gathered over processes.
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_accuracy": correct / count,
            "val_loss": None,
            "val_accuracy": None,
            "lr": lr,
            "epoch_seconds": epoch_seconds,
            "images_per_second": count / epoch_seconds,
        }
        if val_loader is not None:
            val = evaluate_loader(model, val_loader, precision=precision, context=context)
            row["val_loss"], row["val_accuracy"] = val["loss"], val["accuracy"]
        history.append(row)
        say(_epoch_line(row, config.epochs))

        # Phase 6: rank 0 saves the checkpoint, the best one, metrics and curves.
        if context.is_main:
            score = row["val_accuracy"] if row["val_accuracy"] is not None else row[
                "train_accuracy"]
            improved = score > best_accuracy
            best_accuracy = max(best_accuracy, score)
            state = {
                "model": raw_model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "best_accuracy": best_accuracy,
                "config": json.dumps(config.to_dict()),
                "model_info": json.dumps(model_info),
                "history": json.dumps(history),
                "world_size": context.world,
            }
            if precision == "fp16":
                state["scaler"] = scaler.state_dict()
            save_checkpoint(run_dir / CHECKPOINT_NAME, state)
            if improved:
                save_checkpoint(run_dir / BEST_NAME, state)
            run.write_text(run.metrics, _metrics_csv(history))
            run.commit()  # this run has a checkpoint: a run it replaced may go
        if on_epoch is not None and on_epoch(row, raw_model):
            break
    train_seconds = time.perf_counter() - started
    if context.distributed:
        _check_replicas_agree(raw_model, context)
        say(f"weights identical on all {context.world} processes")
    if context.is_main and history:
        from cnnkit.engines.figures import save_training_curves

        save_training_curves(history, run.curves)

    result = TrainResult(run_dir, history, train_seconds=train_seconds, device=str(device),
                         precision=precision, loader=train_loader.mode)
    # Phase 7: the final model on the test split.
    if evaluate_test and data.test_images is not None:
        test_loader = BatchLoader(data.test_images, data.test_labels, batch_size=eval_batch,
                                  rank=context.rank, world=context.world, **loader_args)
        test = evaluate_loader(model, test_loader, precision=precision, context=context)
        result.test_accuracy, result.test_loss = test["accuracy"], test["loss"]
        say(f"test accuracy {100 * test['accuracy']:.2f}% on {test['count']} images")
    return result


def _check_finite(
    totals: torch.Tensor, context: distributed.Context, epoch: int, run_dir: Path
) -> None:
    """Stop on a NaN or infinite loss, on every process at once."""
    flag = torch.tensor(
        [0.0 if torch.isfinite(totals[0]) else 1.0], dtype=torch.float64, device=totals.device
    )
    distributed.all_reduce_sum(flag, context)
    if flag.item() > 0:
        kept = (
            f"the checkpoint of epoch {epoch} in {run_dir} is kept"
            if epoch > 0 else "no checkpoint was written"
        )
        raise TrainingError(
            f"the training loss became NaN or infinite in epoch {epoch + 1}; {kept}; "
            "try a smaller learning rate"
        )


def _check_replicas_agree(model: torch.nn.Module, context: distributed.Context) -> None:
    """Every process must hold the same weights after training (DDP keeps them in step)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
        low, high = flat.clone(), flat.clone()
        torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise TrainingError(
            f"the processes ended with different weights (largest difference "
            f"{(high - low).max().item():.3g}); the run is not trustworthy"
        )


def _epoch_line(row: dict, epochs: int) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, "
        f"accuracy {100 * row['train_accuracy']:.2f}%"
    )
    if row["val_accuracy"] is not None:
        line += (
            f"; validation loss {row['val_loss']:.4f}, "
            f"accuracy {100 * row['val_accuracy']:.2f}%"
        )
    return line + f"; {row['epoch_seconds']:.1f} s, {row['images_per_second']:.0f} images/s"


def _progress_bar(enabled: bool, total: int, epoch: int, epochs: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="img", leave=False)
