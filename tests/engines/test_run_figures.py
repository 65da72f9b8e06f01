"""Figures drawn from a run's weights go out of date when training writes new weights."""

from __future__ import annotations

import dataclasses

from cnnkit.engines.training import TrainConfig, train
from cnnkit.runfolder import RunFolder


def test_resume_removes_figures_of_the_earlier_weights(small_arch, tmp_path):
    """Regression: after a resume, confusion, weights and explanation figures of the earlier
    weights stayed, out of date; now the first new checkpoint removes them, says so, and leaves
    the user's own files alone."""
    config = TrainConfig(dataset="synthetic-digits", arch=small_arch, epochs=1, batch_size=64,
                         val_size=100, train_limit=400, seed=2, engine="numpy")
    run = tmp_path / "run"
    train(config, run, evaluate_test=False)
    stale = ["confusion-test.png", "weights.png", "explain-seven.png"]
    for name in [*stale, "notes.png"]:
        (run / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    lines = []
    train(dataclasses.replace(config, epochs=2), run, resume=True, evaluate_test=False,
          log=lines.append)
    assert not any((run / name).exists() for name in stale)
    assert (run / "notes.png").exists()
    assert any(all(name in line for name in stale) for line in lines), lines


def test_overwrite_sets_the_earlier_runs_figures_aside():
    """The weight figures are the run's own: --overwrite replaces them with the other files."""
    folder = RunFolder(".")
    for name in ("weights.png", "confusion-validation.png", "explain-cat.png", "curves.png"):
        assert folder.is_own(name), name
    assert not folder.is_own("notes.png")
