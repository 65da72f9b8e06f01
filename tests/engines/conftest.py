"""Shared fixtures for the engine tests: the engines' small network as a spec file, and torch on
at most two threads."""

from __future__ import annotations

import pytest
from tests.specs import SMALL_DROPOUT, write_spec


@pytest.fixture
def small_arch(tmp_path):
    """Path of a JSON spec of the engines' small CNN (with dropout; fast to train on two
    cores)."""
    return str(write_spec(SMALL_DROPOUT, tmp_path))


@pytest.fixture(autouse=True)
def _threads(torch_two_threads):
    """Two torch threads at most in these tests."""
