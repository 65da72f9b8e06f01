"""Shared test configuration: hypothesis profiles, isolation from the network and the user's
cache, torch threads, and the trained runs that every suite shares."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.specs import SMALL, write_spec

settings.register_profile(
    "cnnkit",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("cnnkit")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never reach the internet: data-set downloads are off unless a test serves them."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path_factory):
    """Tests never write to the user's cache: image-folder caches go to a temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def torch_two_threads():
    """torch on two threads at most, restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)


# --- The shared trained runs ---------------------------------------------------------------------
#
# Training is the slowest thing the tests do, so one run is trained per session and every suite
# reads it. A test that writes into a run (figures, model.onnx, a report, a damaged checkpoint)
# takes ``run_copy`` instead; a test whose numbers depend on how a run was trained (epochs,
# seed, what ``cnnkit train`` writes) trains its own.

#: How the shared runs are trained: ``SMALL`` on synthetic digits, briefly.
SHARED_TRAINING = {"dataset": "synthetic-digits", "epochs": 2, "train_limit": 1500,
                   "val_size": 300}


def _files(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with a digest of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _train_shared(folder: Path, **options) -> Path:
    """``SMALL`` trained into ``folder/run`` with ``SHARED_TRAINING`` and ``options``, torch on
    two threads at most."""
    import torch

    from cnnkit.engines.training import TrainConfig, train

    config = TrainConfig(arch=str(write_spec(SMALL, folder)), **{**SHARED_TRAINING, **options})
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    try:
        train(config, folder / "run", evaluate_test=False)
    finally:
        torch.set_num_threads(previous)
    return folder / "run"


def _read_only(run: Path):
    """Yield ``run``; afterwards fail if any test changed, added or removed a file in it."""
    before = _files(run)
    yield run
    assert _files(run) == before, f"a test wrote into the shared run {run}: give it run_copy"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run folder every suite shares, read-only: ``SMALL`` trained by the PyTorch engine
    (CPU, fp32) for two short epochs on synthetic digits."""
    folder = tmp_path_factory.mktemp("trained")
    yield from _read_only(_train_shared(folder, engine="torch", device="cpu", precision="fp32"))


@pytest.fixture(scope="session")
def numpy_run(tmp_path_factory) -> Path:
    """The same network trained by the NumPy engine, for one shorter epoch (the slower engine),
    read-only: for the tests that evaluate a run of either engine by either."""
    folder = tmp_path_factory.mktemp("trained-numpy")
    yield from _read_only(_train_shared(folder, engine="numpy", epochs=1, train_limit=640,
                                        val_size=200))


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of the shared run (``tmp_path/run``), for a test that writes into it."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))
