"""The demo's short training run."""

from __future__ import annotations

import pytest

from cnnkit.data import locate
from cnnkit.engines import demo_training


def test_demo_training_reports_accuracy_and_paths(tmp_path):
    """demo_training says which data it uses, trains on train_images images besides the
    validation ones, and returns the test accuracy and the run's files."""
    lines = []
    result = demo_training(tmp_path / "demo", epochs=1, train_images=500, progress=False,
                           log=lines.append)
    expected = "fashion-mnist" if locate("fashion-mnist") is not None else "synthetic-digits"
    assert result["dataset"] == expected
    assert 0.1 < result["test_accuracy"] <= 1.0
    for key in ("checkpoint", "metrics", "curves"):
        assert result[key].is_file()
    assert any(line.startswith("epoch 1/1") for line in lines)
    assert lines[0].startswith("data: ")  # which data, and why
    held_out = 5000 if expected == "fashion-mnist" else 1000
    assert any(f"500 training, {held_out} validation images" in line for line in lines), lines


def test_demo_training_refuses_bad_arguments(tmp_path):
    """Epoch and image counts must be positive integers."""
    with pytest.raises(ValueError, match="epochs"):
        demo_training(tmp_path, epochs=0)
    with pytest.raises(TypeError, match="train_images"):
        demo_training(tmp_path, train_images=1.5)
