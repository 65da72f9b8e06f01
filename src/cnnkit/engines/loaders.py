"""Batches for training and evaluation without per-sample Python work.

The textbook loop wraps the images in a ``TensorDataset`` and lets a ``DataLoader`` index them
one sample at a time, stack the samples into a batch and copy every batch from host memory. Here
the whole uint8 data set is put on the device once when it fits (*resident*): shuffling is one
``randperm`` per epoch, a batch is one indexing operation, and scaling to float happens on the
device. When the data set does not fit, the *streaming* path keeps it in (pinned) host memory,
gathers each batch there and copies it asynchronously while the previous batch computes.

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
from cnnkit.engines.base import epoch_order
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
    ) -> None:
        check_choice(mode, "loader", LOADER_MODES)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise InvalidArgument(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise InvalidArgument(f"{len(images)} images but {len(labels)} labels")
        self.count = len(images)
        self.device = device
        self.channels_last = channels_last
        self.rank, self.world = rank, world
        self._scale = 1.0 / (255.0 * std)
        self._shift = mean / std
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

    def batches(self, seed: int | None = None, epoch: int = 0) -> Iterator[Batch]:
        """One epoch of this process's batches, shuffled by ``(seed, epoch)`` when seeded."""
        order = self.order(seed, epoch)
        if self.mode == "resident":
            order = order.to(self.device)
            for start in range(0, self.count, self.batch_size):
                chunk = order[start : start + self.batch_size]
                mine = chunk[self.rank :: self.world]
                yield self._prepare(
                    self._images.index_select(0, mine), self._labels[mine], len(chunk)
                )
            return
        # Streaming: gather on the host, copy while the previous batch is being used.
        pending = None
        for start in range(0, self.count, self.batch_size):
            chunk = order[start : start + self.batch_size]
            mine = chunk[self.rank :: self.world]
            images = self._images.index_select(0, mine)
            labels = self._labels.index_select(0, mine)
            if self.device.type == "cuda":
                images, labels = images.pin_memory(), labels.pin_memory()
            staged = (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
                len(chunk),
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
