"""torch on two threads in the explanation and report tests, and the report of the shared run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _threads(torch_two_threads):
    """Two torch threads at most in these tests."""


@pytest.fixture(scope="session")
def report_path(trained_run, tmp_path_factory):
    """The report of a copy of the shared run (written into the run, as RUN/report.html),
    written once."""
    import torch

    from cnnkit.report import write_report

    run = Path(shutil.copytree(trained_run, tmp_path_factory.mktemp("report") / "run"))
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    try:
        return write_report(run)
    finally:
        torch.set_num_threads(previous)
