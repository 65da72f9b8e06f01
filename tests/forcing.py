"""Forcing the primitives' tuned choices, so that a test checks every path whatever the
constants fitted by benchmarks/fit_constants.py say: which algorithm a correlation takes, and
whether its tiles run in the thread pool."""

from __future__ import annotations

from cnnkit.filters import apply as apply_module
from cnnkit.ops import _core as core_module
from cnnkit.ops import _parallel as parallel_module

PATHS = ("direct", "banded", "fft")


def prefer_path(monkeypatch, path: str) -> None:
    """Make the cost model choose ``path`` wherever the caller allows it (the direct path
    elsewhere): in the correlation workhorse, in the filters' tiling, and for a separable
    filter's choice between two passes and one FFT."""
    def choose(*args, banded: bool = True, fft: bool = True, **kwargs) -> str:
        return path if {"direct": True, "banded": banded, "fft": fft}[path] else "direct"

    monkeypatch.setattr(core_module, "choose_method", choose)
    monkeypatch.setattr(apply_module, "choose_method", choose)
    monkeypatch.setattr(apply_module, "_one_fft_is_cheaper", lambda *shapes: path == "fft")


def count_pool_uses(monkeypatch) -> list:
    """A list that gets one entry each time tiles are handed to the thread pool."""
    uses = []
    real_pool = parallel_module._pool

    def counted_pool():
        uses.append(True)
        return real_pool()

    # set_num_threads empties the pool's cache: it still can.
    counted_pool.cache_info, counted_pool.cache_clear = real_pool.cache_info, real_pool.cache_clear
    monkeypatch.setattr(parallel_module, "_pool", counted_pool)
    return uses
