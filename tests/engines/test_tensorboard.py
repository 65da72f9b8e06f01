"""TensorBoard logs of a run, read back: tags and counts per step and per epoch, histograms,
kernel images and the projector's files, with both engines; and the refusals."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cnnkit.cli import main
from cnnkit.engines.tensorboard import _kernel_images, observers_for
from cnnkit.engines.training import TrainConfig, train
from cnnkit.errors import InvalidArgument


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                                "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_run_logs_steps_epochs_histograms_kernels_and_embedding(small_arch, tmp_path, engine):
    """2 epochs of 10 steps: 20 step losses and rates, 2 points per epoch metric, 2 histograms
    per weight and gradient, 2 kernel images of 8 kernels, and a projector config naming a
    sprite, 1,000 feature rows of 32 and their class names."""
    logs = tmp_path / "logs"
    config = TrainConfig(dataset="synthetic-digits", arch=small_arch, epochs=2, batch_size=64,
                         val_size=200, train_limit=840, seed=3, engine=engine,
                         tensorboard=str(logs))
    observers = observers_for(config)
    try:
        result = train(config, tmp_path / "run", observers=observers)
    finally:
        for observer in observers:
            observer.close()
    events = _events(logs)
    tags = events.Tags()
    assert [event.step for event in events.Scalars("step/loss")] == list(range(20))
    assert len(events.Scalars("step/lr")) == 20
    first_loss = events.Scalars("step/loss")[0].value
    assert 1.5 < first_loss < 3.5  # about log(10) before any learning
    for tag in ("loss/train", "loss/validation", "accuracy/train", "accuracy/validation",
                "epoch/lr"):
        assert [event.step for event in events.Scalars(tag)] == [1, 2], tag
    validation = [event.value for event in events.Scalars("accuracy/validation")]
    np.testing.assert_allclose(validation, [row["val_accuracy"] for row in result.history],
                               rtol=1e-6)
    assert "weights/0.weight" in tags["histograms"] and "gradients/0.weight" in tags["histograms"]
    assert len(events.Histograms("gradients/7.bias")) == 2
    images = events.Images("kernels/first_conv")
    assert len(images) == 2 and images[0].width > 0
    projector = logs / "projector_config.pbtxt"
    assert projector.is_file()
    text = projector.read_text()
    assert "sprite" in text and "penultimate" in text
    folder = next(logs.glob("*/penultimate"))
    assert (folder / "sprite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (folder / "tensors.tsv").read_text().strip().splitlines()
    assert len(rows) == 1000 and len(rows[0].split("\t")) == 32
    names = (folder / "metadata.tsv").read_text().split()
    assert len(names) == 1000 and set(names) == {str(d) for d in range(10)}


def test_kernel_images_scale_each_kernel_to_the_full_range():
    """Each kernel spans [0, 1]; grey kernels keep one channel, a flat kernel gives zeros."""
    weight = np.zeros((3, 1, 2, 2), np.float32)
    weight[0, 0] = [[-1, 0], [1, 3]]
    weight[1, 0] = [[2, 2], [4, 2]]
    images = _kernel_images(weight)
    assert images.shape == (3, 1, 2, 2)
    np.testing.assert_allclose(images[0, 0], [[0, 0.25], [0.5, 1]])
    np.testing.assert_allclose(images[1, 0], [[0, 0], [1, 0]])
    np.testing.assert_array_equal(images[2], 0)


def test_missing_tensorboard_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    """Without the tensorboard package the option is refused before anything is written."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(InvalidArgument, match=r"cnnkit\[tensorboard\]"):
        observers_for(TrainConfig(tensorboard=str(tmp_path / "logs")))
    status = main(["train", "--tensorboard", str(tmp_path / "logs"), "--out",
                   str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--tensorboard needs tensorboard" in err[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "logs").exists()


def test_tensorboard_folder_that_is_a_file_is_refused(tmp_path):
    """A file where the log folder should be is refused by name."""
    (tmp_path / "logs").write_text("x")
    with pytest.raises(InvalidArgument, match="is a file"):
        observers_for(TrainConfig(tensorboard=str(tmp_path / "logs")))


def test_tensorboard_folder_without_its_observer_is_refused(tmp_path):
    """A library call whose configuration names a log folder but passes no observer to write it
    is refused before anything is written, rather than training without the logs."""
    with pytest.raises(InvalidArgument, match="no observer writes the logs"):
        train(TrainConfig(tensorboard=str(tmp_path / "logs")), tmp_path / "run")
    assert not (tmp_path / "run").exists() and not (tmp_path / "logs").exists()
