"""The training-curves figure: a title, percent as the terminal prints it, the best epoch."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnnkit.engines.figures import best_epoch, save_training_curves, training_curves_figure

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.61, "val_loss": 0.7, "val_accuracy": 0.7},
    {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.82, "val_loss": 0.4, "val_accuracy": 0.9},
    {"epoch": 3, "train_loss": 0.3, "train_accuracy": 0.91, "val_loss": 0.5, "val_accuracy": 0.9},
]


def test_best_epoch_is_the_first_with_the_highest_validation_accuracy():
    """As training keeps best.safetensors: a later tie does not move it; without validation the
    training accuracy decides."""
    assert best_epoch(HISTORY) == (2, "validation", 0.9)
    no_validation = [{**row, "val_accuracy": None} for row in HISTORY]
    assert best_epoch(no_validation) == (3, "training", 0.91)
    assert best_epoch([]) is None


def test_curves_have_a_title_percent_accuracy_and_the_best_epoch_marked(tmp_path):
    """Regression: curves.png had no title, fractions where the terminal prints percent, and no
    mark at the best epoch."""
    figure = training_curves_figure(HISTORY)
    assert figure.get_suptitle() == ("Training curves: best validation accuracy 90.00% at epoch "
                                     "2 of 3 (best.safetensors)")
    loss_axes, accuracy_axes = figure.axes
    assert accuracy_axes.get_ylabel() == "accuracy (%)"
    plotted = {line.get_label(): line.get_ydata() for line in accuracy_axes.lines}
    np.testing.assert_allclose(plotted["training"], [61.0, 82.0, 91.0])
    np.testing.assert_allclose(plotted["validation"], [70.0, 90.0, 90.0])
    for axes in (loss_axes, accuracy_axes):
        marks = [line for line in axes.lines if line.get_label() == "best epoch (2)"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]
    path = save_training_curves(HISTORY, tmp_path / "curves.png")
    with Image.open(path) as written:
        assert written.text["Title"] == figure.get_suptitle()
    save_training_curves(HISTORY[:1], path)  # a run's own figure: replaced as the run goes on
