"""What both engines share below the training loop: the choice of engine, shuffling, batches.

Torch-free. An engine is a class with the methods the training loop, evaluation and prediction
call (see :class:`cnnkit.engines.numpy_engine.NumpyEngine` for the smallest one); PyTorch's lives
in :mod:`cnnkit.engines.torch_engine` and is imported only when it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_choice
from cnnkit.errors import InvalidArgument

__all__ = ["Context", "default_engine", "engine_class", "epoch_order", "resolve_engine"]

_MODULES = {"numpy": "cnnkit.engines.numpy_engine", "torch": "cnnkit.engines.torch_engine"}


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the number of processes, its rank on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

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
