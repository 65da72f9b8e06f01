"""Checkpoints: atomic writes, safe loading, and refusal of foreign or mismatched files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from cnnkit.arch import load_architecture
from cnnkit.engines.checkpoint import (
    FORMAT,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from cnnkit.errors import CnnkitError


class _Payload:
    """An object whose unpickling runs a shell command (creates a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _info(**changes):
    info = {"arch": {"name": "tiny", "layers": [{"type": "flatten"},
                                                {"type": "linear", "out_features": 2}]},
            "input_shape": [1, 2, 2], "num_classes": 2, "class_names": ["a", "b"],
            "mean": 0.5, "std": 0.25, "background": "dark"}
    return {**info, **changes}


def _state(**changes):
    return {"model": {"w": torch.arange(4.0)}, "optimizer": {}, "epoch": 1,
            "config": "{}", "model_info": json.dumps(_info(**changes)), "history": "[]"}


def test_round_trip(tmp_path):
    """A saved checkpoint loads back with its tensors and decoded JSON parts."""
    save_checkpoint(tmp_path / "c.pt", _state())
    state = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(state["model"]["w"], torch.arange(4.0))
    assert state["epoch"] == 1 and state["history"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"std": 0.0}, "std is 0.0; it must be positive"),
        ({"mean": float("nan")}, "mean is nan"),
        ({"class_names": ["a"]}, "must list 2 names"),
        ({"input_shape": [1, 2]}, "input shape must be CxHxW"),
        ({"arch": {"name": "x", "layers": [{"type": "conv2d", "out_channels": 10**9,
                                            "kernel_size": 3}, {"type": "flatten"},
                                           {"type": "linear", "out_features": 2}]},
          "input_shape": [10**4, 9, 9]},
         "would need about .* of memory"),
    ],
)
def test_damaged_model_description_is_refused(tmp_path, changes, message):
    """A checkpoint whose model description cannot work is refused by name when loaded."""
    save_checkpoint(tmp_path / "c.pt", _state(**changes))
    with pytest.raises(CnnkitError, match=message):
        load_checkpoint(tmp_path / "c.pt")


def test_code_running_checkpoint_is_refused(tmp_path):
    """A file crafted to run code when unpickled is refused and the code does not run."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": _Payload(marker)}, path)
    with pytest.raises(ValueError, match=r"refused to load .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_with_code_is_refused(tmp_path):
    """A bare pickle (not torch's zip format) with a code payload is refused too."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError):
        load_checkpoint(path)
    assert not marker.exists()


def test_foreign_files_are_refused(tmp_path):
    """A text file, a truncated checkpoint and a torch file of another format are refused."""
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"not a readable checkpoint|refused"):
        load_checkpoint(text)
    save_checkpoint(tmp_path / "good.pt", _state())
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "good.pt").read_bytes()[:300])
    with pytest.raises(ValueError):
        load_checkpoint(cut)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cnnkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_checkpoint_is_reported(tmp_path):
    """A run folder without a checkpoint is an OSError naming the path."""
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    """If writing fails half-way, the old checkpoint stays intact and no temporary remains."""
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state())
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint(path, {**_state(), "bad": lambda: 0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_differences_are_named():
    """Input shape, class count and the first differing layer are named in the refusal."""
    arch = load_architecture("tutorial").to_dict()
    info = {"arch": arch, "input_shape": [1, 28, 28], "num_classes": 10}
    check_compatible(info, {"arch": arch, "input_shape": (1, 28, 28), "num_classes": 10}, "x")
    with pytest.raises(ValueError, match="trained on 1x28x28 inputs, not 3x32x32"):
        check_compatible(info, {"input_shape": (3, 32, 32)}, "x")
    with pytest.raises(ValueError, match="trained for 10 classes, not 5"):
        check_compatible(info, {"num_classes": 5}, "x")
    other = load_architecture("tutorial").to_dict()
    other["layers"][3]["out_channels"] = 48
    with pytest.raises(ValueError, match="differs in layer 3"):
        check_compatible(info, {"arch": other}, "x")
    shorter = {"name": "s", "layers": arch["layers"][:-2]}
    with pytest.raises(ValueError, match="11-layer architecture"):
        check_compatible(info, {"arch": shorter}, "x")
