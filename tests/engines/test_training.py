"""The training loop: determinism, run folder, divergence, resume, refusals."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from tests.specs import SMALL, conv_pool_spec, write_spec

from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.training import TrainConfig, TrainingError, pixel_statistics, train


def _config(arch, **kw):
    args = {"dataset": "synthetic-digits", "arch": arch, "epochs": 2, "batch_size": 64,
            "val_size": 200, "train_limit": 640, "seed": 3}
    args.update(kw)
    return TrainConfig(**args)


def _weights(run_dir):
    return load_checkpoint(run_dir).model


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_weights(small_arch, tmp_path):
    """Two runs with the same seed on the CPU end with bit-identical weights; another seed
    does not."""
    train(_config(small_arch), tmp_path / "a", evaluate_test=False)
    train(_config(small_arch), tmp_path / "b", evaluate_test=False)
    train(_config(small_arch, seed=4), tmp_path / "c", evaluate_test=False)
    assert _equal(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _equal(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_run_folder_holds_metrics_config_checkpoints_and_curves(small_arch, tmp_path):
    """A run writes config.json, one metrics row per epoch, both checkpoints and the curves."""
    result = train(_config(small_arch, epochs=3), tmp_path / "run")
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best.safetensors", "checkpoint.safetensors", "config.json", "curves.png",
        "initial.safetensors", "metrics.csv"]
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0 <= float(r["val_accuracy"]) <= 1 for r in rows)
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    state = load_checkpoint(run)
    assert state.epoch == 3 and len(state.history) == 3 and state.engine == "torch"
    best = load_checkpoint(run, best=True)
    assert best.best_accuracy == max(r["val_accuracy"] for r in result.history)
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.test_accuracy is not None and 0 <= result.test_accuracy <= 1


def test_streaming_and_resident_paths_train_identically(small_arch, tmp_path):
    """The streaming loader gives the same final weights as the resident one."""
    train(_config(small_arch, epochs=1, loader="resident"), tmp_path / "a", evaluate_test=False)
    train(_config(small_arch, epochs=1, loader="stream"), tmp_path / "b", evaluate_test=False)
    assert _equal(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "fp32", "channels_last": False, "fused_optimizer": False},
        {"precision": "bf16", "channels_last": True, "fused_optimizer": True},
        {"warmup_epochs": 0.5, "schedule": "cosine", "lr_scaling": "sqrt", "batch_size": 128},
    ],
)
def test_speed_options_learn_on_the_cpu(small_arch, tmp_path, options):
    """Every precision, memory-format and schedule option runs on the CPU and learns."""
    result = train(_config(small_arch, epochs=2, train_limit=2700, **options), tmp_path / "r")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["val_accuracy"] > 0.2  # chance is 0.1


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(run_copy):
    """A NaN/inf loss stops the run with a clear message; the checkpoint of the last good
    epoch stays."""
    before = load_checkpoint(run_copy)
    last = before.epoch
    config = TrainConfig(**{**before.config, "epochs": last + 1, "lr": 1e30})
    with pytest.raises(TrainingError, match=rf"NaN or infinite in epoch {last + 1}; the "
                                            rf"checkpoint of epoch {last} .* is kept"):
        train(config, run_copy, resume=True)
    state = load_checkpoint(run_copy)
    assert state.epoch == last and _equal(state.model, before.model)


def test_resume_continues_exactly(small_arch, tmp_path):
    """Training 1 epoch, then resuming to 2, equals training 2 epochs straight."""
    train(_config(small_arch, epochs=2), tmp_path / "straight", evaluate_test=False)
    train(_config(small_arch, epochs=1), tmp_path / "split", evaluate_test=False)
    train(_config(small_arch, epochs=2), tmp_path / "split", resume=True, evaluate_test=False)
    assert _equal(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))
    rows = list(csv.DictReader((tmp_path / "split" / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_resume_from_a_given_checkpoint_does_not_read_it_again(small_arch, tmp_path,
                                                               monkeypatch):
    """A checkpoint the caller has read is the one resumed from (the folder's is not read
    again), and the run ends as a straight one does."""
    from cnnkit.engines import training

    train(_config(small_arch, epochs=2), tmp_path / "straight", evaluate_test=False)
    train(_config(small_arch, epochs=1), tmp_path / "split", evaluate_test=False)
    saved = load_checkpoint(tmp_path / "split")

    def read_again(*args, **kwargs):
        raise AssertionError("the checkpoint was read a second time")

    monkeypatch.setattr(training, "load_checkpoint", read_again)
    train(_config(small_arch, epochs=2), tmp_path / "split", resume=True, checkpoint=saved,
          evaluate_test=False)
    assert _equal(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))


def test_checkpoint_without_resume_is_refused(trained_run, tmp_path):
    """A checkpoint given for a new run is refused before the folder is made."""
    checkpoint = load_checkpoint(trained_run)
    with pytest.raises(ValueError, match="only to resume"):
        train(TrainConfig(**checkpoint.config), tmp_path / "new", checkpoint=checkpoint)
    assert not (tmp_path / "new").exists()


class _Recorder:
    """An observer that writes down each call of the loop."""

    def __init__(self):
        self.calls = []

    def on_step(self, engine, epoch, step, steps, lr):
        self.calls.append(("step", epoch, step, steps))

    def on_epoch(self, row, engine):
        self.calls.append(("epoch", row["epoch"]))

    def on_end(self, engine, data, model_info, epoch):
        self.calls.append(("end", epoch))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_observers_see_every_step_every_epoch_and_the_end(small_arch, tmp_path, engine):
    """2 epochs of 10 steps: the observer is called after each step, then the epoch, in order,
    and once at the end with the number of epochs trained."""
    recorder = _Recorder()
    train(_config(small_arch, train_limit=840, engine=engine), tmp_path / "run",
          evaluate_test=False, observers=[recorder])
    expected = []
    for epoch in range(2):
        expected += [("step", epoch, step, 10) for step in range(10)] + [("epoch", epoch + 1)]
    assert recorder.calls == [*expected, ("end", 2)]


def test_resume_with_another_architecture_is_refused(run_copy, tmp_path):
    """Resuming with a different architecture of as many layers names the layer that differs
    (another count of layers is named in test_train_cli)."""
    saved = load_checkpoint(run_copy)
    other = conv_pool_spec(SMALL["name"], (SMALL["layers"][0]["out_channels"] + 1, 8))
    assert len(other["layers"]) == len(SMALL["layers"])
    config = TrainConfig(**{**saved.config, "arch": str(write_spec(other, tmp_path)),
                            "epochs": saved.epoch + 1})
    with pytest.raises(ValueError, match=r"differs in layer 0"):
        train(config, run_copy, resume=True)


def test_existing_output_is_not_overwritten(small_arch, tmp_path):
    """A non-empty output folder is refused unless overwrite is given."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        train(_config(small_arch, epochs=1), tmp_path / "run")
    train(_config(small_arch, epochs=1), tmp_path / "run", overwrite=True, evaluate_test=False)
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_resume_without_checkpoint_is_refused(small_arch, tmp_path):
    """Resuming a folder without a checkpoint is refused."""
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(_config(small_arch), tmp_path, resume=True)


def test_validation_is_held_out_of_the_limited_training_images(small_arch, tmp_path):
    """--train-limit 200 --val-size 0.25 trains on 150 images and validates on 50."""
    lines = []
    train(_config(small_arch, epochs=1, train_limit=200, val_size=0.25), tmp_path / "r",
          log=lines.append, evaluate_test=False)
    assert any("150 training, 50 validation images" in line for line in lines), lines


def test_validation_as_large_as_training_set_is_refused(small_arch, tmp_path):
    """A validation split that leaves nothing to train on is refused."""
    with pytest.raises(ValueError, match="leave 0 to train on"):
        train(_config(small_arch, val_size=12000, train_limit=None), tmp_path / "r")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"loader": "fast"}, "loader must be one of"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"input_shape": "28x28"}, "input shape"),
    ],
)
def test_bad_config_is_refused(options, message):
    """Each bad configuration value is refused with its name."""
    with pytest.raises(ValueError, match=message):
        _config("tutorial", **options)


def test_config_of_wrong_type_is_refused(tmp_path):
    """train needs a TrainConfig."""
    with pytest.raises(TypeError, match="TrainConfig"):
        train({"epochs": 1}, tmp_path)


def test_pixel_statistics_match_numpy():
    """Histogram-based mean and std equal numpy's on the same pixels."""
    rng = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (50, 1, 7, 7), generator=rng, dtype=torch.uint8).numpy()
    mean, std = pixel_statistics(pixels)
    scaled = pixels / 255.0
    assert mean == pytest.approx(scaled.mean(), rel=1e-12)
    assert std == pytest.approx(scaled.std(), rel=1e-12)


def test_fp16_with_gradient_scaler_runs_and_resumes(small_arch, tmp_path):
    """The float16 path (autocast plus gradient scaler, as on older GPUs) trains on the CPU,
    stores the scaler in the checkpoint and resumes from it."""
    run = tmp_path / "run"
    first = train(_config(small_arch, epochs=1, precision="fp16"), run, evaluate_test=False)
    assert first.precision == "fp16"
    state = load_checkpoint(run)
    assert state.extra["scaler"]["scale"] > 0
    result = train(_config(small_arch, epochs=2, precision="fp16"), run, resume=True)
    assert len(result.history) == 2
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_trains_and_its_checkpoint_loads_uncompiled(small_arch, tmp_path):
    """With torch.compile the model learns like the eager one, and the checkpoint holds plain
    weights that load into an uncompiled model."""
    from cnnkit.model import TrainedModel

    eager = train(_config(small_arch, epochs=2, precision="fp32"), tmp_path / "eager",
                  evaluate_test=False)
    compiled = train(_config(small_arch, epochs=2, precision="fp32", compile=True),
                     tmp_path / "compiled", evaluate_test=False)
    for row_eager, row_compiled in zip(eager.history, compiled.history, strict=True):
        assert row_compiled["train_loss"] == pytest.approx(row_eager["train_loss"], rel=0.02)
    model = TrainedModel.load(tmp_path / "compiled", engine="torch").runner.model
    assert not any("_orig_mod" in name for name, _ in model.named_parameters())


def test_learning_rate_schedule_by_hand():
    """Scaling, warm-up and cosine decay give the hand-computed learning rates."""
    from cnnkit.schedule import lr_at

    def _lr_at(config, step, steps):
        return lr_at(step, steps, base_lr=config.base_lr, epochs=config.epochs,
                     warmup_epochs=config.warmup_epochs, schedule=config.schedule)

    config = TrainConfig(batch_size=256, lr=1e-3, lr_scaling="sqrt", warmup_epochs=1.0,
                         schedule="cosine", epochs=3)
    assert config.base_lr == pytest.approx(2e-3)  # sqrt(256 / 64) = 2
    steps = 10  # per epoch
    assert _lr_at(config, 0, steps) == pytest.approx(2e-4)  # warm-up starts at a tenth
    assert _lr_at(config, 5, steps) == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5))
    assert _lr_at(config, 10, steps) == pytest.approx(2e-3)  # cosine starts at the peak
    assert _lr_at(config, 20, steps) == pytest.approx(1e-3)  # half-way down
    assert _lr_at(config, 30, steps) == pytest.approx(0.0, abs=1e-12)
    linear = TrainConfig(batch_size=512, lr_scaling="linear")
    assert linear.base_lr == pytest.approx(8e-3)
    assert _lr_at(TrainConfig(), 123, 10) == pytest.approx(1e-3)  # the tutorial: constant


def test_progress_bar_and_log_lines(small_arch, tmp_path, capsys):
    """With progress on, a bar per epoch shows the loss on stderr; log receives epoch lines."""
    lines = []
    train(_config(small_arch, epochs=1), tmp_path / "run", progress=True, log=lines.append,
          evaluate_test=False)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "img/s" in err
    assert lines[0].startswith("synthetic-digits: 440 training, 200 validation images")
    assert "data resident on the device" in lines[0]
    assert lines[1].startswith("epoch 1/1: train loss")


def test_resume_does_not_need_the_spec_file(small_arch, tmp_path):
    """A run started from a spec file resumes after the file is gone: the checkpoint holds the
    architecture."""
    train(_config(small_arch, epochs=1), tmp_path / "run", evaluate_test=False)
    os.remove(small_arch)
    saved = load_checkpoint(tmp_path / "run").config
    result = train(TrainConfig(**{**saved, "epochs": 2}), tmp_path / "run", resume=True,
                   evaluate_test=False)
    assert [row["epoch"] for row in result.history] == [1, 2]
