"""Training, evaluating and using architecture specs with either engine.

The PyTorch engine (CPU, CUDA, MPS, DDP) or the NumPy engine (:mod:`cnnkit.nn`), behind one
training loop (:mod:`cnnkit.engines.training`) and one checkpoint format
(:mod:`cnnkit.engines.checkpoint`). A trained model, on either engine, is
:class:`cnnkit.model.TrainedModel`; evaluating and predicting with one is
:mod:`cnnkit.evaluation`.

The names below are loaded on first use, so that importing this package does not import torch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "build_model",
    "choose_device",
    "demo_training",
    "load_checkpoint",
    "train",
]

_HOMES = {
    "TrainConfig": "config",
    "Checkpoint": "checkpoint",
    "TrainResult": "training",
    "TrainingError": "training",
    "train": "training",
    "build_model": "model",
    "choose_device": "model",
    "demo_training": "demo",
    "load_checkpoint": "checkpoint",
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        module = importlib.import_module(f"cnnkit.engines.{_HOMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'cnnkit.engines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
