"""A small trained run shared by the explanation and report tests, and torch on two threads."""

from __future__ import annotations

import json

import pytest
import torch
from tests.specs import conv_pool_spec

SMALL = conv_pool_spec("small", (6, 8))


@pytest.fixture(autouse=True)
def _threads(torch_two_threads):
    """Two torch threads at most in these tests."""


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A run folder: the small CNN trained for two short epochs on synthetic digits."""
    from cnnkit.engines.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("explain")
    spec = folder / "small.json"
    spec.write_text(json.dumps(SMALL))
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    try:
        config = TrainConfig(dataset="synthetic-digits", arch=str(spec), epochs=2,
                             train_limit=1500, val_size=300, device="cpu", precision="fp32")
        train(config, folder / "run", evaluate_test=False)
    finally:
        torch.set_num_threads(previous)
    return folder / "run"


@pytest.fixture(scope="session")
def report_path(run_dir, tmp_path_factory):
    """The run's report, written once."""
    from cnnkit.report import write_report

    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    try:
        return write_report(run_dir)
    finally:
        torch.set_num_threads(previous)
