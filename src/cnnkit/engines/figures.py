"""Figures of a training run: loss and accuracy curves, and the confusion matrix.

Drawn like every cnnkit figure (:mod:`cnnkit.plots`: matplotlib's Agg renderer, imported inside
the functions) and saved atomically; a run's own figures are replaced as the run goes on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cnnkit.plots import new_figure, save_figure

__all__ = ["save_confusion_matrix", "save_training_curves"]


def save_training_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike) -> Path:
    """Loss and accuracy per epoch (training and validation) as a two-panel PNG.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss``, ``train_accuracy`` and,
    when there is a validation split, ``val_loss`` and ``val_accuracy``.
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(9, 3.5)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for key, axes in (("loss", loss_axes), ("accuracy", accuracy_axes)):
        for split in ("train", "val"):
            values = [row.get(f"{split}_{key}") for row in history]
            if all(v is not None and v == v for v in values) and values:
                label = "training" if split == "train" else "validation"
                axes.plot(epochs, values, marker="o", label=label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        axes.legend()
    return save_figure(figure, path, overwrite=True)


def save_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) as a PNG with counts."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(class_names) + 2)
    figure = new_figure(size, size)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
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
    return save_figure(figure, path, overwrite=True)
