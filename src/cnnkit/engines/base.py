"""What both engines share below the training loop: the choice of engine, shuffling, batches.

Torch-free. An engine is a class with the methods the training loop, evaluation and prediction
call (see :class:`cnnkit.engines.numpy_engine.NumpyEngine` for the smallest one); PyTorch's lives
in :mod:`cnnkit.engines.torch_engine` and is imported only when it is asked for.

Both engines' loaders (``engine.loader(images, labels, *, batch_size, mean, std, rows=None,
streaming=False)``) have one interface: ``len(loader)`` global batches, ``loader.count``
images, ``loader.mode`` and ``loader.batches(seed=None, epoch=0, *, start_batch=0)``, which
yields normalised batches with ``images``, ``labels`` and ``global_size``. ``rows`` picks the
images of a split without copying them first. Resident data is shuffled globally
(:func:`epoch_order`); streamed data (``streaming=True``) is read from its array, usually a
memory map, by :func:`streamed_batches`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_choice
from cnnkit.data.stream import BatchSource
from cnnkit.errors import InvalidArgument

__all__ = ["Context", "default_engine", "engine_class", "epoch_order", "joined_outputs",
           "resolve_engine", "streamed_batches"]

#: Batches a streaming loader reads ahead on its background thread.
READ_AHEAD = 4

_MODULES = {"numpy": "cnnkit.engines.numpy_engine", "torch": "cnnkit.engines.torch_engine"}


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the number of processes, its rank on this machine,
    and the torchrun job it belongs to (its rendezvous id; None outside torchrun). Every attempt
    of one job (torchrun restarts all processes after a failure) has the same ``job``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    job: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, writes metrics and checkpoints."""
        return self.rank == 0


def torch_imports() -> bool:
    """Whether PyTorch can be imported here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def default_engine() -> str:
    """``'torch'`` where PyTorch imports, ``'numpy'`` otherwise."""
    return "torch" if torch_imports() else "numpy"


def resolve_engine(name: str | None) -> str:
    """An engine name with ``'auto'`` (or None) resolved; asking for torch without it is refused.

    >>> resolve_engine("numpy")
    'numpy'
    """
    if name is None or name == "auto":
        return default_engine()
    check_choice(name, "engine", tuple(_MODULES))
    if name == "torch" and not torch_imports():
        raise InvalidArgument(
            "the torch engine needs PyTorch, which cannot be imported here; install it "
            "(pip install 'cnnkit[torch]') or use --engine numpy"
        )
    return name


def engine_class(name: str | None) -> type:
    """The engine class for ``name`` (``'auto'``, ``'numpy'`` or ``'torch'``)."""
    module = importlib.import_module(_MODULES[resolve_engine(name)])
    return module.ENGINE


def epoch_order(seed: int | None, epoch: int, count: int) -> np.ndarray:
    """The shuffling order of epoch ``epoch``: drawn from ``(seed, epoch)`` alone, by NumPy.

    Both engines take their batches in this order, so they see identical batches, and a run
    resumed after epoch ``e`` draws the orders an uninterrupted one draws. Without a seed the
    order is the identity (evaluation).

    >>> epoch_order(None, 0, 4)
    array([0, 1, 2, 3])
    >>> bool((epoch_order(1, 2, 100) == epoch_order(1, 2, 100)).all())
    True
    """
    if seed is None:
        return np.arange(count)
    return np.random.default_rng([seed, epoch]).permutation(count)


def streamed_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    rows: np.ndarray | None,
    seed: int | None,
    epoch: int,
    start_batch: int = 0,
    rank: int = 0,
    world: int = 1,
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """This process's uint8 images, int64 labels and the global batch size of each batch of
    epoch ``epoch``, from ``start_batch`` on, read from ``images`` (a memory map) a few
    batches ahead on a background thread.

    The rows ``rows`` (default all) are shuffled in blocks of neighbouring rows
    (:class:`cnnkit.data.stream.BatchSource`), which keeps the reads of a memory map local;
    the order is therefore not the resident loaders' global shuffle, but it is fixed by
    ``(seed, epoch)`` and visits every row once. Without a seed the rows come in order.
    """
    source = BatchSource(images, labels, batch_size, seed=seed, indices=rows,
                         read_ahead=READ_AHEAD, shard=(rank, world))
    for index, (batch_images, batch_labels) in enumerate(
        source.epoch(epoch, start_batch=start_batch), start=start_batch
    ):
        yield batch_images, batch_labels, source.global_size(index)


def joined_outputs(kept: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Per-batch ``(probabilities, features)`` joined into ``{"probabilities", "features"}``."""
    if not kept:
        return {"probabilities": np.zeros((0, 0)), "features": np.zeros((0, 0), np.float32)}
    return {"probabilities": np.concatenate([p for p, _ in kept]),
            "features": np.concatenate([f for _, f in kept])}
