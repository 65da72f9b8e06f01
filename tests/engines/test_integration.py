"""End-to-end training: real Fashion-MNIST, CNN versus a linear model, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit.data import locate
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.training import TrainConfig, train

SOURCE_ROOT = str(Path(cnnkit.__file__).resolve().parents[1])


@pytest.mark.slow
@pytest.mark.skipif(
    locate("fashion-mnist") is None,
    reason="Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)",
)
def test_tutorial_cnn_reaches_85_percent_on_fashion_mnist(tmp_path):
    """The tutorial CNN trained on 12,000 Fashion-MNIST images for 2 epochs scores >= 85% on
    the full 10,000-image test set."""
    # The learning rate decays over the two epochs (cosine): with a constant rate the final
    # accuracy scatters between 84.9% and 86.6% over seeds and precisions, with the decay
    # between 86.1% and 86.7%.
    config = TrainConfig(dataset="fashion-mnist", epochs=2, val_size=1000, train_limit=12000,
                         seed=1, schedule="cosine")
    result = train(config, tmp_path / "run")
    assert result.history[-1]["epoch"] == 2
    assert result.test_accuracy >= 0.85, result.test_accuracy


@pytest.mark.slow
@pytest.mark.skipif(
    locate("fashion-mnist") is None,
    reason="Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)",
)
def test_numpy_engine_lands_in_the_pytorch_engines_band_on_fashion_mnist(tmp_path):
    """The NumPy engine, on the same 12,000 Fashion-MNIST images and settings as the PyTorch
    test above, scores >= 85% on the 10,000 test images (PyTorch: 86.1% to 86.7%)."""
    config = TrainConfig(dataset="fashion-mnist", epochs=2, val_size=1000, train_limit=12000,
                         seed=1, schedule="cosine", engine="numpy")
    result = train(config, tmp_path / "run")
    assert result.engine == "numpy" and result.history[-1]["epoch"] == 2
    assert result.test_accuracy >= 0.85, result.test_accuracy


@pytest.mark.slow
def test_cnn_beats_a_linear_model_on_synthetic_digits(tmp_path, small_arch):
    """On synthetic digits a small CNN clearly beats a linear classifier trained the same way."""
    linear = tmp_path / "linear.json"
    linear.write_text(json.dumps({"name": "linear", "layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": "num_classes"}]}))
    scores = {}
    for name, arch in (("cnn", small_arch), ("linear", str(linear))):
        config = TrainConfig(dataset="synthetic-digits", arch=arch, epochs=3, val_size=500,
                             train_limit=4000, seed=1)
        scores[name] = train(config, tmp_path / name).test_accuracy
    assert scores["cnn"] > scores["linear"] + 0.1, scores


def _train_command(run_dir, *extra):
    return [sys.executable, "-m", "cnnkit", "train", "--epochs", "3", "--train-limit", "3000",
            "--val-size", "300", "--seed", "5", "--threads", "1", "--quiet", "--out",
            str(run_dir), *extra]


def _environment():
    return {**os.environ, "PYTHONPATH": SOURCE_ROOT + os.pathsep + os.environ.get(
        "PYTHONPATH", "")}


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """A run killed with SIGKILL during epoch 2 resumes from epoch 1's checkpoint and ends
    with the same weights, bit for bit, as an uninterrupted run."""
    env = _environment()
    subprocess.run(_train_command(tmp_path / "straight"), env=env, check=True, timeout=300)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_command(killed), env=env)
    metrics = killed / "metrics.csv"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        time.sleep(0.3)  # well inside epoch 2
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert load_checkpoint(killed).epoch == 1

    resume = [sys.executable, "-m", "cnnkit", "train", "--resume", str(killed), "--threads",
              "1", "--quiet"]
    subprocess.run(resume, env=env, check=True, timeout=300)
    final, reference = load_checkpoint(killed), load_checkpoint(tmp_path / "straight")
    assert final.epoch == reference.epoch == 3
    for key, array in reference.model.items():
        assert np.array_equal(final.model[key], array), key
    assert final.history[1:] == [
        {**row, "epoch_seconds": final.history[1 + i]["epoch_seconds"],
         "images_per_second": final.history[1 + i]["images_per_second"]}
        for i, row in enumerate(reference.history[1:])
    ]
