"""Batches for training and evaluation without per-sample Python work.

The textbook loop wraps the images in a ``TensorDataset`` and lets a ``DataLoader`` index them
one sample at a time, stack the samples into a batch and copy every batch from host memory. Here
the whole uint8 data set is put on the device once when it fits (*resident*): shuffling is one
``randperm`` per epoch, a batch is one indexing operation, and scaling to float happens on the
device. When the data set does not fit, the *stream* path keeps it in (pinned) host memory,
gathers each batch there and copies it asynchronously while the previous batch computes. Data
that does not fit in host memory either (``streaming=True``, a memory-mapped cache) is read a
few batches ahead on a background thread (:func:`cnnkit.engines.base.streamed_batches`) and
copied the same way.

Shuffling is seeded by ``(seed, epoch)`` alone (:func:`cnnkit.engines.base.epoch_order`, the
order the NumPy engine uses too), so every process draws the same order and a resumed run draws
the orders an uninterrupted one would. With several processes (``world`` > 1)
each global batch is split between them: process ``rank`` takes positions ``rank, rank + world,
...`` of it, so the shards are disjoint and together cover the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cnnkit._validate import check_choice, check_int
from cnnkit.engines.base import epoch_order, streamed_batches
from cnnkit.engines.config import LOADER_MODES
from cnnkit.errors import InvalidArgument

__all__ = ["LOADER_MODES", "Batch", "BatchLoader"]

# The resident path may use at most this share of the free device memory.
_RESIDENT_SHARE = 0.5


@dataclass
class Batch:
    """One process's part of a global batch."""

    images: torch.Tensor
    labels: torch.Tensor
    global_size: int


class BatchLoader:
    """Normalised float batches of a uint8 image array on a device.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``(N, C, H, W)``.
    labels : numpy.ndarray
        Integer ``(N,)``.
    batch_size : int
        Global batch size (summed over processes).
    device : torch.device
        Where batches are delivered.
    mean, std : float
        Pixel statistics in [0, 1] units: a batch is ``(images / 255 - mean) / std``.
    mode : {'auto', 'resident', 'stream'}
        ``'auto'`` keeps the data on the device when it takes at most half of the free device
        memory (always on the CPU).
    channels_last : bool
        Deliver batches in channels-last memory format.
    rank, world : int
        This process's index and the number of processes.
    rows : numpy.ndarray, optional
        The rows of ``images`` to serve (a split); default all.
    streaming : bool
        Read batches from ``images`` (a memory map) as they are needed, in block-shuffled
        order, instead of holding the data; implies ``mode='stream'`` (``'resident'`` is
        refused).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        mean: float,
        std: float,
        mode: str = "auto",
        channels_last: bool = False,
        rank: int = 0,
        world: int = 1,
        rows: np.ndarray | None = None,
        streaming: bool = False,
    ) -> None:
        check_choice(mode, "loader", LOADER_MODES)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise InvalidArgument(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise InvalidArgument(f"{len(images)} images but {len(labels)} labels")
        self.count = len(images) if rows is None else len(rows)
        self.device = device
        self.channels_last = channels_last
        self.rank, self.world = rank, world
        self._scale = 1.0 / (255.0 * std)
        self._shift = mean / std
        self.streaming = bool(streaming)
        if self.streaming:
            if mode == "resident":
                raise InvalidArgument("--loader resident cannot hold data that is streamed "
                                      "(--stream); use --loader auto or stream")
            self.mode, self._rows = "stream", rows
            self._images, self._labels = images, np.asarray(labels)
            return
        if rows is not None:
            images, labels = images[rows], np.asarray(labels)[rows]
        if mode == "auto":
            mode = "resident" if self._fits(images.nbytes + labels.size * 8) else "stream"
        self.mode = mode
        images = np.ascontiguousarray(images)
        if not images.flags.writeable:  # torch wants writable memory to share
            images = images.copy()
        host_images = torch.from_numpy(images)
        host_labels = torch.from_numpy(np.array(labels, dtype=np.int64))  # a writable copy
        if mode == "resident":
            self._images = host_images.to(device)
            self._labels = host_labels.to(device)
        else:
            pin = device.type == "cuda"
            self._images = host_images.pin_memory() if pin else host_images
            self._labels = host_labels.pin_memory() if pin else host_labels

    def _fits(self, nbytes: int) -> bool:
        if self.device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        return nbytes <= _RESIDENT_SHARE * free

    def __len__(self) -> int:
        """Number of global batches per epoch."""
        return -(-self.count // self.batch_size)

    def order(self, seed: int | None, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch`` (the identity when ``seed`` is None)."""
        return torch.from_numpy(epoch_order(seed, epoch, self.count))

    def batches(
        self, seed: int | None = None, epoch: int = 0, *, start_batch: int = 0
    ) -> Iterator[Batch]:
        """One epoch of this process's batches from ``start_batch`` on, shuffled by
        ``(seed, epoch)`` when seeded."""
        start_batch = check_int(start_batch, "start_batch", minimum=0)
        if self.streaming:
            host = (
                (torch.from_numpy(images), torch.from_numpy(labels), size)
                for images, labels, size in streamed_batches(
                    self._images, self._labels, self.batch_size, rows=self._rows, seed=seed,
                    epoch=epoch, start_batch=start_batch, rank=self.rank, world=self.world)
            )
            yield from self._copied(host)
            return
        order = self.order(seed, epoch)
        starts = range(start_batch * self.batch_size, self.count, self.batch_size)
        if self.mode == "resident":
            order = order.to(self.device)
            for start in starts:
                chunk = order[start : start + self.batch_size]
                mine = chunk[self.rank :: self.world]
                yield self._prepare(
                    self._images.index_select(0, mine), self._labels[mine], len(chunk)
                )
            return
        chunks = (order[start : start + self.batch_size] for start in starts)
        yield from self._copied(
            (self._images.index_select(0, chunk[self.rank :: self.world]),
             self._labels.index_select(0, chunk[self.rank :: self.world]), len(chunk))
            for chunk in chunks
        )

    def _copied(self, host: Iterator[tuple[torch.Tensor, torch.Tensor, int]]) -> Iterator[Batch]:
        """Host batches copied to the device while the previous batch is being used."""
        pending = None
        for images, labels, global_size in host:
            if self.device.type == "cuda":
                images, labels = images.pin_memory(), labels.pin_memory()
            staged = (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
                global_size,
            )
            if pending is not None:
                yield self._prepare(*pending)
            pending = staged
        if pending is not None:
            yield self._prepare(*pending)

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor, global_size: int) -> Batch:
        floats = images.float().mul_(self._scale).sub_(self._shift)
        if self.channels_last:
            floats = floats.contiguous(memory_format=torch.channels_last)
        return Batch(floats, labels, global_size)
