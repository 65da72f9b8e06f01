"""Training on several "machines" through torchrun's elastic launcher, all on this one: each
machine is a ``cnnkit train --nnodes 2`` launcher on 127.0.0.1, and they meet through the c10d
rendezvous (CPU, gloo, the tiny network on a few hundred images)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.processes import child_environment
from tests.specs import TINY, write_spec

from cnnkit.cli import main
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.launch import free_port

#: The fault injector that the kill test puts first on the processes' path.
FAULTS = Path(__file__).resolve().parent / "faults"
#: 320 training images in batches of 32: 10 steps an epoch, a checkpoint after steps 4 and 8.
STEPS_BETWEEN_CHECKPOINTS = 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny MNIST-named data set (400 training, 120 test images) and the tiny network."""
    from cnnkit.data.idx import write_idx
    from cnnkit.data.synthetic import make_digits

    folder = tmp_path_factory.mktemp("elastic-inputs")
    images, labels = make_digits(520, 5)
    for prefix, rows in (("train", slice(0, 400)), ("t10k", slice(400, None))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[rows])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[rows].astype(np.uint8))
    return folder, write_spec(TINY, folder)


def _train_argv(inputs, run: Path, *extra: str) -> list[str]:
    data, spec = inputs
    return ["train", "--dataset", "mnist", "--data-dir", str(data), "--arch", str(spec),
            "--epochs", "2", "--val-size", "80", "--batch-size", "32", "--seed", "3",
            "--device", "cpu", "--precision", "fp32", "--no-report", "--out", str(run),
            "--checkpoint-every", str(STEPS_BETWEEN_CHECKPOINTS), *extra]


def _start(argv: list[str], **environment: str) -> subprocess.Popen:
    """``cnnkit ARGV`` in its own process group, one thread per process."""
    return subprocess.Popen([sys.executable, "-m", "cnnkit", *argv],
                            env=child_environment(OMP_NUM_THREADS="1", **environment),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(processes: list[subprocess.Popen], timeout: float = 120) -> list[tuple]:
    """``(status, stdout, stderr)`` of each process; all are killed if one overruns."""
    deadline = time.monotonic() + timeout
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((process.returncode, stdout, stderr))
        return results
    except subprocess.TimeoutExpired:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
        raise


def _two_machines(inputs, run: Path, *extra: str, **environment: str) -> list[tuple]:
    """The same command as machines 0 and 1 meeting at 127.0.0.1; both must succeed."""
    endpoint = f"127.0.0.1:{free_port()}"
    argv = _train_argv(inputs, run, "--nnodes", "2", "--rdzv-endpoint", endpoint,
                       "--rdzv-timeout", "60", *extra)
    results = _finish([_start([*argv, "--node-rank", str(rank)], **environment)
                       for rank in (0, 1)])
    for status, _, stderr in results:
        assert status == 0, stderr[-3000:]
    return results


def _same_state(run: Path, reference: Path) -> None:
    """Bit for bit the same weights, Adam moments and losses."""
    state, expected = load_checkpoint(run), load_checkpoint(reference)
    assert state.world_size == expected.world_size == 2
    assert state.model.keys() == expected.model.keys()
    for key in expected.model:
        np.testing.assert_array_equal(state.model[key], expected.model[key], err_msg=key)
    for index, moments in expected.optimizer["state"].items():
        for name, value in moments.items():
            np.testing.assert_array_equal(state.optimizer["state"][index][name], value)
    assert ([row["train_loss"] for row in state.history]
            == [row["train_loss"] for row in expected.history])


@pytest.fixture(scope="module")
def two_machines(inputs, tmp_path_factory):
    """An uninterrupted run on two machines of one process each, and what they printed."""
    run = tmp_path_factory.mktemp("elastic") / "two-machines"
    return run, _two_machines(inputs, run)


@pytest.mark.slow
def test_two_machines_train_exactly_as_two_processes_on_one(inputs, two_machines, tmp_path):
    """Two machines of one process each end bit for bit where --nproc 2 on one machine ends
    (same seed: same shards, same sums); only rank 0 prints, and no lock is left."""
    run, results = two_machines
    printed = "".join(stdout for _, stdout, _ in results)
    assert printed.count("epoch 2/2") == 1 and "weights identical on all 2 processes" in printed
    one = _finish([_start(_train_argv(inputs, tmp_path / "one", "--nproc", "2"))])[0]
    assert one[0] == 0, one[2][-3000:]
    _same_state(run, tmp_path / "one")
    assert sorted(path.name for path in run.iterdir()) == [
        "best.safetensors", "checkpoint.safetensors", "config.json", "curves.png",
        "initial.safetensors", "metrics.csv"]


@pytest.mark.slow
def test_a_killed_worker_restarts_the_group_from_the_mid_epoch_checkpoint(
        inputs, two_machines, tmp_path):
    """Rank 0 (the lock's holder) killed with SIGKILL at step 6 of epoch 2: torchrun restarts
    both machines' processes, the new rank 0 takes over the dead one's lock, every rank resumes
    at step 4 of epoch 2, and the weights end bit for bit where the uninterrupted run's do."""
    marker = tmp_path / "killed"
    results = _two_machines(
        inputs, tmp_path / "run", "--max-restarts", "1",
        CNNKIT_TEST_KILL=f"0:2:6:{marker}",
        PYTHONPATH=f"{FAULTS}{os.pathsep}{child_environment()['PYTHONPATH']}")
    assert marker.exists()  # the kill happened
    printed = "".join(stdout for _, stdout, _ in results)
    assert "restarted attempt of torchrun job" in printed
    assert "resuming at step 4 of epoch 2 of 2" in printed
    errors = "".join(stderr for _, _, stderr in results)
    assert "internal error" not in errors  # the survivor lost its peer: no bug of cnnkit's
    _same_state(tmp_path / "run", two_machines[0])
    assert not (tmp_path / "run" / ".lock").exists()


@pytest.mark.slow
def test_a_machine_that_never_joins_ends_in_a_timeout_error(inputs, tmp_path):
    """Machine 0 alone, its partner never started: one error line and exit status 2 once the
    join timeout has passed, and no run folder."""
    started = time.monotonic()
    status, _, stderr = _finish([_start(_train_argv(
        inputs, tmp_path / "run", "--nnodes", "2", "--node-rank", "0", "--rdzv-endpoint",
        f"127.0.0.1:{free_port()}", "--rdzv-timeout", "2"))], timeout=60)[0]
    assert status == 2, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("cnnkit: error: not every machine joined the rendezvous"), last
    assert "within 2 s" in last and "Traceback" not in stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--node-rank", "1"], "--node-rank is for runs on several machines"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:29400"],
     "--node-rank must be in 0..1"),
    (["--nnodes", "2"], "--rdzv-endpoint HOST:PORT is needed"),
    (["--nnodes", "2", "--rdzv-endpoint", "h"], "--rdzv-endpoint must be HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "h:65536"], "--rdzv-endpoint must be HOST:PORT"),
    (["--nnodes", "3:2", "--rdzv-endpoint", "h:29400"], "--nnodes must be"),
    (["--nnodes", "two", "--rdzv-endpoint", "h:29400"], "--nnodes must be"),
    (["--max-restarts", "-1"], "--max-restarts must be an integer >= 0"),
    (["--nproc", "2", "--rdzv-timeout", "0"], "--rdzv-timeout must be a positive integer"),
    (["--nproc", "2", "--rdzv-id", "my job"], "--rdzv-id must be"),
    (["--rdzv-endpoint", "h:29400"], "are for runs through torchrun"),
    (["--nproc", "2", "--engine", "numpy"], "the numpy engine runs in one process"),
    (["--checkpoint-every", "0"], "checkpoint_every must be a positive integer"),
])
def test_bad_launch_options_are_refused_before_anything_is_written(
        inputs, tmp_path, capsys, options, message):
    """Each bad combination: one line on stderr, exit status 2, no run folder."""
    assert main([*_train_argv(inputs, tmp_path / "run"), *options]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "run").exists()


def test_checkpoints_every_few_steps_resume_exactly_in_one_process(inputs, tmp_path):
    """One process with checkpoint_every=4 that fails at step 6 of epoch 2 leaves the checkpoint
    of step 4, and resuming it ends bit for bit where an uninterrupted run ends."""
    from cnnkit.engines.training import TrainConfig, train

    data, spec = inputs
    config = TrainConfig(dataset="mnist", data_dir=str(data), arch=str(spec), epochs=2,
                         val_size=80, batch_size=32, seed=3, device="cpu", precision="fp32",
                         checkpoint_every=STEPS_BETWEEN_CHECKPOINTS)

    class Crash:
        def on_step(self, engine, epoch, step, steps, lr):
            if (epoch, step) == (1, 5):
                raise OSError("simulated crash after step 6 of epoch 2")

        def on_epoch(self, row, engine):
            pass

        def on_end(self, engine, data, model_info, epoch):
            pass

    train(config, tmp_path / "whole", evaluate_test=False)
    with pytest.raises(OSError, match="simulated crash"):
        train(config, tmp_path / "crashed", evaluate_test=False, observers=[Crash()])
    saved = load_checkpoint(tmp_path / "crashed")
    assert (saved.epoch, saved.extra["partial_epoch"]["step"]) == (1, 4)
    train(config, tmp_path / "crashed", resume=True, evaluate_test=False)
    whole, resumed = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "crashed")
    for key in whole.model:
        np.testing.assert_array_equal(resumed.model[key], whole.model[key], err_msg=key)
