"""Threads: the one tiling of cnnkit's primitives and the pool that runs the tiles.

Every primitive that works on large arrays cuts its output into *tiles* of whole rows (of a
batch of images, or of one image) with :func:`row_tiles`, and runs a function over them with
:func:`map_tiles`. While tiles run, BLAS is held to one thread (with threadpoolctl, restored
afterwards), so that the caller's own numpy work keeps its settings and a small matrix product
never waits for a core that another program holds. Both cores are used by running tiles in a
thread pool instead (numpy releases the GIL in its loops): a free core takes the next tile, so a
busy core slows the work down by at most its share. Below :data:`PARALLEL_MIN_WORK` the tiles run
in the calling thread, where the pool's hand-over would cost more than it saves.

The tiles and the code run on each are the same whatever the number of threads, so results are
bit-identical to one thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cnnkit.errors import InvalidArgument

__all__ = [
    "PARALLEL_MIN_WORK",
    "TILE_BYTES",
    "blas_single_thread",
    "get_num_threads",
    "map_tiles",
    "row_tiles",
    "set_num_threads",
]

#: Bytes of one tile's column matrix (one row per tap, one column per output of the tile):
#: small enough to bound the extra memory and keep the tile near the cores, large enough that
#: the Python calls per tile cost little and a batch of small images shares one matrix
#: product. Fitted with ``benchmarks/fit_constants.py``.
TILE_BYTES = 8 * 2**20

#: Work (in multiply-adds of the direct path) below which tiles run in the calling thread.
#: Fitted with ``benchmarks/fit_constants.py``.
PARALLEL_MIN_WORK = 2**21

T = TypeVar("T")

_state = threading.local()
_lock = threading.Lock()
_num_threads = [os.cpu_count() or 1]
_blas_depth = [0]
_blas_saved: list[int] = []


def get_num_threads() -> int:
    """Threads that cnnkit's primitives use for large arrays (default: the CPU count)."""
    return _num_threads[0]


def set_num_threads(count: int) -> None:
    """Set the threads that cnnkit's primitives use for large arrays (1: the calling thread).

    Results do not depend on it: they are bit-identical for every count.

    >>> previous = get_num_threads(); set_num_threads(1); get_num_threads()
    1
    >>> set_num_threads(previous)
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidArgument(f"count must be a positive integer, got {count!r}")
    _num_threads[0] = count
    if _pool.cache_info().currsize:
        _pool().shutdown(wait=False)
    _pool.cache_clear()


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Hold the BLAS libraries that numpy loaded to one thread; restore their count after.

    Nested and concurrent uses keep the first caller's count to restore.
    """
    libraries = _blas_libraries()
    with _lock:
        if _blas_depth[0] == 0:
            _blas_saved[:] = [library.num_threads for library in libraries]
            for library in libraries:
                library.set_num_threads(1)
        _blas_depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _blas_depth[0] -= 1
            if _blas_depth[0] == 0:
                for library, count in zip(libraries, _blas_saved):
                    library.set_num_threads(count)


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=get_num_threads(), thread_name_prefix="cnnkit")


# A forked child (a data-loader worker, a training process) has none of the parent's threads:
# it starts a pool of its own when it needs one.
os.register_at_fork(after_in_child=_pool.cache_clear)


def row_tiles(n_rows: int, row_bytes: int) -> list[tuple[int, int]]:
    """Split ``n_rows`` rows of ``row_bytes`` each into ``(start, stop)`` tiles of about
    :data:`TILE_BYTES` (at least one row each).

    >>> row_tiles(10, TILE_BYTES // 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    step = max(1, TILE_BYTES // max(1, row_bytes))
    return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _run(function: Callable[[T], object], tile: T) -> object:
    """``function(tile)``, marked as running inside a tile so that nested calls stay serial."""
    outer = getattr(_state, "inside", False)
    _state.inside = True
    try:
        return function(tile)
    finally:
        _state.inside = outer


def _free_cores() -> int:
    """Cores not taken by other runnable threads right now (``/proc/loadavg``'s running count,
    less the thread asking), at least 1; the CPU count where that is not known.

    On a core that another program keeps busy, a thread of the pool would be preempted while it
    holds the interpreter lock and stall the others, which is slower than not using that core.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            running = int(handle.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return cpus or 1
    return max(1, (cpus or 1) - (running - 1))


def map_tiles(function: Callable[[T], object], tiles: Sequence[T], work: float) -> list:
    """``[function(tile) for tile in tiles]``, on several threads when ``work`` is large enough.

    The calling thread and up to ``get_num_threads() - 1`` workers of the pool take the next tile
    in turn until none is left, so a slow thread holds up no other; only as many threads run as
    there are free cores (see :func:`_free_cores`). BLAS is held to one thread throughout.
    Inside a tile (a nested call) everything runs in the calling thread.
    """
    nested = getattr(_state, "inside", False)
    run = functools.partial(_run, function)
    with blas_single_thread():
        threads = 1
        if not nested and len(tiles) > 1 and get_num_threads() > 1 and work >= PARALLEL_MIN_WORK:
            threads = min(get_num_threads(), len(tiles), _free_cores())
        if threads == 1:
            return [run(tile) for tile in tiles]
        results: list = [None] * len(tiles)
        order = iter(range(len(tiles)))  # next() on it is atomic under the interpreter lock

        def take_tiles() -> None:
            for index in order:
                results[index] = run(tiles[index])

        helpers = [_pool().submit(take_tiles) for _ in range(threads - 1)]
        take_tiles()
        for helper in helpers:
            helper.result()
        return results
