"""TensorBoard logging of a training run, as an observer of the training loop.

The loop (:mod:`cnnkit.engines.training`) calls an observer after every step, after every epoch
and once at the end (:class:`cnnkit.engines.training.Observer`); the caller makes the observers
(:func:`observers_for`) and passes them in. This one writes, through PyTorch's ``SummaryWriter``:

- per step: ``step/loss`` (the batch's training loss) and ``step/lr``;
- per epoch: ``loss/train``, ``loss/validation``, ``accuracy/train``, ``accuracy/validation``,
  ``epoch/lr``, a histogram of every weight (``weights/NAME``) and of its gradient in the
  epoch's last step (``gradients/NAME``), and the first convolution's kernels as images
  (``kernels/first_conv``, each kernel scaled to the full grey range on its own);
- at the end: the penultimate features (the input of the last layer) of a sample of the test
  images, with their class names and a sprite of the images, for the embedding projector.

Both engines are observed the same way (weights, gradients and features leave an engine as
NumPy arrays under PyTorch's names); the writer needs PyTorch and the ``tensorboard`` package
(``pip install 'cnnkit[tensorboard]'``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnkit.data import Dataset, stratified_sample
from cnnkit.engines.config import TrainConfig
from cnnkit.errors import InvalidArgument

__all__ = ["EMBEDDING_SAMPLE", "TensorBoardLogger", "check_available", "observers_for"]

#: Test images shown in the embedding projector (a stratified sample).
EMBEDDING_SAMPLE = 1000


def check_available() -> None:
    """Refuse, in one line, when the writer's packages cannot be imported."""
    import importlib.util

    missing = [name for name in ("torch", "tensorboard") if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidArgument(
            f"--tensorboard needs {' and '.join(missing)}, which cannot be imported here; "
            "install them with pip install 'cnnkit[tensorboard]'"
        )


def observers_for(config: TrainConfig) -> list[TensorBoardLogger]:
    """The observers of the training loop that ``config`` asks for: a :class:`TensorBoardLogger`
    of ``config.tensorboard`` when it names a folder (refused at once when the packages are
    missing or the folder is a file). Close them when the run ends.

    >>> observers_for(TrainConfig())
    []
    """
    if config.tensorboard is None:
        return []
    return [TensorBoardLogger(config.tensorboard, seed=config.seed)]


def _kernel_images(weight: np.ndarray) -> np.ndarray:
    """Kernels ``(out, in, kh, kw)`` as images ``(out, 1 or 3, kh, kw)`` in [0, 1]: RGB for three
    input channels, the mean over the input channels otherwise; each scaled on its own."""
    kernels = weight if weight.shape[1] == 3 else weight.mean(axis=1, keepdims=True)
    low = kernels.min(axis=(1, 2, 3), keepdims=True)
    span = kernels.max(axis=(1, 2, 3), keepdims=True) - low
    return ((kernels - low) / np.where(span > 0, span, 1)).astype(np.float32)


class TensorBoardLogger:
    """Writes a run's scalars, histograms, kernels and embedding to ``log_dir``.

    The writer (and the folder) is made at the first event; a resumed run appends a new event
    file to the same folder, its steps continuing where the first run stopped.
    """

    def __init__(self, log_dir: str | os.PathLike, *, seed: int = 0) -> None:
        check_available()
        self.log_dir = Path(log_dir)
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise InvalidArgument(f"--tensorboard {log_dir} is a file, not a folder")
        self.seed = seed
        self._writer = None
        self._previous = (0.0, 0.0)

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def on_step(self, engine, epoch: int, step: int, steps: int, lr: float) -> None:
        """The loss of the batch just trained (from the engine's running sums) and the rate."""
        loss_sum, _, count = engine.totals()
        if step == 0:
            self._previous = (0.0, 0.0)
        batch_loss = (loss_sum - self._previous[0]) / max(count - self._previous[1], 1)
        self._previous = (loss_sum, count)
        global_step = epoch * steps + step
        self.writer.add_scalar("step/loss", batch_loss, global_step)
        self.writer.add_scalar("step/lr", lr, global_step)

    def on_epoch(self, row: dict, engine) -> None:
        """The epoch's metrics, weight and gradient histograms, and the first layer's kernels."""
        writer, epoch = self.writer, row["epoch"]
        for tag, key in (("loss/train", "train_loss"), ("loss/validation", "val_loss"),
                         ("accuracy/train", "train_accuracy"),
                         ("accuracy/validation", "val_accuracy"), ("epoch/lr", "lr")):
            if row.get(key) is not None:
                writer.add_scalar(tag, row[key], epoch)
        weights, _, _ = engine.state()
        for name, value in weights.items():
            if np.issubdtype(value.dtype, np.floating):
                writer.add_histogram(f"weights/{name}", value, epoch)
        for name, gradient in engine.gradients().items():
            writer.add_histogram(f"gradients/{name}", gradient, epoch)
        first_conv = next((value for value in weights.values() if value.ndim == 4), None)
        if first_conv is not None:
            writer.add_images("kernels/first_conv", _kernel_images(first_conv), epoch,
                              dataformats="NCHW")
        writer.flush()

    def on_end(self, engine, data: Dataset, model_info: dict, epoch: int) -> None:
        """The penultimate features of a sample of the test images, for the projector."""
        images, labels = data.test_images, data.test_labels
        if images is None:  # an image folder without a test split: the training images
            images, labels = data.train_images, data.train_labels
        rows = np.sort(stratified_sample(labels, min(EMBEDDING_SAMPLE, len(labels)), self.seed))
        import torch

        from cnnkit.modelinfo import Normalisation

        pixels = np.asarray(images[rows])
        normalisation = Normalisation(model_info["mean"], model_info["std"])
        features = engine.penultimate(normalisation.apply(pixels))
        names = [data.class_names[label] for label in labels[rows].tolist()]

        self.writer.add_embedding(
            features, metadata=names,
            label_img=torch.from_numpy(pixels.astype(np.float32) / 255.0),
            global_step=epoch, tag="penultimate",
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
