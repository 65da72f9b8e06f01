"""Shared test configuration: hypothesis profiles and reference helpers."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

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
