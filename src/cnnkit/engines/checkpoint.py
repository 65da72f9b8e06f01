"""Checkpoints: one dict of tensors and plain values, written atomically, loaded safely.

A checkpoint holds the model weights, the optimizer state, the number of completed epochs, the
metric history, the training configuration and a description of the model (architecture, input
shape, classes, normalisation), the last three as JSON text. It is written with ``torch.save``
to a temporary file in the same folder and renamed into place, so a crash never leaves a
half-written checkpoint under the real name. It is read with ``torch.load(weights_only=True)``,
which refuses any pickled object that is not a tensor or a plain container: a file crafted to
run code when unpickled is rejected before anything in it runs.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import torch

from cnnkit._files import atomic_write
from cnnkit.errors import InvalidArgument, NotFound

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "check_compatible",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]

FORMAT = "cnnkit-checkpoint-1"
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write(path, lambda temporary: torch.save({"format": FORMAT, **state}, temporary),
                 overwrite=True)


def resolve_checkpoint(source: str | os.PathLike, *, best: bool = False) -> Path:
    """The checkpoint file for a run folder (its last or best checkpoint) or a file path."""
    path = Path(source)
    if path.is_dir():
        path = path / (BEST_NAME if best else CHECKPOINT_NAME)
    if not path.is_file():
        raise NotFound(f"no checkpoint at {path}")
    return path


def load_checkpoint(source: str | os.PathLike, *, best: bool = False) -> dict:
    """Load a checkpoint safely (``weights_only=True``) and decode its JSON parts.

    Parameters
    ----------
    source : path-like
        A checkpoint file, or a run folder (its ``checkpoint.pt``, or ``best.pt`` with ``best``).

    Returns
    -------
    dict
        With ``model`` (state dict), ``optimizer``, ``epoch``, and the decoded ``config``,
        ``model_info`` and ``history``.

    Raises
    ------
    ValueError
        When the file is not a cnnkit checkpoint, or holds objects other than tensors and plain
        values (such a file is refused without running anything in it).
    """
    path = resolve_checkpoint(source, best=best)
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickle protocols; such files are refused below anyway.
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(str(exc))
        if "GLOBAL" in reason:
            raise InvalidArgument(
                f"refused to load {path}: it holds objects other than weights and plain "
                f"values, which could run code when loaded ({reason})"
            ) from None
        raise InvalidArgument(f"{path} is not a readable checkpoint ({reason})") from None
    except Exception as exc:  # torch.load fails in many ways on foreign or damaged bytes
        detail = type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
        raise InvalidArgument(
            f"{path} is not a readable checkpoint: the file is damaged or was not written by "
            f"cnnkit train (torch.load: {detail})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InvalidArgument(f"{path} is not a cnnkit checkpoint (format {FORMAT!r} expected)")
    for key in ("config", "model_info", "history"):
        state[key] = json.loads(state[key])
    return state


def _unpickling_reason(message: str) -> str:
    """The specific line of torch's weights-only refusal (its other lines are boilerplate)."""
    for line in message.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith(("Please file", "Check the documentation")):
            return line
    return "unsupported content"


def check_compatible(model_info: dict, expected: dict, where: str) -> None:
    """Refuse a checkpoint whose architecture, input shape or classes differ from ``expected``.

    Both dicts hold ``arch`` (the architecture dict), ``input_shape`` and ``num_classes``; the
    message names the first difference.
    """
    saved_shape = tuple(model_info["input_shape"])
    if "input_shape" in expected and tuple(expected["input_shape"]) != saved_shape:
        raise InvalidArgument(
            f"{where} was trained on {'x'.join(map(str, saved_shape))} inputs, not "
            f"{'x'.join(map(str, expected['input_shape']))}"
        )
    if "num_classes" in expected and expected["num_classes"] != model_info["num_classes"]:
        raise InvalidArgument(
            f"{where} was trained for {model_info['num_classes']} classes, not "
            f"{expected['num_classes']}"
        )
    if "arch" in expected:
        saved, wanted = model_info["arch"]["layers"], expected["arch"]["layers"]
        if len(saved) != len(wanted):
            raise InvalidArgument(
                f"{where} has a {len(saved)}-layer architecture "
                f"({model_info['arch']['name']!r}), not {len(wanted)} layers "
                f"({expected['arch']['name']!r})"
            )
        for index, (old, new) in enumerate(zip(saved, wanted, strict=True)):
            if old != new:
                raise InvalidArgument(
                    f"{where} differs in layer {index}: checkpoint has {old}, asked for {new}"
                )
