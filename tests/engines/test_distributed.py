"""Multi-process training with DistributedDataParallel (gloo on the CPU), through torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.specs import SMALL_NO_DROPOUT, write_spec

import cnnkit
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.launch import free_port

SOURCE_ROOT = str(Path(cnnkit.__file__).resolve().parents[1])
HERE = Path(__file__).resolve().parent



def _environment():
    env = {**os.environ, "PYTHONPATH": SOURCE_ROOT + os.pathsep + os.environ.get(
        "PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(nproc):
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}"]


def _train_args(spec, run_dir, epochs=2, *extra):
    return ["train", "--arch", str(spec), "--epochs", str(epochs), "--train-limit", "960",
            "--val-size", "200", "--batch-size", "64", "--seed", "7", "--device", "cpu",
            "--precision", "fp32", "--out", str(run_dir), *extra]


@pytest.fixture
def spec(tmp_path):
    """The engines' small CNN without dropout: dropout draws different masks in each process, so
    the check that N processes follow one process exactly needs a network without it."""
    return write_spec(SMALL_NO_DROPOUT, tmp_path)


def _run(command, timeout=180):
    return subprocess.run(command, env=_environment(), capture_output=True, text=True,
                          timeout=timeout)


def _close(a, b):
    """Weights agree within float tolerance: a different summation order of the gradients
    changes the last bits, which Adam's division by the gradient scale can enlarge."""
    assert a.keys() == b.keys()
    for key in a:
        difference = np.linalg.norm(a[key] - b[key]) / np.linalg.norm(b[key])
        assert difference < 1e-3, (key, difference)


@pytest.mark.slow
def test_two_processes_agree_with_one_and_checkpoints_cross(tmp_path, spec):
    """A 2-process gloo run through torchrun writes one metrics file and checkpoint, keeps the
    weights equal on both ranks, agrees with a 1-process run of the same global batch and exits
    cleanly; its checkpoint resumes in one process, and a 1-process checkpoint resumes in two
    (cnnkit train --nproc 2), both ending where an uninterrupted 1-process run ends."""
    python = [sys.executable, "-m", "cnnkit"]
    one = _run([*python, *_train_args(spec, tmp_path / "one", 2)])
    assert one.returncode == 0, one.stderr[-2000:]
    single = _run([*python, *_train_args(spec, tmp_path / "single", 1)])
    assert single.returncode == 0, single.stderr[-2000:]

    two = _run([*_torchrun(2), "-m", "cnnkit", *_train_args(spec, tmp_path / "two", 1)])
    assert two.returncode == 0, two.stderr[-2000:]
    assert "weights identical on all 2 processes" in two.stdout
    assert two.stdout.count("epoch 1/1") == 1  # only rank 0 prints
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == ["best.safetensors", "checkpoint.safetensors", "config.json", "curves.png",
                     "initial.safetensors", "metrics.csv", "report.html"]
    assert len((tmp_path / "two" / "metrics.csv").read_text().splitlines()) == 2
    state_two, state_single = load_checkpoint(tmp_path / "two"), load_checkpoint(
        tmp_path / "single")
    assert state_two.world_size == 2 and state_single.world_size == 1
    _close(state_two.model, state_single.model)
    assert state_two.history[0]["train_loss"] == pytest.approx(
        state_single.history[0]["train_loss"], rel=1e-5)

    narrowed = _run([*python, "train", "--resume", str(tmp_path / "two"), "--epochs", "2",
                     "--quiet"])
    assert narrowed.returncode == 0, narrowed.stderr[-2000:]
    widened = _run([*python, "train", "--resume", str(tmp_path / "single"), "--epochs", "2",
                    "--nproc", "2", "--quiet"])
    assert widened.returncode == 0, widened.stderr[-2000:]
    expected = load_checkpoint(tmp_path / "one").model
    for folder, world in (("two", 1), ("single", 2)):
        state = load_checkpoint(tmp_path / folder)
        assert state.epoch == 2 and state.world_size == world
        _close(state.model, expected)


@pytest.mark.slow
def test_a_failing_rank_ends_the_job(tmp_path, spec):
    """When rank 1 fails mid-epoch, the whole job exits non-zero within bounded time and the
    error is shown."""
    start = time.monotonic()
    result = _run([*_torchrun(2), str(HERE / "ddp_failing_rank.py"),
                   *_train_args(spec, tmp_path / "run")], timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - start < 120
    assert "simulated read failure on rank 1" in result.stderr
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()
