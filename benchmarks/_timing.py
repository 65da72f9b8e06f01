"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator


def best_time(
    fn: Callable[..., object], *args: object, repeats: int = 5, budget: float = 3.0
) -> float:
    """Best wall-clock time of ``fn(*args)`` in seconds, over up to ``repeats`` runs after a
    warm-up. Stops early once ``budget`` seconds are spent, so slow references do not stall the
    run.
    """
    # Let the thread pools of the previous measurement (OpenCV's, BLAS's) go idle first: their
    # spinning workers would otherwise compete with this one for the cores.
    time.sleep(0.1)
    start = time.perf_counter()
    fn(*args)
    best = time.perf_counter() - start
    spent = best
    for _ in range(repeats - 1):
        if spent > budget:
            break
        start = time.perf_counter()
        fn(*args)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
    return best


def format_ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.2f}"


def format_ratio(ours: float, theirs: float | None) -> str:
    return "—" if theirs is None else f"{ours / theirs:.2f}"


@contextlib.contextmanager
def busy_core(enabled: bool = True) -> Iterator[None]:
    """Keep one core busy (a second process spinning on the last CPU) while the block runs:
    a machine where another program is working."""
    if not enabled:
        yield
        return
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    spinner.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        spinner.terminate()
        spinner.join()


def _spin() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    while True:
        pass
