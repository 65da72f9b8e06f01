"""The learning-rate schedule shared by both engines: linear warm-up, then constant or cosine.

Torch-free, so the NumPy engine and the PyTorch engine take their learning rate from the same
function.
"""

from __future__ import annotations

import math

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument, InvalidType

__all__ = ["SCHEDULES", "lr_at"]

#: Accepted values of ``schedule``.
SCHEDULES = ("constant", "cosine")


def lr_at(
    step: int,
    steps_per_epoch: int,
    *,
    base_lr: float,
    epochs: int,
    warmup_epochs: float = 0.0,
    schedule: str = "constant",
) -> float:
    """The learning rate at optimizer step ``step``, counted from 0 over the whole run.

    During the first ``round(warmup_epochs * steps_per_epoch)`` steps the rate rises linearly
    from ``base_lr / 10`` towards ``base_lr``. After that it stays at ``base_lr``
    (``'constant'``) or follows half a cosine from ``base_lr`` down to zero at the end of the
    last epoch (``'cosine'``).

    Examples
    --------
    >>> lr_at(0, 100, base_lr=1e-3, epochs=10, warmup_epochs=1)
    0.0001
    >>> lr_at(550, 100, base_lr=1e-3, epochs=10, warmup_epochs=1, schedule="cosine")
    0.0005
    """
    step = check_int(step, "step", minimum=0)
    steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    epochs = check_int(epochs, "epochs", minimum=1)
    check_choice(schedule, "schedule", SCHEDULES)
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)):
        raise InvalidType(f"warmup_epochs must be a number, got {warmup_epochs!r}")
    if warmup_epochs < 0:
        raise InvalidArgument(f"warmup_epochs must be a number >= 0, got {warmup_epochs!r}")
    warmup = round(warmup_epochs * steps_per_epoch)
    if step < warmup:
        return base_lr * (0.1 + 0.9 * step / warmup)
    if schedule == "cosine":
        total = epochs * steps_per_epoch - warmup
        progress = (step - warmup) / max(1, total)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr
