"""ONNX export: one file, a dynamic batch, the normalisation inside, the engine's logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.cli import main
from cnnkit.export import export_onnx
from cnnkit.model import TrainedModel

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture
def run_dir(run_copy):
    """A copy of the shared trained run: export writes model.onnx into the run."""
    return run_copy


def test_exported_logits_match_the_engine_for_any_batch(run_dir):
    """onnxruntime on raw [0, 1] pixels gives the engine's logits on normalised pixels, for
    batch sizes other than the one traced."""
    check = export_onnx(run_dir)
    assert check.path == run_dir / "model.onnx" and check.max_abs_difference <= 1e-4
    assert [p.name for p in run_dir.iterdir() if p.name.startswith("model")] == ["model.onnx"]
    loaded = TrainedModel.load(run_dir, engine="torch")
    model, info = loaded.runner.model, loaded.checkpoint.model_info
    session = onnxruntime.InferenceSession(str(check.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 7):
        pixels = rng.random((batch, *info["input_shape"]), dtype=np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy((pixels - info["mean"]) / info["std"])).numpy()
        (logits,) = session.run(["logits"], {"pixels": pixels})
        assert logits.shape == (batch, info["num_classes"])
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_command_prints_the_check_and_refuses_to_replace(run_dir, tmp_path, capsys):
    """`cnnkit export -o` prints the comparison; an existing file needs --overwrite."""
    target = tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "-o", str(target)]) == 0
    out = capsys.readouterr().out
    assert "largest logit difference" in out and str(target) in out
    assert main(["export", str(run_dir), "-o", str(target)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(run_dir), "-o", str(target), "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "{run}", "-o", "{tmp}/m.txt"], "must end in .onnx"),
        (["export", "{tmp}/absent"], "no checkpoint"),
        (["export", "{run}", "--tolerance", "1e-30", "-o", "{tmp}/t.onnx"],
         "was not written"),
    ],
)
def test_refusals(run_dir, tmp_path, capsys, argv, message):
    """Bad arguments and a failed check end in one line, exit 2, and no file."""
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "t.onnx").exists()


def test_missing_packages_are_named(run_dir, tmp_path, monkeypatch, capsys):
    """Without the export extra, the message names the packages and the install command."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    assert main(["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "onnxscript" in err and "pip install 'cnnkit[export]'" in err
