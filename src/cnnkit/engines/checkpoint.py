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
import math
import os
import pickle
import warnings
from pathlib import Path

import torch

from cnnkit._files import atomic_write
from cnnkit._validate import check_int
from cnnkit.arch import load_architecture, parse_input_shape, trace
from cnnkit.budget import FLOAT32_BYTES, check_memory
from cnnkit.errors import BadFile, CnnkitError, InvalidArgument, NotFound

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "check_compatible",
    "check_state",
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
            raise BadFile(
                f"refused to load {path}: it holds objects other than weights and plain "
                f"values, which could run code when loaded ({reason})"
            ) from None
        raise BadFile(f"{path} is not a readable checkpoint ({reason})") from None
    except Exception as exc:  # torch.load fails in many ways on foreign or damaged bytes
        detail = type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
        raise BadFile(
            f"{path} is not a readable checkpoint: the file is damaged or was not written by "
            f"cnnkit train (torch.load: {detail})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BadFile(f"{path} is not a cnnkit checkpoint (format {FORMAT!r} expected)")
    for key in ("config", "model_info", "history"):
        try:
            state[key] = json.loads(state[key])
        except (KeyError, TypeError, ValueError, RecursionError):
            raise BadFile(f"{path} is damaged: its {key!r} entry is missing or not JSON") from None
    check_state(state, str(path))
    return state


def check_state(state: dict, where: str) -> None:
    """Refuse a checkpoint whose entries cannot describe a usable model, naming the entry.

    Everything later code indexes is checked here, so that a crafted or damaged file is a
    :class:`~cnnkit.errors.BadFile` and never a ``KeyError`` deep in training or evaluation:
    the architecture (and that it fits in memory), input shape, classes, the normalisation
    (a standard deviation of zero would turn every pixel into NaN), epoch, history and config.
    """
    def bad(what: str) -> BadFile:
        return BadFile(f"{where} is damaged or not a cnnkit checkpoint: {what}")

    info = state.get("model_info")
    if not isinstance(info, dict):
        raise bad("'model_info' is not an object")
    for key in ("arch", "input_shape", "num_classes", "class_names", "mean", "std"):
        if key not in info:
            raise bad(f"'model_info' has no {key!r}")
    try:
        arch = load_architecture(info["arch"])
        input_shape = parse_input_shape(info["input_shape"])
        num_classes = check_int(info["num_classes"], "num_classes", minimum=1)
        rows = trace(arch, input_shape, num_classes)
    except CnnkitError as exc:
        raise bad(str(exc)) from None
    names = info["class_names"]
    if not isinstance(names, list) or len(names) != num_classes:
        raise bad(f"'class_names' must list {num_classes} names")
    for key in ("mean", "std"):
        value = info[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value
        ):
            raise bad(f"the stored pixel {key} is {value!r}, not a finite number")
    if not info["std"] > 0:
        raise bad(f"the stored pixel std is {info['std']!r}; it must be positive")
    parameters = sum(row.parameters for row in rows)
    check_memory(FLOAT32_BYTES * parameters, f"the model in {where} ({parameters:,} parameters)")
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad(f"'epoch' is {epoch!r}, not a whole number")
    if not isinstance(state.get("history"), list) or not isinstance(state.get("config"), dict):
        raise bad("'history' must be a list and 'config' an object")
    if not isinstance(state.get("model"), dict):
        raise bad("'model' (the weights) is missing")


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
