"""Figures of a training run: loss and accuracy curves, the confusion matrix, and samples of
the augmented training images.

Drawn like every cnnkit figure (:mod:`cnnkit.plots`: matplotlib's Agg renderer, imported inside
the functions) and saved atomically; a run's own figures are replaced as the run goes on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnkit.engines.augment import Augmentation
from cnnkit.plots import as_picture, new_figure, save_figure
from cnnkit.runfolder import BEST_NAME

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "augmentation_figure",
    "best_epoch",
    "save_confusion_matrix",
    "save_training_curves",
    "training_curves_figure",
]


def best_epoch(history: Sequence[Mapping[str, float]]) -> tuple[int, str, float] | None:
    """The epoch whose weights ``best.safetensors`` holds: ``(epoch, split, accuracy)``.

    As training chooses it: the first epoch with the highest validation accuracy, or training
    accuracy for a run without a validation split. None for an empty history.

    >>> best_epoch([{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7},
    ...             {"epoch": 3, "val_accuracy": 0.7}])
    (2, 'validation', 0.7)
    """
    best = None
    for row in history:
        split = "validation" if row.get("val_accuracy") is not None else "training"
        score = row["val_accuracy" if split == "validation" else "train_accuracy"]
        if best is None or score > best[2]:
            best = (row["epoch"], split, score)
    return best


def training_curves_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """Loss and accuracy (in percent, as the terminal prints it) per epoch, training and
    validation, with the best epoch marked and named in the title.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss``, ``train_accuracy`` and,
    when there is a validation split, ``val_loss`` and ``val_accuracy`` (fractions).
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(9, 3.8)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    best = best_epoch(history)
    panels = (("loss", loss_axes, "loss (cross-entropy)", 1.0),
              ("accuracy", accuracy_axes, "accuracy (%)", 100.0))
    for key, axes, label_text, scale in panels:
        for split in ("train", "val"):
            values = [row.get(f"{split}_{key}") for row in history]
            if all(v is not None and v == v for v in values) and values:
                label = "training" if split == "train" else "validation"
                axes.plot(epochs, [scale * v for v in values], marker="o", label=label)
        if best is not None:
            axes.axvline(best[0], color="0.4", linestyle="--", linewidth=1,
                         label=f"best epoch ({best[0]})")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label_text)
        axes.set_title(f"{key} per epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    if best is not None:
        figure.suptitle(f"Training curves: best {best[1]} accuracy {100 * best[2]:.2f}% at "
                        f"epoch {best[0]} of {len(history)} ({BEST_NAME})")
    return figure


def save_training_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike) -> Path:
    """:func:`training_curves_figure` as a PNG, replacing the run's earlier one."""
    return save_figure(training_curves_figure(history), path, overwrite=True)


def save_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "",
    overwrite: bool = True,
) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) as a PNG with counts.

    A run's own figure is replaced (``overwrite``, the default); pass False for a file the user
    named."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(class_names) + 2)
    figure = new_figure(size, size)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8, label="images")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title)
    if len(class_names) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for row in range(matrix.shape[0]):
            for col in range(matrix.shape[1]):
                color = "white" if matrix[row, col] > threshold else "black"
                axes.text(col, row, str(matrix[row, col]), ha="center", va="center",
                          color=color, fontsize=7)
    return save_figure(figure, path, overwrite=overwrite)


def augmentation_figure(images: np.ndarray, augmentation: Augmentation, *, copies: int,
                        title: str) -> Figure:
    """Each of ``images`` (uint8 ``(N, C, H, W)``) beside ``copies`` augmented versions of it.

    Copy ``k`` is what step ``k`` of epoch 0 draws for a batch of these images, so the figure
    shows the training run's own draws for its seed. The pixels are augmented in [0, 1] units
    with the run's background as the fill, which equals augmenting the normalised batch (both
    the interpolation and the fill commute with the normalisation's affine map).
    """
    count = len(images)
    pixels = images.astype(np.float32) / 255.0
    fill = 0.0 if augmentation.fill <= 0.5 else 1.0
    shown = dataclasses.replace(augmentation, fill=fill)
    columns = [pixels] + [shown.apply_numpy(pixels, 0, step, count) for step in range(copies)]
    figure = new_figure(1.1 * (copies + 1), 1.1 * count + 0.5)
    grid = figure.subplots(count, copies + 1, squeeze=False)
    for row in range(count):
        for column, batch in enumerate(columns):
            axes = grid[row, column]
            picture = as_picture(np.clip(batch[row], 0.0, 1.0))
            axes.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title("original" if column == 0 else f"step {column - 1}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    return figure
