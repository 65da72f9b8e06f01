"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


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
