"""The run folder: file names, and a new run that finds the folder filled once it holds the lock."""

from __future__ import annotations

import pytest

from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def test_checkpoint_names_live_in_the_run_folder(tmp_path):
    """The run folder alone names the checkpoints; both are run files that --overwrite moves."""
    run = RunFolder(tmp_path)
    assert (run.checkpoint.name, run.best.name) == ("checkpoint.safetensors", "best.safetensors")
    assert run.is_own(run.checkpoint.name) and run.is_own(run.best.name)
    assert run.is_own(".checkpoint.safetensors.ab12_x.safetensors") is False
    (tmp_path / ".checkpoint.safetensors.ab12_x.safetensors").write_bytes(b"half")
    assert run._is_temporary(tmp_path / ".checkpoint.safetensors.ab12_x.safetensors")


def test_new_run_refuses_a_folder_filled_between_check_and_lock(tmp_path):
    """Regression: two runs started into one folder both passed check_new; the one that locks
    second must find the other's files and refuse, leaving them and no lock behind."""
    run = RunFolder(tmp_path / "run")
    run.check_new(overwrite=False)
    (tmp_path / "run").mkdir()
    run.checkpoint.write_bytes(b"the other run's checkpoint")
    with pytest.raises(AlreadyExists, match="filled by another run"):
        run.open(overwrite=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.safetensors"]
    assert run.checkpoint.read_bytes() == b"the other run's checkpoint"
    run.open(overwrite=False, resume=True)  # resuming that run is allowed
    run.unlock()
