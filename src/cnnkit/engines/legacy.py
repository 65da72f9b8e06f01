"""Converting the ``checkpoint.pt`` files of cnnkit 0.1 (``torch.save``) to safetensors.

The old file is read with ``torch.load(weights_only=True)``, which refuses any pickled object
that is not a tensor or a plain container: a file crafted to run code when unpickled is rejected
before anything in it runs. Its contents are checked as a new checkpoint's are, and written as a
:class:`~cnnkit.engines.checkpoint.Checkpoint` beside it (``checkpoint.pt`` becomes
``checkpoint.safetensors``, ``best.pt`` becomes ``best.safetensors``). Needs PyTorch.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

from cnnkit._json import parse
from cnnkit.engines.checkpoint import Checkpoint
from cnnkit.errors import AlreadyExists, BadFile, InvalidArgument, NotFound
from cnnkit.nn.optim import from_torch_optimizer_state
from cnnkit.runfolder import RunFolder

__all__ = ["LEGACY_FORMAT", "convert_checkpoint", "read_legacy_checkpoint"]

LEGACY_FORMAT = "cnnkit-checkpoint-1"


def read_legacy_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A cnnkit 0.1 ``torch.save`` checkpoint as a :class:`Checkpoint`, read without code."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no checkpoint at {path}")
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
                f"values, which could run code when loaded ({reason}); cnnkit never loads such "
                "a file. Where the model was made, save its weights alone with "
                "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
            ) from None
        raise BadFile(f"{path} is not a readable checkpoint ({reason})") from None
    except Exception as exc:  # torch.load fails in many ways on foreign or damaged bytes
        detail = type(exc).__name__ + (f": {_unpickling_reason(str(exc))}" if str(exc) else "")
        raise BadFile(
            f"{path} is not a readable checkpoint: the file is damaged or was not written by "
            f"cnnkit train (torch.load: {detail})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != LEGACY_FORMAT:
        raise BadFile(f"{path} is not a cnnkit 0.1 checkpoint (format {LEGACY_FORMAT!r} "
                      "expected)")
    decoded = {}
    for key in ("config", "model_info", "history"):
        if not isinstance(state.get(key), str):
            raise BadFile(f"{path} is damaged: its {key!r} entry is missing or not JSON")
        decoded[key] = parse(state[key], f"the {key!r} entry of {path}")
    model, optimizer = state.get("model"), state.get("optimizer")
    if not isinstance(model, dict) or not all(
        isinstance(value, torch.Tensor) for value in model.values()
    ):
        raise BadFile(f"{path} is damaged: its 'model' entry is not a dict of tensors")
    if not isinstance(optimizer, dict) or set(optimizer) != {"state", "param_groups"}:
        raise BadFile(f"{path} is damaged: its 'optimizer' entry is not an optimizer state")
    model = {key: _as_array(value, f"model.{key}", path) for key, value in model.items()}
    optimizer = from_torch_optimizer_state({
        "state": {index: {name: _as_array(value, f"optimizer state {index}.{name}", path)
                          for name, value in entries.items()}
                  for index, entries in optimizer["state"].items()},
        "param_groups": optimizer["param_groups"],
    })
    optimizer["param_groups"] = [
        {key: value for key, value in group.items()
         if key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "params")}
        for group in optimizer["param_groups"]
    ]
    extra = {"scaler": state["scaler"]} if isinstance(state.get("scaler"), dict) else {}
    checkpoint = Checkpoint(
        model=model,
        optimizer=optimizer, epoch=state.get("epoch"), config=decoded["config"],
        model_info=decoded["model_info"], history=decoded["history"],
        best_accuracy=state.get("best_accuracy", -1.0), engine="torch",
        world_size=state.get("world_size", 1), extra=_plain(extra),
    )
    checkpoint.check(str(path))
    return checkpoint


def _plain(value: object) -> object:
    """Tensors in the gradient scaler's state as plain numbers (JSON)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value.item() if hasattr(value, "item") else value


def convert_checkpoint(
    source: str | os.PathLike, output: str | os.PathLike | None = None, *,
    overwrite: bool = False,
) -> list[tuple[Path, Path]]:
    """Convert a cnnkit 0.1 checkpoint file, or a run folder's ``checkpoint.pt`` and
    ``best.pt``, to safetensors; returns the (old, new) pairs.

    Every source is read and checked before anything is written; an existing output is
    refused unless ``overwrite``. ``output`` names the new file (single file only); the default
    is the file's run-folder name, or the same name with ``.safetensors``.
    """
    source = Path(source)
    if source.is_dir():
        if output is not None:
            raise InvalidArgument("--out names one file; leave it out to convert a run folder")
        run = RunFolder(source)
        pairs = [(old, new) for old, new in ((run.legacy_checkpoint, run.checkpoint),
                                             (run.legacy_best, run.best)) if old.is_file()]
        if not pairs:
            raise NotFound(f"{source} holds no {run.legacy_checkpoint.name} or "
                           f"{run.legacy_best.name} to convert")
    else:
        if output is None:
            run = RunFolder(source.parent)
            names = {run.legacy_checkpoint.name: run.checkpoint,
                     run.legacy_best.name: run.best}
            output = names.get(source.name, source.with_suffix(".safetensors"))
        pairs = [(source, Path(output))]
    converted = [(old, new, read_legacy_checkpoint(old)) for old, new in pairs]
    for _, new, _ in converted:
        if new.exists() and not overwrite:
            raise AlreadyExists(f"{new} exists; pass --overwrite to replace it")
    for _, new, checkpoint in converted:
        checkpoint.save(new)
    return [(old, new) for old, new, _ in converted]


def _unpickling_reason(message: str) -> str:
    """The specific line of torch's refusal: never its boilerplate, nor its hint to retry
    without ``weights_only`` (which would run whatever code the file holds)."""
    for line in message.splitlines():
        line = line.strip()
        if line and "weights_only" not in line and not line.startswith(
            ("Please file", "Check the documentation", "Weights only load failed")
        ):
            return line
    return "unsupported content"


def _as_array(value: object, name: str, path: Path):
    """A tensor as a NumPy array; half precision (bfloat16, float16) becomes float32, and a
    dtype cnnkit cannot compute in is refused by name."""
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    if value.is_complex() or (value.dtype.is_floating_point and value.dtype not in (
        torch.float32, torch.float64, torch.float16, torch.bfloat16
    )):
        raise BadFile(f"{path}: tensor {name!r} is stored as {value.dtype}, which cnnkit does "
                      "not read (float64, float32, float16, bfloat16 and integers it does)")
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value.numpy()
