"""Checkpoints without pickle: tensors in a safetensors file, everything else as JSON.

A checkpoint (:class:`Checkpoint`) holds the model weights, the optimizer state, the number of
completed epochs, the metric history, the training configuration and a description of the model
(architecture, input shape, classes, normalisation). It is one safetensors file:

- tensors ``model.<key>``: the weights under PyTorch's state-dict names (``model.0.weight``);
- tensors ``optimizer.state.<index>.<name>``: the optimizer's per-parameter state in
  ``torch.optim.Adam``'s layout (``step``, ``exp_avg``, ``exp_avg_sq``);
- the metadata entry ``cnnkit``: a JSON object with the format version, ``epoch``,
  ``best_accuracy``, ``config``, ``model_info``, ``history``, the engine that wrote it, the
  optimizer's parameter groups and engine-specific scalars (PyTorch's fp16 gradient scaler).

Either engine reads and writes it, and reading needs neither PyTorch nor pickle: a file is data
only, so a crafted one cannot run code. The header is checked against the file's size before
any tensor is read, so a damaged or foreign file is refused in one line and never makes cnnkit
allocate what its header claims. After a complete epoch nothing random needs saving for an exact
resume: every epoch draws its shuffling order and dropout masks from ``(seed, epoch)``
alone. A checkpoint written in the middle of an epoch (an interrupted run, or
``checkpoint_every``) keeps the step, the running totals (summed over the processes) and the
dropout generator's state (each process's, with several) in ``extra['partial_epoch']``.

Files are written through :func:`cnnkit._files.atomic_write` (a temporary file in the same
folder, then a rename), so a crash never leaves a half-written checkpoint under the real name.
Earlier cnnkit versions wrote ``checkpoint.pt`` with ``torch.save``; ``cnnkit convert-checkpoint``
turns such a file into this format (:mod:`cnnkit.engines.legacy`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnkit._files import atomic_write, open_regular
from cnnkit._json import parse, type_name
from cnnkit._validate import check_int
from cnnkit.arch import ARCHITECTURES, load_architecture, trace
from cnnkit.budget import FLOAT32_BYTES, check_memory
from cnnkit.errors import BadFile, CnnkitError, InvalidArgument, NotFound
from cnnkit.runfolder import RunFolder
from cnnkit.shapes import parse_input_shape

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "check_compatible",
    "load_checkpoint",
    "resolve_checkpoint",
]

FORMAT = "cnnkit-checkpoint"
#: Version 1 was the ``torch.save`` file; version 2 is this safetensors layout.
VERSION = 2
#: The header of a checkpoint is JSON describing tensors plus the metadata; a larger one is not
#: a cnnkit checkpoint (a million-epoch history still takes a few hundred megabytes less).
MAX_HEADER_BYTES = 256 * 2**20
#: safetensors dtypes cnnkit reads, as NumPy dtypes (little-endian; bfloat16 as its bits).
_DTYPES = {name: np.dtype(code) for name, code in [
    ("F64", "<f8"), ("F32", "<f4"), ("F16", "<f2"), ("BF16", "<u2"), ("I64", "<i8"),
    ("I32", "<i4"), ("I16", "<i2"), ("I8", "i1"), ("U8", "u1"), ("BOOL", "?")]}
_CONVERT_HINT = "convert it with: cnnkit convert-checkpoint {path}"


@dataclass
class Checkpoint:
    """One training run's state after a complete epoch (see the module's notes for the file).

    ``model`` maps PyTorch's state-dict names to arrays; ``optimizer`` is a state dict in
    ``torch.optim``'s layout with NumPy arrays (:meth:`cnnkit.nn.Optimizer.state_dict`).

    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.safetensors"
    >>> info = {"arch": "tutorial", "input_shape": [1, 28, 28], "num_classes": 10,
    ...         "class_names": list("0123456789"), "mean": 0.1, "std": 0.3}
    >>> Checkpoint(model={"0.bias": np.zeros(3, np.float32)}, epoch=1, config={},
    ...            model_info=info).save(path).name
    'c.safetensors'
    >>> Checkpoint.load(path).model["0.bias"]
    array([0., 0., 0.], dtype=float32)
    """

    model: dict[str, np.ndarray]
    epoch: int
    config: dict
    model_info: dict
    history: list[dict] = field(default_factory=list)
    optimizer: dict = field(default_factory=lambda: {"state": {}, "param_groups": []})
    best_accuracy: float = -1.0
    engine: str = "torch"
    world_size: int = 1
    extra: dict = field(default_factory=dict)
    version: int = VERSION

    # -- writing ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint to ``path`` atomically; returns ``path``."""
        from safetensors.numpy import save_file

        tensors = {f"model.{key}": np.ascontiguousarray(value)
                   for key, value in self.model.items()}
        for index, entries in self.optimizer.get("state", {}).items():
            for name, value in entries.items():
                tensors[f"optimizer.state.{int(index)}.{name}"] = np.ascontiguousarray(value)
        metadata = {
            "format": FORMAT,
            "version": self.version,
            "epoch": self.epoch,
            "best_accuracy": self.best_accuracy,
            "engine": self.engine,
            "world_size": self.world_size,
            "config": self.config,
            "model_info": self.model_info,
            "history": self.history,
            "optimizer": {"param_groups": _json_groups(self.optimizer.get("param_groups", []))},
            "extra": self.extra,
        }
        text = json.dumps(metadata)
        return atomic_write(
            path, lambda temporary: save_file(tensors, str(temporary), metadata={"cnnkit": text}),
            overwrite=True,
        )

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read and check a checkpoint file; any damage is a :class:`~cnnkit.errors.BadFile`.

        Tensors stored in bfloat16 or float16 (a file written by PyTorch in half precision)
        are read as float32; a dtype cnnkit cannot compute in is refused by name.
        """
        path = Path(path)
        with open_regular(path, "checkpoint") as stream:
            size = os.fstat(stream.fileno()).st_size
            header, length = _read_header(stream, path, size)
            metadata = _metadata(header, path)
            check_memory(size, f"the checkpoint {path}")
            tensors = _read_tensors(stream, header, 8 + length)
        model, state = {}, {}
        for name, value in tensors.items():
            if name.startswith("model."):
                model[name[len("model."):]] = value
                continue
            parts = name.split(".")
            if len(parts) != 4 or parts[:2] != ["optimizer", "state"] or not parts[2].isdigit():
                raise BadFile(f"{path} is not a cnnkit checkpoint: unexpected tensor {name!r}")
            if parts[3] == "step" and value.size == 1:
                value = value.reshape(())  # a scalar, as torch.optim keeps it
            state.setdefault(int(parts[2]), {})[parts[3]] = value
        optimizer = metadata.get("optimizer")
        if not isinstance(optimizer, dict) or not isinstance(
            optimizer.get("param_groups"), list
        ):
            raise BadFile(f"{path} is damaged: its 'optimizer' entry is not an object")
        checkpoint = cls(
            model=model,
            epoch=metadata.get("epoch"),
            config=metadata.get("config"),
            model_info=metadata.get("model_info"),
            history=metadata.get("history"),
            optimizer={"state": dict(sorted(state.items())),
                       "param_groups": optimizer["param_groups"]},
            best_accuracy=metadata.get("best_accuracy", -1.0),
            engine=metadata.get("engine", "torch"),
            world_size=metadata.get("world_size", 1),
            extra=metadata.get("extra") or {},
            version=metadata["version"],
        )
        checkpoint.check(str(path))
        return checkpoint

    def check(self, where: str) -> None:
        """Refuse a checkpoint whose entries cannot describe a usable model, naming the entry.

        Everything later code indexes is checked here, so that a crafted or damaged file is a
        :class:`~cnnkit.errors.BadFile` and never a ``KeyError`` deep in training or evaluation:
        the architecture (and that it fits in memory), input shape, classes, the normalisation
        (a standard deviation of zero would turn every pixel into NaN), epoch, history, config.
        """
        check_state(dataclasses.asdict(self), where)


def _json_groups(groups: list[dict]) -> list[dict]:
    """Parameter groups as JSON values (tuples become lists)."""
    return [{key: list(value) if isinstance(value, tuple) else value
             for key, value in group.items()} for group in groups]


def _read_header(stream: BinaryIO, path: Path, size: int) -> tuple[dict, int]:
    """The safetensors header of ``path`` and its length, checked against the file's ``size``
    before any tensor is read."""
    start = stream.read(8)
    length = int.from_bytes(start, "little")
    # torch.save wrote a zip archive (or, long ago, a bare pickle); read as safetensors its
    # first bytes claim an impossible header, or one that is not JSON.
    legacy = start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"
    if len(start) < 8 or length > min(size - 8, MAX_HEADER_BYTES):
        if legacy:
            raise _legacy(path)
        if len(start) < 8:
            raise BadFile(f"{path} is not a cnnkit checkpoint: {size} bytes is too short")
        raise BadFile(
            f"{path} is not a cnnkit checkpoint (or is truncated): its header claims "
            f"{length:,} bytes, the file has {size:,}"
        )
    try:
        header = parse(stream.read(length), f"the header of {path}")
    except BadFile:
        if legacy:
            raise _legacy(path) from None
        raise BadFile(f"{path} is not a cnnkit checkpoint: its header is not JSON") from None
    if not isinstance(header, dict):
        raise BadFile(f"{path} is not a cnnkit checkpoint: its header is not an object")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and (
            entry["dtype"] not in _DTYPES
        ):
            raise BadFile(
                f"{path}: tensor {name!r} is stored as {entry['dtype']}, which cnnkit does not "
                f"read (it reads {', '.join(_DTYPES)})"
            )
        if not (isinstance(entry, dict) and entry.get("dtype") in _DTYPES
                and isinstance(entry.get("shape"), list)
                and all(type(n) is int and n >= 0 for n in entry["shape"])
                and isinstance(entry.get("data_offsets"), list)
                and len(entry["data_offsets"]) == 2
                and all(type(n) is int for n in entry["data_offsets"])):
            raise BadFile(f"{path} is damaged: the header entry of tensor {name!r} is malformed")
        begin, end = entry["data_offsets"]
        needed = math.prod(entry["shape"]) * _DTYPES[entry["dtype"]].itemsize
        if not 0 <= begin <= end <= data_bytes or end - begin != needed:
            raise BadFile(
                f"{path} is damaged or truncated: tensor {name!r} claims {needed:,} bytes at "
                f"{begin:,}..{end:,}, the file holds {data_bytes:,} bytes of data"
            )
    return header, length


def _read_tensors(stream: BinaryIO, header: dict, data_start: int) -> dict[str, np.ndarray]:
    """Every tensor of a checked header, read from ``stream``; half precision (bfloat16,
    float16) becomes float32, which both engines compute in."""
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        stream.seek(data_start + begin)
        raw = bytearray(end - begin)  # writable: the optimizer updates its state in place
        stream.readinto(raw)
        if entry["dtype"] == "BF16":  # the upper half of a float32
            value = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "F16":
            value = np.frombuffer(raw, "<f2").astype(np.float32)
        else:
            value = np.frombuffer(raw, _DTYPES[entry["dtype"]])
            if not value.dtype.isnative:  # a big-endian machine
                value = value.astype(value.dtype.newbyteorder("="))
        tensors[name] = value.reshape(entry["shape"])
    return tensors


def _legacy(path: Path) -> BadFile:
    return BadFile(
        f"{path} is a checkpoint in the earlier PyTorch format (torch.save), which cnnkit no "
        "longer reads directly; " + _CONVERT_HINT.format(path=path)
    )


def _metadata(header: dict, path: Path) -> dict:
    """The ``cnnkit`` metadata entry, decoded; a file without one is not a cnnkit checkpoint."""
    entries = header.get("__metadata__")
    text = entries.get("cnnkit") if isinstance(entries, dict) else None
    if not isinstance(text, str):
        raise BadFile(f"{path} is a safetensors file but not a cnnkit checkpoint "
                      "(no 'cnnkit' metadata)")
    try:
        metadata = parse(text, "it")
    except BadFile as exc:
        raise BadFile(f"{path} is damaged: its metadata is not JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise BadFile(f"{path} is not a cnnkit checkpoint (format {FORMAT!r} expected)")
    if metadata.get("version") != VERSION:
        raise BadFile(
            f"{path} is a cnnkit checkpoint of version {metadata.get('version')!r}; this cnnkit "
            f"reads version {VERSION}"
        )
    return metadata


def resolve_checkpoint(source: str | os.PathLike, *, best: bool = False) -> Path:
    """The checkpoint file of a run folder (its last or best checkpoint), or a file path.

    A folder that holds only an earlier ``checkpoint.pt`` is refused with the command that
    converts it.
    """
    path = Path(source)
    if path.is_dir():
        run = RunFolder(path)
        path = run.best if best else run.checkpoint
        legacy = run.legacy_best if best else run.legacy_checkpoint
        if not path.is_file() and legacy.is_file():
            raise BadFile(
                f"{legacy} is a checkpoint in the earlier PyTorch format; "
                + _CONVERT_HINT.format(path=run.path)
            )
    if not path.exists():
        note = RunFolder(path.parent).set_aside_note()
        raise NotFound(f"no checkpoint at {path}" + (f"; {note}" if note else ""))
    return path


def load_checkpoint(source: str | os.PathLike, *, best: bool = False) -> Checkpoint:
    """The checkpoint of a file or run folder (its last, or best with ``best``), checked."""
    return Checkpoint.load(resolve_checkpoint(source, best=best))


def check_state(state: dict, where: str) -> None:
    """Refuse checkpoint contents that cannot describe a usable model, naming the entry.

    ``state`` has the fields of :class:`Checkpoint` (``model``, ``model_info``, ``epoch``,
    ``history``, ``config``, ...).
    """
    def bad(what: str) -> BadFile:
        return BadFile(f"{where} is damaged or not a cnnkit checkpoint: {what}")

    info = state.get("model_info")
    if not isinstance(info, dict):
        raise bad("'model_info' is not an object")
    for key in ("arch", "input_shape", "num_classes", "class_names", "mean", "std"):
        if key not in info:
            raise bad(f"'model_info' has no {key!r}")
    # The architecture is stored whole: a name that is no built-in (a path) is never opened.
    if not (isinstance(info["arch"], dict)
            or (isinstance(info["arch"], str) and info["arch"] in ARCHITECTURES)):
        raise bad(f"'model_info.arch' must be an architecture object or a built-in name, got "
                  f"{type_name(info['arch'])} {str(info['arch'])[:80]!r}")
    if not isinstance(info["input_shape"], list):
        raise bad(f"'model_info.input_shape' must be a list of 3 integers, got "
                  f"{type_name(info['input_shape'])}")
    try:
        arch = load_architecture(info["arch"])
        input_shape = parse_input_shape(info["input_shape"])
        num_classes = check_int(info["num_classes"], "num_classes", minimum=1)
        rows = trace(arch, input_shape, num_classes)
    except CnnkitError as exc:
        raise bad(str(exc)) from None
    names = info["class_names"]
    if (not isinstance(names, list) or len(names) != num_classes
            or not all(isinstance(name, str) for name in names)):
        raise bad(f"'class_names' must list {num_classes} names (strings)")
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
    for index, row in enumerate(state["history"]):
        if not isinstance(row, dict):
            raise bad(f"'history[{index}]' must be an object, got {type_name(row)}")
        for key, value in row.items():
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise bad(f"'history[{index}].{key}' must be a number, got {type_name(value)}")
    if not isinstance(state.get("model"), dict) or not state["model"]:
        raise bad("'model' (the weights) is missing")
    if state.get("engine") not in ("numpy", "torch"):
        raise bad(f"'engine' is {state.get('engine')!r}, not 'numpy' or 'torch'")
    best = state.get("best_accuracy")
    if isinstance(best, bool) or not isinstance(best, (int, float)):
        raise bad(f"'best_accuracy' is {best!r}, not a number")
    if not isinstance(state.get("extra"), dict):
        raise bad("'extra' must be an object")


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
