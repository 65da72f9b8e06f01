"""Shared fixtures for the engine tests: a small architecture, and torch on at most two threads."""

from __future__ import annotations

import json

import pytest

SMALL_ARCH = {
    "name": "small",
    "layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 32},
        {"type": "relu"},
        {"type": "dropout", "p": 0.25},
        {"type": "linear", "out_features": "num_classes"},
    ],
}


@pytest.fixture
def small_arch(tmp_path):
    """Path of a JSON spec of a small CNN (fast to train on two cores)."""
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL_ARCH))
    return str(path)


@pytest.fixture(autouse=True)
def _threads(torch_two_threads):
    """Two torch threads at most in these tests."""


@pytest.fixture(scope="session")
def small_arch_spec():
    """The small CNN as a dict (for fixtures wider than one test)."""
    return SMALL_ARCH
