"""Training a spec with either engine: the run folder, the loop, checkpoints and resume.

The loop is written once and reads top to bottom in phases: check everything, open the run
folder, build the model and optimizer (or restore them from the last checkpoint), then for each
epoch train, validate, and save. What differs between the engines (one training step, evaluation,
devices and processes) is behind the engine object: :class:`cnnkit.engines.torch_engine.
TorchEngine` or :class:`cnnkit.engines.numpy_engine.NumpyEngine`. This module imports neither
engine, and PyTorch only when the torch engine is chosen. A run folder
(:class:`cnnkit.runfolder.RunFolder`) holds::

    config.json               the full configuration (with the engine that ran it)
    metrics.csv               one row per epoch: losses, accuracies, learning rate, time, speed
    checkpoint.safetensors    the last complete epoch (weights, optimizer, epoch, history, config)
    best.safetensors          the epoch with the best validation accuracy so far
    curves.png                loss and accuracy curves (drawn when the run ends)

Reproducibility: the weights are initialised from ``seed``; the shuffling order of epoch ``e`` is
drawn from ``(seed, e)`` by NumPy (:func:`cnnkit.engines.base.epoch_order`), so both engines see
identical batches, and the dropout masks from ``(seed, e)`` too, so a run resumed after epoch
``e`` draws exactly the numbers an uninterrupted run draws; the augmentation's shifts and flips
(:mod:`cnnkit.engines.augment`) are drawn from ``(seed, epoch, step)`` alone for the same reason.
On the CPU the same seed gives bit-identical results; on CUDA ``deterministic=True`` asks
PyTorch for deterministic kernels. Observers (:class:`Observer`, such as the TensorBoard logger
of :mod:`cnnkit.engines.tensorboard`) watch the loop from outside: the caller makes them and
passes them in, so this module imports none of them.
With several processes (torchrun, PyTorch engine) only rank 0 prints and writes files.

Data larger than the memory budget (``stream``; decided once per run, from the bytes of the
images it uses) is not copied into memory: every loader reads its split's rows from the
memory-mapped cache a few batches ahead, shuffled in blocks of neighbouring rows (see
:func:`cnnkit.engines.base.streamed_batches`). Ctrl-C (or SIGTERM) during an epoch of a
one-process run stops at the end of the current step and saves a checkpoint of the partial
epoch (step, running totals, dropout generator state); ``resume`` continues from that step,
exactly as if the run had not stopped. ``checkpoint_every`` saves such a checkpoint every that
many steps, in any number of processes: every process reaches the same step, the running totals
and each process's dropout generator are gathered, and rank 0 writes.

Under torchrun a failed attempt keeps the run folder's lock; torchrun stops every process and
starts them all again (``--max-restarts``), and the new attempt's rank 0 finds its job's lock
(:meth:`cnnkit.runfolder.RunFolder.left_by_job`), takes it over and tells the other ranks, so
every rank continues from the last checkpoint, mid-epoch ones included, with the batches that
``(seed, epoch)`` fixes from that step on.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from cnnkit.arch import Architecture, load_architecture, trace
from cnnkit.budget import FLOAT32_BYTES, check_disk, check_memory, training_memory
from cnnkit.data import (
    AUTO_DATASET,
    Dataset,
    choose_dataset,
    load_dataset,
    read_split_file,
    split_train_validation,
    stratified_sample,
)
from cnnkit.data.stream import choose_residency
from cnnkit.engines.augment import Augmentation
from cnnkit.engines.base import Context, engine_class, resolve_engine
from cnnkit.engines.checkpoint import Checkpoint, check_compatible, load_checkpoint
from cnnkit.engines.config import TrainConfig
from cnnkit.errors import InvalidArgument, InvalidType, TrainingError
from cnnkit.modelinfo import background_of
from cnnkit.runfolder import RunFolder
from cnnkit.schedule import lr_at

__all__ = ["Observer", "TrainConfig", "TrainResult", "TrainingError", "image_statistics",
           "pixel_statistics", "train"]

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
#: Steps between checks of the running loss (NaN stop) and progress-bar updates.
CHECK_EVERY = 25
#: Training images taking more bytes than this are summarised (mean, standard deviation,
#: background) from a seeded sample of this size; the built-in data sets are summarised whole.
STATISTICS_SAMPLE_BYTES = 64 * 2**20
#: Images read at a time while summarising them (bounds the memory a streamed data set needs).
_STATISTICS_CHUNK = 4096
#: Where a checkpoint written in the middle of an epoch keeps the epoch's progress.
PARTIAL_EPOCH = "partial_epoch"


@dataclass
class TrainResult:
    """What a run produced: its folder, metric history and the final test accuracy."""

    run_dir: Path
    history: list[dict] = field(default_factory=list)
    test_accuracy: float | None = None
    test_loss: float | None = None
    #: The final test pass of a one-process run, for the report to reuse: the data set's
    #: ``images`` and ``labels`` and the ``probabilities`` (float64) and penultimate
    #: ``features`` of every image, in order.
    test_outputs: dict | None = None
    train_seconds: float = 0.0
    engine: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    loader: str = "resident"
    #: The data set trained on (the name ``dataset='auto'`` was resolved to).
    dataset: str = ""


class Observer(Protocol):
    """What the training loop calls on an observer (on rank 0 only).

    The caller makes the observers, passes them to :func:`train`, and closes them afterwards;
    :class:`cnnkit.engines.tensorboard.TensorBoardLogger` is one.
    """

    def on_step(self, engine, epoch: int, step: int, steps: int, lr: float) -> None:
        """After every training step (``step`` of ``steps`` in ``epoch``, counted from 0)."""

    def on_epoch(self, row: dict, engine) -> None:
        """After every epoch's checkpoint, with the epoch's metrics row."""

    def on_end(self, engine, data: Dataset, model_info: dict, epoch: int) -> None:
        """Once, after the final model is tested, with the number of epochs trained."""


def pixel_statistics(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of uint8 pixels in [0, 1] units, exact, from a histogram.

    >>> pixel_statistics(np.array([0, 255], dtype=np.uint8))
    (0.5, 0.5)
    """
    return _moments(np.bincount(images.ravel(), minlength=256))


def _moments(counts: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation in [0, 1] units of a histogram of the 256 pixel values."""
    counts = counts.astype(np.float64)
    values = np.arange(256) / 255.0
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    variance = float((counts * (values - mean) ** 2).sum() / total)
    return mean, max(math.sqrt(variance), 1e-6)


def image_statistics(
    images: np.ndarray, rows: np.ndarray | None = None, *, seed: int = 0
) -> tuple[float, float, str]:
    """Pixel mean and standard deviation ([0, 1] units) and background of the rows ``rows``.

    The background is ``'dark'`` when the outermost pixels average below one half (MNIST's
    white-on-black) and ``'light'`` otherwise. Exact when the rows take at most
    ``STATISTICS_SAMPLE_BYTES``; beyond that, from that many bytes of rows drawn with
    ``numpy.random.default_rng(seed)``, so that data too large for memory is never read
    whole. Rows are read a few thousand at a time, so a memory map stays mostly on disk.
    Resident and streamed runs use this one function and hence the same numbers.

    >>> image_statistics(np.array([[[[0, 255], [255, 0]]]], dtype=np.uint8))
    (0.5, 0.5, 'light')
    """
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    per_image = int(np.prod(images.shape[1:]))
    if len(rows) * per_image > STATISTICS_SAMPLE_BYTES:
        take = max(1, STATISTICS_SAMPLE_BYTES // per_image)
        rows = np.sort(np.random.default_rng(seed).choice(rows, take, replace=False))
    counts = np.zeros(256, dtype=np.int64)
    border_sum = border_count = 0
    for start in range(0, len(rows), _STATISTICS_CHUNK):
        chunk = images[rows[start : start + _STATISTICS_CHUNK]]
        counts += np.bincount(chunk.ravel(), minlength=256)
        border = [chunk[..., 0, :], chunk[..., -1, :], chunk[..., :, 0], chunk[..., :, -1]]
        border_sum += sum(int(edge.sum(dtype=np.int64)) for edge in border)
        border_count += sum(edge.size for edge in border)
    mean, std = _moments(counts)
    return mean, std, background_of(border_sum / max(border_count, 1) / 255.0)


def _metrics_csv(history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: row.get(key, "") for key in METRIC_COLUMNS})
    return buffer.getvalue()


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    checkpoint: Checkpoint | None = None,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    evaluate_test: bool = True,
    on_epoch: Callable[[dict, object], bool | None] | None = None,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Train ``config`` with its engine and write the run folder ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration; ``config.engine`` picks the engine (``'auto'``: PyTorch where
        it imports, NumPy otherwise).
    run_dir : path-like
        The run folder; it must not exist or be empty unless ``overwrite`` (or ``resume``).
    resume : bool
        Continue the run in ``run_dir`` after its last complete epoch, with either engine.
        ``config`` must describe the same model (architecture, input shape, classes); a
        difference is refused by name. ``epochs`` may be raised to train longer.
    checkpoint : Checkpoint, optional
        With ``resume``: the last checkpoint of ``run_dir``, when the caller has read it already
        (``cnnkit train --resume`` reads it for the configuration); by default it is read here.
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
        and the engine's model; returning True ends the run there (used by the benchmark to
        stop at a target accuracy).
    observers : sequence of Observer
        Watch the loop on rank 0 (:class:`Observer`); the caller makes and closes them. A
        ``config.tensorboard`` folder needs its logger here:
        :func:`cnnkit.engines.tensorboard.observers_for` makes the observers a configuration
        asks for.

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
    if checkpoint is not None and not resume:
        raise InvalidArgument("a checkpoint is given only to resume from it; pass resume=True")
    if config.tensorboard is not None and not observers:
        raise InvalidArgument(
            f"config.tensorboard is {config.tensorboard!r} but no observer writes the logs; pass "
            "observers=observers_for(config) (cnnkit.engines.tensorboard), as cnnkit train does"
        )
    config = dataclasses.replace(config, engine=resolve_engine(config.engine))
    engine = engine_class(config.engine)(config)
    with engine.session() as context:
        return _train(config, Path(run_dir), engine, context, resume=resume,
                      checkpoint=checkpoint, overwrite=overwrite, progress=progress, log=log,
                      evaluate_test=evaluate_test, on_epoch=on_epoch,
                      observers=list(observers) if context.is_main else [])  # rank 0 writes


def _train(config: TrainConfig, run_dir: Path, engine, context: Context, *, resume: bool,
           checkpoint: Checkpoint | None, overwrite: bool, progress: bool, log,
           evaluate_test: bool, on_epoch, observers: list) -> TrainResult:
    def say(line: str) -> None:
        if log is not None and context.is_main:
            log(line)

    # Phase 1: check everything before the run folder is touched: the folder, the checkpoint to
    # resume (or the one a restarted torchrun attempt continues from), the data, the
    # architecture against the data and against memory and disk.
    run = RunFolder(run_dir)
    saved, resume = _check_run_folder(run, resume=resume, checkpoint=checkpoint,
                                      overwrite=overwrite, context=context, say=say)
    config = _resolve_dataset(config, saved, progress=progress and context.is_main, say=say)
    data, train, validation = _load_data(config, progress=progress and context.is_main, say=say)
    streaming = _choose_streaming(config, data, [train, validation], say)
    arch, model_info = _describe_model(config, saved, data, train, run_dir)
    eval_batch = max(config.batch_size, 512)
    _check_budgets(arch, data, eval_batch, run_dir, context)

    # Phase 2: the run folder: locked against a second writer; an earlier run set aside with
    # overwrite, removed only once this run's first checkpoint is written.
    if context.is_main:
        run.open(overwrite=overwrite and not resume, resume=resume, job=context.job)
    finished = False
    try:
        result = _fit(config, run, engine, context, arch=arch, saved=saved,
                      model_info=model_info, data=data, train=train, validation=validation,
                      streaming=streaming, eval_batch=eval_batch, progress=progress, say=say,
                      evaluate_test=evaluate_test, on_epoch=on_epoch, observers=observers)
        finished = True
        return result
    except BaseException:
        if context.is_main and context.job is None and run.restore():
            say(f"put back the earlier run's files in {run.path} (this run had no complete "
                "checkpoint yet)")
        raise
    finally:
        # A failed attempt of a torchrun job keeps the lock and the files for the next attempt
        # (RunFolder.end_job releases them when the job is over).
        if context.is_main and (finished or context.job is None):
            run.unlock()


def _check_run_folder(run: RunFolder, *, resume: bool, checkpoint: Checkpoint | None,
                      overwrite: bool, context: Context,
                      say: Callable[[str], None]) -> tuple[Checkpoint | None, bool]:
    """Refuse a folder the run may not use; the checkpoint to resume from (``checkpoint``, or
    read from the folder) and whether the run resumes.

    A new run that is a restarted attempt of a torchrun job (rank 0 finds the lock its job left
    and tells the other ranks) resumes from the job's last checkpoint, or starts again when
    there is none yet.
    """
    restart = continues = False
    if context.is_main:
        restart = run.left_by_job(context.job)
        if resume:
            if not run.checkpoint.is_file() and run.legacy_checkpoint.is_file():
                load_checkpoint(run.path)  # refused with the conversion command
            note = run.check_resumable(run.checkpoint, job=context.job)
            if note:
                say(note)
        elif restart:
            continues = run.checkpoint.is_file()
            say(f"restarted attempt of torchrun job {context.job}: "
                + ("continuing from its last checkpoint" if continues
                   else "it wrote no checkpoint, so the run starts again"))
        else:
            run.check_new(overwrite=overwrite, job=context.job)
    if context.distributed and not resume:
        from cnnkit.engines import distributed

        continues = distributed.broadcast_object(continues, context)
    if not (resume or continues):
        return None, False
    return (checkpoint if checkpoint is not None else load_checkpoint(run.path)), True


def _resolve_dataset(config: TrainConfig, saved: Checkpoint | None, *, progress: bool,
                     say: Callable[[str], None]) -> TrainConfig:
    """``config`` with ``dataset='auto'`` replaced by a name: a resumed run's own data set, or
    :func:`cnnkit.data.choose_dataset`'s choice, said in one line."""
    if config.dataset != AUTO_DATASET:
        return config
    if saved is not None:
        return dataclasses.replace(config, dataset=saved.config["dataset"])
    choice = choose_dataset(data_dir=config.data_dir, progress=progress, report=say)
    say(choice.describe())
    return dataclasses.replace(config, dataset=choice.name)


def _load_data(config: TrainConfig, *, progress: bool, say: Callable[[str], None]):
    """The data set, and its training and validation ``(images, labels, rows)`` (a seeded,
    stratified split); the images are the data set's own arrays (memory maps stay so)."""
    data = load_dataset(config.dataset, data_dir=config.data_dir,
                        input_shape=config.input_shape, progress=progress,
                        on_error=config.on_error, report=say, cache=config.cache,
                        cache_dir=config.cache_dir, workers=config.workers)
    if config.split_file is not None:
        data = read_split_file(config.split_file, data, report=say)
    if data.val_images is not None:
        # A split file, or a folder with train/ and val/: the validation images are given.
        rows = np.arange(len(data.train_labels))
        if config.train_limit is not None and config.train_limit < len(rows):
            rows = stratified_sample(data.train_labels, config.train_limit, config.seed + 1)
        say(f"validation images as given ({len(data.val_labels)})")
        return data, (data.train_images, data.train_labels, rows), (
            data.val_images, data.val_labels, np.arange(len(data.val_labels)))
    split = split_train_validation(data.train_labels, config.val_size, seed=config.seed,
                                   train_limit=config.train_limit)
    return (data, (data.train_images, data.train_labels, split.train),
            (data.train_images, data.train_labels, split.validation))


def _choose_streaming(config: TrainConfig, data: Dataset, splits: list[tuple],
                      say: Callable[[str], None]) -> bool:
    """Whether this run streams its images (decided once, from the bytes it would hold)."""
    per_image = int(np.prod(data.input_shape))
    nbytes = per_image * sum(len(rows) for _, _, rows in splits)
    if data.test_images is not None:
        nbytes += per_image * len(data.test_images)
    if config.stream == "never":
        return False
    decision = choose_residency(nbytes, budget=0 if config.stream == "always" else None)
    if not decision.streaming:
        return False
    source = ("the memory-mapped cache" if isinstance(data.train_images, np.memmap)
              else "memory")
    reason = ("--stream always" if config.stream == "always" else decision.reason)
    say(f"streaming: batches read from {source} in shuffled blocks, a few batches ahead on a "
        f"background thread ({reason})")
    return True


def _describe_model(config: TrainConfig, saved: Checkpoint | None, data: Dataset,
                    train: tuple, run_dir: Path) -> tuple[Architecture, dict]:
    """The architecture and the model description stored in every checkpoint."""
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
        check_compatible(saved.model_info, model_info, f"the checkpoint in {run_dir}")
        return arch, saved.model_info
    images, _, rows = train
    model_info["mean"], model_info["std"], model_info["background"] = image_statistics(
        images, rows, seed=config.seed)
    return arch, model_info


def _architecture(config: TrainConfig, saved: Checkpoint | None) -> Architecture:
    """The run's architecture: the checkpoint's own when resuming, else ``config.arch``.

    A resumed run never reloads the spec file it was started with (it may have moved or
    changed); an ``arch`` different from the one saved in its configuration is loaded and
    compared with the checkpoint.
    """
    if saved is None:
        return load_architecture(config.arch)
    stored = load_architecture(saved.model_info["arch"])
    if config.arch != saved.config.get("arch"):
        wanted = load_architecture(config.arch)
        check_compatible(saved.model_info, {"arch": wanted.to_dict()}, "the checkpoint")
    return stored


def _check_budgets(
    arch: Architecture, data: Dataset, batch_size: int, run_dir: Path,
    context: Context,
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


def _fit(config: TrainConfig, run: RunFolder, engine, context: Context, *, arch: Architecture,
         saved: Checkpoint | None, model_info: dict, data: Dataset, train: tuple,
         validation: tuple, streaming: bool, eval_batch: int, progress: bool,
         say: Callable[[str], None], evaluate_test: bool, on_epoch,
         observers: list) -> TrainResult:
    """Phases 3 to 7: build, train epoch by epoch with checkpoints, and test; the
    ``observers`` (:class:`Observer`) are called as they go."""
    normalise = {"mean": model_info["mean"], "std": model_info["std"], "streaming": streaming}
    train_loader = engine.loader(*train[:2], rows=train[2], batch_size=config.batch_size,
                                 **normalise)
    val_loader = (engine.loader(*validation[:2], rows=validation[2], batch_size=eval_batch,
                                **normalise) if len(validation[2]) else None)
    say(
        f"{config.dataset}: {len(train[2])} training, {len(validation[2])} validation images "
        f"({'x'.join(map(str, data.input_shape))}, {data.num_classes} classes); "
        + engine.describe(train_loader)
    )

    # Phase 3: model and optimizer, fresh or from the checkpoint (of either engine).
    engine.build(arch, data.input_shape, data.num_classes, seed=config.seed, lr=config.base_lr)
    start_epoch, history, best_accuracy, partial = 0, [], -1.0, None
    if saved is not None:
        engine.restore(saved, str(run.checkpoint))
        start_epoch, history, best_accuracy = saved.epoch, saved.history, saved.best_accuracy
        partial = saved.extra.get(PARTIAL_EPOCH)
        where = (f"at step {partial['step']} of epoch {start_epoch + 1}" if partial
                 else f"after epoch {start_epoch}")
        say(f"resuming {where} of {config.epochs} (checkpoint written by the {saved.engine} "
            "engine)")
        if partial and (partial["streaming"], partial["batch_size"]) != (streaming,
                                                                         config.batch_size):
            say("the interrupted epoch was drawn with another batch size or residency "
                "(--stream); the rest of it follows this run's order, so some of its images "
                "may come twice and others not at all")
    if context.is_main:
        run.write_text(run.config, json.dumps(config.to_dict(), indent=2) + "\n")
        run.write_text(run.metrics, _metrics_csv(history))
        if saved is None:  # the weights before the first step, for cnnkit weights to compare
            _checkpoint(engine, config, model_info, [], -1.0, 0).save(run.initial)

    augmentation = _augmentation(config, model_info, context)
    started = time.perf_counter()
    # A resumed run's first checkpoint makes figures of the earlier weights out of date.
    weight_figures_stale = saved is not None
    for epoch in range(start_epoch, config.epochs):
        # Phase 4: one epoch of training, with a checkpoint every ``checkpoint_every`` steps; an
        # interruption of one process saves the partial epoch.
        position = _EpochPosition(partial if epoch == start_epoch else None)
        save_partial = functools.partial(
            _save_partial_epoch, run, engine, config, model_info=model_info, history=history,
            best_accuracy=best_accuracy, epoch=epoch, position=position, streaming=streaming)
        try:
            with _stop_between_steps(enabled=not context.distributed) as deliver_signals:
                between_steps = _with_checkpoints(deliver_signals, save_partial, position,
                                                  every=config.checkpoint_every,
                                                  steps=len(train_loader))
                row = _train_epoch(engine, train_loader, config, epoch, run.path, augmentation,
                                   progress=progress and context.is_main, position=position,
                                   between_steps=between_steps, observers=observers)
        except KeyboardInterrupt:
            # (Not while an earlier run is set aside: that run is put back instead.)
            if not context.distributed and position.step > 0 and not run.replacing:
                save_partial()
                say(f"interrupted after step {position.step} of epoch {epoch + 1}; its "
                    f"checkpoint is in {run.path} (continue with --resume)")
            raise
        # Phase 5: validation, gathered over processes.
        if val_loader is not None:
            val = engine.evaluate(val_loader)
            row["val_loss"], row["val_accuracy"] = val["loss"], val["accuracy"]
        history.append(row)
        say(_epoch_line(row, config.epochs))
        # Phase 6: rank 0 saves the checkpoint, the best one and the metrics.
        if context.is_main:
            best_accuracy = _save_epoch(run, engine, config, model_info, history, best_accuracy)
            if weight_figures_stale:
                weight_figures_stale = False
                removed = run.remove_weight_figures()
                if removed:
                    say(f"removed {', '.join(removed)}: drawn from the earlier weights (cnnkit "
                        "weights, evaluate and explain draw them again)")
        for observer in observers:
            observer.on_epoch(row, engine)
        if on_epoch is not None and on_epoch(row, engine.model):
            break
    train_seconds = time.perf_counter() - started
    note = engine.finish()
    if note:
        say(note)
    if context.is_main and history:
        from cnnkit.engines.figures import save_training_curves

        save_training_curves(history, run.curves)

    result = TrainResult(run.path, history, train_seconds=train_seconds, engine=engine.name,
                         device=str(engine.device), precision=engine.precision,
                         loader=train_loader.mode, dataset=config.dataset)
    # Phase 7: the final model on the test split, in fp32 whatever the training precision, so
    # that the number is the one ``cnnkit evaluate`` gives for the same checkpoint.
    if evaluate_test and data.test_images is not None:
        test_loader = engine.loader(data.test_images, data.test_labels, batch_size=eval_batch,
                                    **normalise)
        # One process keeps each image's probabilities and features: the report reuses them.
        keep = not context.distributed
        test = engine.evaluate(test_loader, precision="fp32", outputs=keep)
        result.test_accuracy, result.test_loss = test["accuracy"], test["loss"]
        if keep:
            result.test_outputs = {"images": data.test_images, "labels": data.test_labels,
                                   "probabilities": test["probabilities"],
                                   "features": test["features"]}
        how = "" if engine.precision == "fp32" else " (computed in fp32, as cnnkit evaluate does)"
        say(f"test accuracy {100 * test['accuracy']:.2f}% on {test['count']} images{how}")
    for observer in observers:
        observer.on_end(engine, data, model_info, len(history))
    return result


def _augmentation(config: TrainConfig, model_info: dict, context: Context) -> Augmentation:
    """The run's augmentation; the uncovered border of a shifted image is the background."""
    background = 0.0 if model_info["background"] == "dark" else 1.0
    fill = (background - model_info["mean"]) / model_info["std"]
    return Augmentation(config.augment, config.seed, fill, rank=context.rank,
                        world=context.world, warp=config.warp, erase=config.erase)


class _EpochPosition:
    """How far the current epoch has come, and the state a checkpoint of it needs."""

    def __init__(self, partial: dict | None) -> None:
        self.resumed = partial
        self.step = 0 if partial is None else int(partial["step"])
        self.earlier_seconds = 0.0 if partial is None else float(partial["seconds"])
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self.started

    def saved(self, engine) -> dict:
        """The partial epoch as a checkpoint's ``extra`` keeps it: the running totals summed
        over the processes, and the dropout generator of rank 0 (``rng``) and, with several
        processes, of each rank (``rng_by_rank``). Every process calls it (it gathers)."""
        generators = _gathered(engine.rng_state(), engine.context)
        by_rank = {"rng_by_rank": generators} if len(generators) > 1 else {}
        return {"step": self.step, "totals": engine.totals(gather=True), "rng": generators[0],
                **by_rank, "engine": engine.name, "seconds": self.seconds()}


def _gathered(value: object, context: Context) -> list:
    """``value`` of every process, by rank (``[value]`` for one process)."""
    if not context.distributed:
        return [value]
    from cnnkit.engines import distributed  # several processes: PyTorch's

    return distributed.all_gather_object(value, context)


def _save_partial_epoch(run: RunFolder, engine, config: TrainConfig, *, model_info: dict,
                        history: list[dict], best_accuracy: float, epoch: int,
                        position: _EpochPosition, streaming: bool) -> None:
    """Checkpoint the epoch so far (``position.step`` steps of epoch ``epoch + 1``). Every
    process calls it, after the same step; rank 0 writes."""
    partial = {**position.saved(engine), "streaming": streaming,
               "batch_size": config.batch_size}
    if engine.context.is_main:
        _checkpoint(engine, config, model_info, history, best_accuracy, epoch,
                    partial=partial).save(run.checkpoint)


def _with_checkpoints(between_steps: Callable[[], None], save_partial: Callable[[], None],
                      position: _EpochPosition, *, every: int | None,
                      steps: int) -> Callable[[], None]:
    """``between_steps``, then ``save_partial`` after every ``every`` steps of the epoch but its
    last (the epoch's own checkpoint follows that one); ``between_steps`` itself without
    ``every``."""
    if every is None:
        return between_steps

    def then_checkpoint() -> None:
        between_steps()
        if position.step % every == 0 and position.step < steps:
            save_partial()

    return then_checkpoint


@contextlib.contextmanager
def _stop_between_steps(*, enabled: bool) -> Iterator[Callable[[], None]]:
    """Hold SIGINT and SIGTERM until the current training step ends.

    Yields a function to call between steps: it delivers a held signal to the handler that was
    there before (Ctrl-C then raises KeyboardInterrupt), so a checkpoint written after it holds
    a whole number of steps. Only the main thread can handle signals; elsewhere, or when not
    ``enabled`` (several processes must stop together), signals act at once.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    held: list[int] = []
    # Signals ignored (or handled outside Python) are left as they are.
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    previous = {number: handler for number, handler in previous.items()
                if handler is not None and handler != signal.SIG_IGN}
    for number in previous:
        signal.signal(number, lambda number, frame: held.append(number))

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def between_steps() -> None:
        if not held:
            return
        number = held[0]
        restore()
        handler = previous[number]
        if callable(handler):
            handler(number, None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(number)

    try:
        yield between_steps
        between_steps()  # a signal that came after the last step
    finally:
        restore()


def _train_epoch(engine, loader, config: TrainConfig, epoch: int, run_dir: Path,
                 augmentation: Augmentation, *, progress: bool, position: _EpochPosition,
                 between_steps: Callable[[], None], observers: list) -> dict:
    """One pass over the training batches (the rest of one, when ``position`` resumes it);
    the epoch's metrics row (without validation)."""
    engine.seed_epoch(config.seed, epoch)
    resumed, context = position.resumed, engine.context
    # The saved totals are the sum over the processes: rank 0 carries them on.
    engine.start_epoch(totals=resumed["totals"] if resumed and context.is_main else None)
    if resumed is not None and resumed["engine"] == engine.name:
        generators = resumed.get("rng_by_rank", [resumed["rng"]])
        if len(generators) == context.world:  # else the dropout masks change with the shards
            engine.set_rng_state(generators[context.rank])
    steps = len(loader)
    world = engine.context.world
    bar = _progress_bar(progress, loader.count, epoch, config.epochs)
    lr = config.base_lr
    batches = loader.batches(config.seed, epoch, start_batch=position.step)
    for step, batch in enumerate(batches, start=position.step):
        lr = lr_at(epoch * steps + step, steps, base_lr=config.base_lr, epochs=config.epochs,
                   warmup_epochs=config.warmup_epochs, schedule=config.schedule)
        if augmentation.active:
            batch = engine.augment(batch, augmentation, epoch, step)
        engine.train_step(batch, lr)
        position.step = step + 1
        for observer in observers:
            observer.on_step(engine, epoch, step, steps, lr)
        between_steps()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            if not engine.loss_is_finite():
                kept = (f"the checkpoint of epoch {epoch} in {run_dir} is kept" if epoch > 0
                        else "no checkpoint was written")
                raise TrainingError(
                    f"the training loss became NaN or infinite in epoch {epoch + 1}; {kept}; "
                    "try a smaller learning rate"
                )
            if bar is not None:  # tqdm shows the throughput (img/s) itself
                loss_sum, _, count = engine.totals()
                bar.n = min(int(count) * world, bar.total)
                bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}", refresh=False)
                bar.refresh()
    if bar is not None:
        bar.close()
    loss_sum, correct, count = engine.totals(gather=True)
    engine.synchronize()
    epoch_seconds = position.seconds()
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / count,
        "train_accuracy": correct / count,
        "val_loss": None,
        "val_accuracy": None,
        "lr": lr,
        "epoch_seconds": epoch_seconds,
        "images_per_second": count / epoch_seconds,
    }


def _checkpoint(engine, config: TrainConfig, model_info: dict, history: list[dict],
                best_accuracy: float, epoch: int, *, partial: dict | None = None) -> Checkpoint:
    """The run's state after ``epoch`` complete epochs (and ``partial``'s steps of the next)."""
    weights, optimizer, extra = engine.state()
    if partial is not None:
        extra = {**extra, PARTIAL_EPOCH: partial}
    return Checkpoint(
        model=weights, optimizer=optimizer, epoch=epoch, best_accuracy=best_accuracy,
        config=config.to_dict(), model_info=model_info, history=history, engine=engine.name,
        world_size=engine.context.world, extra=extra,
    )


def _save_epoch(run: RunFolder, engine, config: TrainConfig, model_info: dict,
                history: list[dict], best_accuracy: float) -> float:
    """Write the epoch's checkpoint (and the best one if it improved) and the metrics."""
    row = history[-1]
    score = row["val_accuracy"] if row["val_accuracy"] is not None else row["train_accuracy"]
    improved = score > best_accuracy
    best_accuracy = max(best_accuracy, score)
    checkpoint = _checkpoint(engine, config, model_info, history, best_accuracy, row["epoch"])
    checkpoint.save(run.checkpoint)
    if improved:
        checkpoint.save(run.best)
    run.write_text(run.metrics, _metrics_csv(history))
    run.commit()  # this run has a checkpoint: a run it replaced may go
    return best_accuracy


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
