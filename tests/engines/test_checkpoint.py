"""Checkpoints: safetensors round trip, atomic writes, refusal of damaged or foreign files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from cnnkit.arch import load_architecture
from cnnkit.engines.checkpoint import Checkpoint, check_compatible, load_checkpoint
from cnnkit.errors import BadFile, CnnkitError


def _info(**changes):
    info = {"arch": {"name": "tiny", "layers": [{"type": "flatten"},
                                                {"type": "linear", "out_features": 2}]},
            "input_shape": [1, 2, 2], "num_classes": 2, "class_names": ["a", "b"],
            "mean": 0.5, "std": 0.25, "background": "dark"}
    return {**info, **changes}


def _checkpoint(**changes):
    weight = np.arange(8, dtype=np.float32).reshape(2, 4)
    optimizer = {"state": {0: {"step": np.array(3.0, np.float32),
                               "exp_avg": weight * 0.5, "exp_avg_sq": weight * 0.25}},
                 "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8,
                                   "weight_decay": 0.0, "amsgrad": False, "params": [0, 1]}]}
    return Checkpoint(model={"1.weight": weight, "1.bias": np.zeros(2, np.float32)},
                      optimizer=optimizer, epoch=1, config={"dataset": "x"},
                      model_info=_info(**changes), history=[{"epoch": 1, "lr": 0.001}],
                      best_accuracy=0.5, engine="numpy")


def test_round_trip(tmp_path):
    """Weights, optimizer state and metadata come back equal; no temporary file remains."""
    original = _checkpoint()
    original.save(tmp_path / "c.safetensors")
    loaded = Checkpoint.load(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(loaded.model["1.weight"], original.model["1.weight"])
    state = loaded.optimizer["state"][0]
    expected = original.optimizer["state"][0]
    np.testing.assert_array_equal(state["exp_avg_sq"], expected["exp_avg_sq"])
    assert state["step"].shape == () and state["step"] == 3.0
    assert loaded.optimizer["param_groups"][0]["betas"] == [0.9, 0.999]
    assert (loaded.epoch, loaded.engine, loaded.best_accuracy) == (1, "numpy", 0.5)
    assert loaded.history == original.history and loaded.model_info == original.model_info
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_file_holds_tensors_under_torch_names_and_json_metadata(tmp_path):
    """The file is plain safetensors: model.<key>, optimizer.state.<i>.<name>, JSON metadata."""
    from safetensors import safe_open

    _checkpoint().save(tmp_path / "c.safetensors")
    with safe_open(str(tmp_path / "c.safetensors"), framework="numpy") as handle:
        keys = sorted(handle.keys())
        metadata = json.loads(handle.metadata()["cnnkit"])
    assert keys == ["model.1.bias", "model.1.weight", "optimizer.state.0.exp_avg",
                    "optimizer.state.0.exp_avg_sq", "optimizer.state.0.step"]
    assert metadata["format"] == "cnnkit-checkpoint" and metadata["version"] == 2


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
    _checkpoint(**changes).save(tmp_path / "c.safetensors")
    with pytest.raises(CnnkitError, match=message):
        Checkpoint.load(tmp_path / "c.safetensors")


def _header_file(path, header: dict, data: bytes = b"") -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _damaged(tmp_path):
    """Foreign and damaged files, each with the words its refusal must contain."""
    good = tmp_path / "good.safetensors"
    _checkpoint().save(good)
    rng = np.random.default_rng(0)
    cases = {
        "random": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "header claims"),
        "empty": (b"", "too short"),
        "truncated": (good.read_bytes()[:-40], "truncated"),
        "header-only": (good.read_bytes()[:300], "truncated"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(content)
    _header_file(tmp_path / "huge.safetensors",
                 {"model.w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]},
                  "__metadata__": {"cnnkit": "{}"}}, b"\0" * 16)
    cases["huge"] = (None, "claims 4,000,000,000,000 bytes")
    _header_file(tmp_path / "foreign.safetensors",
                 {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    cases["foreign"] = (None, "not a cnnkit checkpoint")
    _header_file(tmp_path / "future.safetensors", {"__metadata__": {"cnnkit": json.dumps(
        {"format": "cnnkit-checkpoint", "version": 99})}})
    cases["future"] = (None, "of version 99")
    _header_file(tmp_path / "notjson.safetensors", {"__metadata__": {"cnnkit": "{oops"}})
    cases["notjson"] = (None, "metadata is not JSON")
    (tmp_path / "old.pt").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    cases["old"] = (None, "cnnkit convert-checkpoint")
    return cases


def test_damaged_and_foreign_files_are_refused_in_one_line(tmp_path):
    """Random bytes, truncated files, huge tensor claims, foreign safetensors, other versions
    and old .pt files: each a BadFile with a one-line message, nothing allocated first."""
    for name, (_, words) in _damaged(tmp_path).items():
        path = tmp_path / (f"{name}.pt" if name == "old" else f"{name}.safetensors")
        with pytest.raises(BadFile) as caught:
            Checkpoint.load(path)
        message = str(caught.value)
        assert words in message, (name, message)
        assert "\n" not in message, name


def test_run_folder_with_an_old_checkpoint_says_how_to_convert(tmp_path):
    """A run folder that holds only checkpoint.pt is refused with the conversion command."""
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(BadFile, match=f"cnnkit convert-checkpoint {tmp_path}"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_is_reported(tmp_path):
    """A run folder without a checkpoint is a FileNotFoundError naming the path."""
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    """If writing fails half-way, the old checkpoint stays intact and no temporary remains."""
    path = tmp_path / "c.safetensors"
    _checkpoint().save(path)
    before = path.read_bytes()
    broken = _checkpoint()
    broken.history = [{"bad": object()}]  # not JSON: the write fails
    with pytest.raises(TypeError):
        broken.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


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
