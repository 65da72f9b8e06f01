"""Runs move between the engines: evaluation, prediction and resume by either engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tests.processes import SOURCE_ROOT, cnnkit_process
from tests.specs import SMALL_DROPOUT, SMALL_NO_DROPOUT, write_spec

from cnnkit.data import load_dataset
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.training import TrainConfig, train
from cnnkit.evaluation import evaluate
from cnnkit.model import TrainedModel


def _config(arch, engine, **kw):
    args = {"arch": arch, "epochs": 1, "val_size": 200, "train_limit": 640, "seed": 3,
            "engine": engine, "precision": "fp32"}
    if engine == "numpy":
        del args["precision"]
    return TrainConfig(**{**args, **kw})


@pytest.mark.parametrize("trained_by", ["torch", "numpy"])
def test_either_engine_evaluates_a_run_of_either_with_the_same_result(request, trained_by):
    """Test accuracy of both engines at most one image in 10,000 (or one) apart, logits within
    1e-4."""
    run = request.getfixturevalue({"torch": "trained_run", "numpy": "numpy_run"}[trained_by])
    results = {engine: evaluate(run, engine=engine, device="cpu") for engine in
               ("torch", "numpy")}
    count = results["torch"].count
    differing = np.abs(results["torch"].confusion - results["numpy"].confusion).sum() // 2
    # One image may land either side of an exact tie: the NumPy-trained run is near chance
    # level, with top-two logits equal to a few float32 roundings (2e-8 apart, measured).
    assert differing <= max(1, count // 10_000), differing
    assert results["torch"].accuracy == pytest.approx(results["numpy"].accuracy, abs=1 / count)
    images = load_dataset("synthetic-digits").test_images[:256]
    info = load_checkpoint(run).model_info
    scaled = (images.astype(np.float32) / 255 - info["mean"]) / info["std"]
    logits = {engine: TrainedModel.load(run, engine=engine).logits(scaled)
              for engine in ("torch", "numpy")}
    np.testing.assert_allclose(logits["numpy"], logits["torch"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(("first", "second"), [("numpy", "torch"), ("torch", "numpy")])
def test_resume_across_engines_follows_the_single_engine_run(tmp_path, first, second):
    """One epoch by one engine, a second by the other, ends where two epochs of the second
    engine from the same first epoch end (same batches, same optimizer state)."""
    spec = write_spec(SMALL_NO_DROPOUT, tmp_path)
    train(_config(str(spec), first), tmp_path / "same", evaluate_test=False)
    shutil.copytree(tmp_path / "same", tmp_path / "mixed")  # the same first epoch
    train(_config(str(spec), second, epochs=2), tmp_path / "mixed", resume=True,
          evaluate_test=False)
    train(_config(str(spec), first, epochs=2), tmp_path / "same", resume=True,
          evaluate_test=False)
    mixed, same = load_checkpoint(tmp_path / "mixed"), load_checkpoint(tmp_path / "same")
    assert (mixed.engine, mixed.epoch, len(mixed.history)) == (second, 2, 2)
    timing = ("epoch_seconds", "images_per_second")
    assert all(mixed.history[0][key] == same.history[0][key] for key in same.history[0]
               if key not in timing)
    for key, array in same.model.items():
        np.testing.assert_allclose(mixed.model[key], array, rtol=1e-3, atol=2e-4, err_msg=key)
    assert mixed.history[1]["train_loss"] == pytest.approx(same.history[1]["train_loss"],
                                                           rel=1e-4)
    for index, entries in same.optimizer["state"].items():
        assert float(mixed.optimizer["state"][index]["step"]) == float(entries["step"])


def _cnnkit(*arguments, cwd, check=True):
    return cnnkit_process(*arguments, cwd=cwd, check=check)


def test_numpy_engine_trains_evaluates_and_predicts_without_torch(tmp_path):
    """With torch impossible to import, train defaults to the NumPy engine and writes the
    report, and evaluate, predict, resume and summary work; asking for the torch engine is
    refused in one line."""
    from PIL import Image
    write_spec(SMALL_DROPOUT, tmp_path)
    trained = _cnnkit("train", "--arch", "small.json", "--epochs", "1", "--train-limit", "500",
                      "--val-size", "100", "--out", "run", cwd=tmp_path)
    assert "engine numpy" in trained.stdout and "test accuracy" in trained.stdout
    assert "Confusion matrix" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    resumed = _cnnkit("train", "--resume", "run", "--epochs", "2", cwd=tmp_path)
    assert "resuming after epoch 1 of 2 (checkpoint written by the numpy engine)" in (
        resumed.stdout)
    evaluated = _cnnkit("evaluate", "run", cwd=tmp_path)
    assert "accuracy" in evaluated.stdout and (tmp_path / "run" / "confusion-test.png").exists()
    image = load_dataset("synthetic-digits").test_images[0, 0]
    Image.fromarray(image).save(tmp_path / "digit.png")
    predicted = _cnnkit("predict", "run", "digit.png", "--json", cwd=tmp_path)
    assert '"probability"' in predicted.stdout
    summary = _cnnkit("summary", "--run", "run", cwd=tmp_path)
    assert "trained by the numpy engine" in summary.stdout
    refused = _cnnkit("evaluate", "run", "--engine", "torch", "--overwrite", cwd=tmp_path,
                      check=False)
    assert refused.returncode == 2 and "needs PyTorch" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _train_numpy(run_dir, *extra):
    return [sys.executable, "-m", "cnnkit", "train", "--engine", "numpy", "--epochs", "3",
            "--train-limit", "640", "--val-size", "100", "--seed", "5", "--quiet", "--out",
            str(run_dir), *extra]


def test_numpy_engine_resumes_exactly_after_sigkill(tmp_path):
    """A NumPy-engine run killed after its first checkpoint and resumed ends with exactly the
    weights, optimizer state and metrics of an uninterrupted run (dropout included)."""
    spec = write_spec(SMALL_DROPOUT, tmp_path)
    env = {**os.environ, "CNNKIT_OFFLINE": "1", "PYTHONPATH": SOURCE_ROOT}
    straight = subprocess.run(_train_numpy(tmp_path / "straight", "--arch", str(spec)),
                              env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_numpy(killed, "--arch", str(spec)), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.safetensors").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    stopped_at = load_checkpoint(killed).epoch
    assert stopped_at < 3
    resumed = subprocess.run([sys.executable, "-m", "cnnkit", "train", "--resume", str(killed),
                              "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final, reference = load_checkpoint(killed), load_checkpoint(tmp_path / "straight")
    assert final.epoch == reference.epoch == 3
    for key, array in reference.model.items():
        assert np.array_equal(final.model[key], array), key
    for index, entries in reference.optimizer["state"].items():
        for name, array in entries.items():
            assert np.array_equal(final.optimizer["state"][index][name], array), (index, name)
    timing = ("epoch_seconds", "images_per_second")
    assert [{k: v for k, v in row.items() if k not in timing} for row in final.history] == [
        {k: v for k, v in row.items() if k not in timing} for row in reference.history]


def test_torch_engine_run_converts_from_the_earlier_format(trained_run, tmp_path, capsys):
    """A checkpoint.pt in the earlier torch.save layout converts to safetensors with the same
    weights, and the converted run evaluates as the original did."""
    from cnnkit.cli import main
    from cnnkit.engines.legacy import LEGACY_FORMAT
    from cnnkit.nn.optim import to_torch_optimizer_state

    current = load_checkpoint(trained_run)
    old = {"format": LEGACY_FORMAT,
           "model": {key: torch.from_numpy(np.array(value)) for key, value in
                     current.model.items()},
           "optimizer": to_torch_optimizer_state(current.optimizer), "epoch": current.epoch,
           "best_accuracy": current.best_accuracy, "config": json.dumps(current.config),
           "model_info": json.dumps(current.model_info),
           "history": json.dumps(current.history), "world_size": 1}
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(old, legacy / "checkpoint.pt")
    torch.save(old, legacy / "best.pt")
    assert main(["convert-checkpoint", str(legacy)]) == 0
    assert "checkpoint.pt -> " in capsys.readouterr().out
    converted = load_checkpoint(legacy)
    assert converted.epoch == current.epoch and converted.engine == "torch"
    for key, array in current.model.items():
        assert np.array_equal(converted.model[key], array), key
    for index, entries in current.optimizer["state"].items():
        for name, array in entries.items():
            assert np.array_equal(converted.optimizer["state"][index][name], array)
    assert main(["convert-checkpoint", str(legacy / "best.pt")]) == 2  # exists: refused
    assert "exists" in capsys.readouterr().err
    original = evaluate(trained_run, engine="numpy")
    assert evaluate(legacy, engine="numpy").accuracy == original.accuracy


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_misshapen_optimizer_state_is_refused_by_name(run_copy, engine):
    """A checkpoint whose Adam moments do not fit the model is refused naming the entry, by
    either engine resuming it."""
    from cnnkit.errors import StateDictError

    checkpoint = load_checkpoint(run_copy)
    checkpoint.optimizer["state"][0]["exp_avg"] = np.zeros((1, 2), np.float32)
    checkpoint.save(run_copy / "checkpoint.safetensors")
    config = TrainConfig(**{**checkpoint.config, "engine": engine,
                            "epochs": checkpoint.epoch + 1})
    with pytest.raises(StateDictError, match="exp_avg"):
        train(config, run_copy, resume=True)
