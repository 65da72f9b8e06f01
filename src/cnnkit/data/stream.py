"""Shuffled batches from arrays in memory or memory-mapped on disk, without torch.

:class:`BatchSource` gives the same batches, in the same order, whether its images are resident
(an array in memory) or streamed (a read-only memory map of the cache, read on a background
thread a few batches ahead): the order of an epoch depends only on ``(seed, epoch)``. Rows are
shuffled in two stages so that a streamed epoch reads the file in large pieces: the rows are cut
into blocks of ``block_size`` neighbouring rows, the blocks are shuffled, and the rows are
shuffled within each group of ``window_blocks`` consecutive blocks of that order. An epoch can
start at any batch, which is how an interrupted epoch is resumed exactly.

:func:`choose_residency` decides between the two from the memory budget and says why.

>>> images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
>>> source = BatchSource(images, np.arange(10), batch_size=4, seed=0, block_size=2)
>>> len(source), sorted(int(x) for batch, _ in source.epoch(0) for x in batch.ravel())
(3, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_int
from cnnkit.budget import MEMORY_SHARE, available_memory, format_bytes
from cnnkit.errors import InvalidArgument, ShapeError

__all__ = ["BatchSource", "Residency", "batch_source", "choose_residency", "epoch_order"]


def epoch_order(
    count: int, epoch: int, *, seed: int, block_size: int = 1024, window_blocks: int = 16
) -> np.ndarray:
    """The positions ``0 .. count-1`` in the order epoch ``epoch`` visits them.

    Blocks of ``block_size`` neighbouring positions are shuffled, then positions are shuffled
    within each window of ``window_blocks`` blocks; the generator is seeded with
    ``(seed, epoch)``. With ``block_size=1`` and ``window_blocks=1`` this is the global shuffle
    ``numpy.random.default_rng([seed, epoch]).permutation(count)`` that resident data uses
    (:func:`cnnkit.engines.base.epoch_order`).

    >>> epoch_order(6, 0, seed=3, block_size=2).tolist() == epoch_order(6, 0, seed=3,
    ...     block_size=2).tolist()
    True
    >>> import numpy as np
    >>> bool((epoch_order(50, 2, seed=1, block_size=1, window_blocks=1)
    ...       == np.random.default_rng([1, 2]).permutation(50)).all())
    True
    """
    rng = np.random.default_rng([check_int(seed, "seed", minimum=0),
                                 check_int(epoch, "epoch", minimum=0)])
    count = check_int(count, "count", minimum=0)
    block_size = check_int(block_size, "block_size", minimum=1)
    window_blocks = check_int(window_blocks, "window_blocks", minimum=1)
    blocks = -(-count // block_size)
    # The blocks in shuffled order, expanded to their positions (the last block may be short).
    starts = rng.permutation(blocks) * block_size
    order = (starts[:, None] + np.arange(block_size)).ravel()
    order = order[order < count]
    ends = np.cumsum(np.minimum(block_size, count - starts))
    window_ends = ends[window_blocks - 1 :: window_blocks].tolist()
    if not window_ends or window_ends[-1] != count:
        window_ends.append(count)
    begin = 0
    for end in window_ends:
        if end - begin > 1:  # a window of one position has nothing to shuffle
            order[begin:end] = rng.permutation(order[begin:end])
        begin = end
    return order


class BatchSource:
    """Seeded, shuffled batches of uint8 images and int64 labels, resumable from any batch.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``(N, C, H, W)``, in memory or a memory map.
    labels : numpy.ndarray
        ``(N,)`` integer labels.
    batch_size : int
        Global batch size (summed over processes).
    seed : int or None
        With the epoch, fixes the order; None serves the rows in their order (evaluation).
    indices : numpy.ndarray, optional
        The rows to serve (a training split); default all. Sorted rows keep reads local.
    block_size, window_blocks : int
        The shuffle's blocks of neighbouring rows and how many blocks are shuffled together.
    read_ahead : int
        Batches read ahead on a background thread; 0 reads each batch when it is asked for
        (what a resident array needs).
    drop_last : bool
        Leave out a last, smaller batch.
    shard : (int, int), optional
        ``(rank, world_size)``: this process reads positions ``rank, rank + world_size, ...``
        of every global batch and no other rows (the split the resident loaders make), so the
        shards are disjoint and together cover the epoch.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        seed: int | None,
        indices: np.ndarray | None = None,
        block_size: int = 1024,
        window_blocks: int = 16,
        read_ahead: int = 0,
        drop_last: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ShapeError(f"images must be uint8 (N, C, H, W), got {images.dtype} "
                             f"{images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ShapeError(f"labels must be ({len(images)},), got {labels.shape}")
        self.images, self.labels = images, labels
        self.indices = (np.arange(len(images)) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(images)):
            raise InvalidArgument(f"indices must lie in 0..{len(images) - 1}")
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.seed = None if seed is None else check_int(seed, "seed", minimum=0)
        self.block_size = check_int(block_size, "block_size", minimum=1)
        self.window_blocks = check_int(window_blocks, "window_blocks", minimum=1)
        self.read_ahead = check_int(read_ahead, "read_ahead", minimum=0)
        self.drop_last = bool(drop_last)
        rank, world = (0, 1) if shard is None else shard
        world = check_int(world, "world_size", minimum=1)
        if not 0 <= check_int(rank, "rank", minimum=0) < world:
            raise InvalidArgument(f"rank must be in 0..{world - 1}, got {rank}")
        self.rank, self.world_size = rank, world

    def _all_batches(self) -> int:
        full, rest = divmod(len(self.indices), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __len__(self) -> int:
        """Batches per epoch (every process takes its part of each)."""
        return self._all_batches()

    def global_size(self, batch: int) -> int:
        """Rows in global batch ``batch``, summed over processes."""
        return min(self.batch_size, len(self.indices) - batch * self.batch_size)

    def batch_rows(self, epoch: int) -> list[np.ndarray]:
        """The rows of ``images`` in this process's part of each batch of epoch ``epoch``."""
        if self.seed is None:
            order = self.indices
        else:
            order = self.indices[epoch_order(len(self.indices), epoch, seed=self.seed,
                                             block_size=self.block_size,
                                             window_blocks=self.window_blocks)]
        return [order[start * self.batch_size : (start + 1) * self.batch_size]
                [self.rank :: self.world_size] for start in range(len(self))]

    def _read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Read in file order (a memory map then touches each page once, front to back), then
        # put the rows back in the batch's order.
        order = np.argsort(rows, kind="stable")
        images = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        images[order] = self.images[rows[order]]
        return images, np.asarray(self.labels[rows], dtype=np.int64)

    def epoch(
        self, epoch: int, *, start_batch: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(images, labels)`` for the batches of epoch ``epoch`` from ``start_batch`` on.

        The images are uint8 ``(B, C, H, W)`` arrays in memory, the labels int64 ``(B,)``.
        """
        rows = self.batch_rows(check_int(epoch, "epoch", minimum=0))
        start_batch = check_int(start_batch, "start_batch", minimum=0)
        if start_batch > len(rows):
            raise InvalidArgument(
                f"start_batch must be at most {len(rows)} (batches per epoch), got {start_batch}"
            )
        wanted = rows[start_batch:]
        if self.read_ahead == 0:
            for batch in wanted:
                yield self._read(batch)
            return
        yield from _read_ahead(self._read, wanted, self.read_ahead)


_DONE = object()


def _read_ahead(
    read: Callable[[np.ndarray], tuple], batches: list[np.ndarray], depth: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``read(batch)`` for each batch, computed on a thread up to ``depth`` batches ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for batch in batches:
                item = read(batch)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    thread = threading.Thread(target=work, name="cnnkit-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class Residency:
    """Whether a data set is held in memory or streamed, and the sentence that says why."""

    streaming: bool
    reason: str


def choose_residency(nbytes: int, *, budget: int | None = None) -> Residency:
    """Resident when ``nbytes`` fit in the memory budget, else streamed from the memory map.

    The budget is ``MEMORY_SHARE`` of :func:`cnnkit.budget.available_memory` unless given.

    >>> choose_residency(10, budget=100).streaming, choose_residency(1000, budget=100).streaming
    (False, True)
    """
    nbytes = check_int(nbytes, "nbytes", minimum=0)
    if budget is None:
        budget = int(available_memory() * MEMORY_SHARE)
    budget = check_int(budget, "budget", minimum=0)
    if nbytes <= budget:
        return Residency(False, f"images ({format_bytes(nbytes)}) fit the memory budget "
                                f"({format_bytes(budget)}): held in memory")
    return Residency(True, f"images ({format_bytes(nbytes)}) exceed the memory budget "
                           f"({format_bytes(budget)}): streamed from the memory-mapped cache")


def batch_source(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int | None,
    indices: np.ndarray | None = None,
    budget: int | None = None,
    read_ahead: int = 4,
    block_size: int = 1024,
    window_blocks: int = 16,
    shard: tuple[int, int] | None = None,
    report: Callable[[str], None] | None = None,
) -> BatchSource:
    """A :class:`BatchSource` over the rows ``indices`` of ``images``, resident or streamed.

    Resident: the rows are copied into memory once (in their order, so the batches are the
    same as streamed ones). Streamed: batches are read from ``images`` (a memory map) on a
    background thread ``read_ahead`` batches ahead. ``report`` receives the decision. The
    other arguments are :class:`BatchSource`'s.
    """
    rows = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    nbytes = len(rows) * int(np.prod(images.shape[1:]))
    decision = choose_residency(nbytes, budget=budget)
    if report is not None:
        report(decision.reason)
    options = {"seed": seed, "block_size": block_size, "window_blocks": window_blocks,
               "shard": shard}
    if decision.streaming:
        return BatchSource(images, labels, batch_size, indices=rows, read_ahead=read_ahead,
                           **options)
    resident = np.ascontiguousarray(images[rows])
    return BatchSource(resident, np.asarray(labels)[rows], batch_size, **options)
