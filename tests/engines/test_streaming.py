"""Training on streamed data: batches, statistics, a full run, and resume in mid-epoch.

Streamed batches come in a different order from resident ones: the resident loaders shuffle the
whole training set at once, while streaming shuffles blocks of neighbouring rows (so that a
memory map is read in large pieces). These tests therefore check that streaming is fixed by
the seed, that each epoch visits every training image exactly once with the resident path's
normalisation, that a streamed run trains end to end with the resident run's statistics, and
that a streamed epoch interrupted after some steps resumes exactly.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from tests.data.conftest import make_folder

from cnnkit.cli import main
from cnnkit.engines import training
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.numpy_engine import NumpyEngine
from cnnkit.engines.torch_engine import TorchEngine
from cnnkit.engines.training import TrainConfig, image_statistics, pixel_statistics, train
from cnnkit.errors import InvalidArgument


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """240 small PNG and JPEG files of mixed sizes in three classes."""
    return make_folder(tmp_path_factory.mktemp("streaming") / "photos", counts=(90, 80, 70))


@pytest.fixture
def mapped(tmp_path):
    """600 distinct 1x4x4 images (pixel 0 and 1 hold the row) in a memory-mapped file."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (600, 1, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(600) % 256, np.arange(600) // 256
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r"), rng.integers(0, 10, 600)


@pytest.fixture
def ctrl_c():
    """SIGINT handled as Python's default does (raising KeyboardInterrupt), as at a prompt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _config(arch, folder, **options):
    args = {"dataset": f"imagefolder:{folder}", "input_shape": (1, 12, 12), "arch": arch,
            "epochs": 2, "batch_size": 16, "val_size": 40, "seed": 5, "engine": "torch",
            "precision": "fp32", "workers": 1}
    args.update(options)
    return TrainConfig(**args)


def _weights(run_dir):
    return load_checkpoint(run_dir).model


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _loader(engine_name, images, labels, rows, streaming):
    config = TrainConfig(engine=engine_name)
    engine = (TorchEngine if engine_name == "torch" else NumpyEngine)(config)
    return engine.loader(images, labels, batch_size=32, mean=0.4, std=0.2, rows=rows,
                         streaming=streaming)


def _host(array):
    return array.cpu().numpy() if hasattr(array, "cpu") else array


@pytest.mark.parametrize("engine_name", ["torch", "numpy"])
def test_streamed_epoch_visits_each_training_image_once(engine_name, mapped):
    """A streamed epoch is fixed by the seed, holds every training row once, normalised as the
    resident loader does, and another epoch has another order."""
    images, labels = mapped
    rows = np.sort(np.random.default_rng(0).choice(600, 450, replace=False))
    streamed = _loader(engine_name, images, labels, rows, streaming=True)
    resident = _loader(engine_name, images, labels, rows, streaming=False)
    assert (streamed.mode, resident.mode, len(streamed), len(resident)) == (
        "stream", "resident", 15, 15)

    def epoch(loader, number):
        batches = [(_host(b.images), _host(b.labels), b.global_size)
                   for b in loader.batches(7, number)]
        pixels = np.concatenate([b[0] for b in batches])
        ids = np.round((pixels[:, 0, 0, 0] * 0.2 + 0.4) * 255).astype(int) + 256 * np.round(
            (pixels[:, 0, 0, 1] * 0.2 + 0.4) * 255).astype(int)
        return batches, pixels, ids

    one, pixels, ids = epoch(streamed, 0)
    _, _, ids_again = epoch(streamed, 0)
    _, resident_pixels, resident_ids = epoch(resident, 0)
    np.testing.assert_array_equal(ids, ids_again)
    assert sorted(ids.tolist()) == rows.tolist()
    assert [b[2] for b in one] == [32] * 14 + [2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in one]), labels[ids])
    np.testing.assert_allclose(pixels[np.argsort(ids)], resident_pixels[np.argsort(resident_ids)],
                               rtol=0, atol=1e-6)
    assert not np.array_equal(epoch(streamed, 1)[2], ids)
    rest = [b.labels for b in streamed.batches(7, 0, start_batch=9)]
    assert len(rest) == 6 and all(np.array_equal(_host(a), b[1]) for a, b in zip(rest, one[9:]))


def test_statistics_are_exact_when_small_and_sampled_when_large(mapped, monkeypatch):
    """The statistics equal the whole-array histogram's while the rows fit the sample size,
    whatever the chunk size; beyond it they are those of a seeded sample of rows."""
    images, _ = mapped
    rows = np.arange(3, 600, 2)
    mean, std = pixel_statistics(np.asarray(images[rows]))
    monkeypatch.setattr(training, "_STATISTICS_CHUNK", 7)
    assert image_statistics(images, rows, seed=1)[:2] == pytest.approx((mean, std), rel=1e-12)
    monkeypatch.setattr(training, "STATISTICS_SAMPLE_BYTES", 16 * 50)
    sample = np.sort(np.random.default_rng(4).choice(rows, 50, replace=False))
    assert image_statistics(images, rows, seed=4)[:2] == pytest.approx(
        pixel_statistics(np.asarray(images[sample])), rel=1e-12)
    assert image_statistics(images, rows, seed=4) == image_statistics(images, rows, seed=4)


def test_streamed_run_is_deterministic_and_shares_statistics(small_arch, folder, tmp_path):
    """Two streamed runs with one seed end with identical weights; a resident run of the same
    data stores the same normalisation and trains to a different (globally shuffled) result."""
    lines, numpy = [], {"engine": "numpy"}
    train(_config(small_arch, folder, stream="always", **numpy), tmp_path / "a",
          log=lines.append)
    train(_config(small_arch, folder, stream="always", **numpy), tmp_path / "b")
    resident = train(_config(small_arch, folder, stream="never", **numpy), tmp_path / "c")
    assert any(line.startswith("streaming: batches read from the memory-mapped cache")
               for line in lines)
    a, c = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "c")
    assert _equal(a.model, _weights(tmp_path / "b"))
    assert a.model_info == c.model_info
    assert len(a.history) == 2 and resident.loader == "resident"


@pytest.mark.parametrize("engine_name", ["torch", "numpy"])
def test_interrupted_streamed_epoch_resumes_exactly(engine_name, small_arch, folder, tmp_path,
                                                   monkeypatch, ctrl_c):
    """Ctrl-C in the middle of a step of the second streamed epoch stops after that step and
    saves it; resuming ends with the weights and metrics of an uninterrupted run."""
    config = _config(small_arch, folder, stream="always", engine=engine_name)
    whole = train(config, tmp_path / "whole")
    engine_class = TorchEngine if engine_name == "torch" else NumpyEngine
    original, calls = engine_class.train_step, []

    def interrupted(self, batch, lr):
        calls.append(lr)
        if len(calls) == 17:  # in the fourth step of the second of 13-step epochs
            os.kill(os.getpid(), signal.SIGINT)
        original(self, batch, lr)

    monkeypatch.setattr(engine_class, "train_step", interrupted)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", log=lines.append)
    assert len(calls) == 17 and "interrupted after step 4 of epoch 2" in lines[-1]
    partial = load_checkpoint(tmp_path / "cut")
    assert partial.epoch == 1 and partial.extra["partial_epoch"]["step"] == 4
    monkeypatch.setattr(engine_class, "train_step", original)
    lines = []
    resumed = train(config, tmp_path / "cut", resume=True, log=lines.append)
    assert any("resuming at step 4 of epoch 2" in line for line in lines)
    assert _equal(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    for ours, theirs in zip(resumed.history, whole.history, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-9)


def test_cli_train_streams_an_image_folder(small_arch, folder, tmp_path, capsys):
    """cnnkit train --stream always on an image folder says it streams and finishes; with
    --loader resident it is refused in one line."""
    status = main(["train", "--dataset", f"imagefolder:{folder}", "--input", "1x12x12",
                   "--arch", small_arch, "--epochs", "1", "--val-size", "40", "--stream",
                   "always", "--engine", "torch", "--precision", "fp32", "--workers", "1",
                   "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "streaming: batches read from the memory-mapped cache" in out
    assert "(streamed from the memory map)" in out and "test accuracy" not in out
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()
    with pytest.raises(InvalidArgument, match="--stream always cannot be combined"):
        TrainConfig(stream="always", loader="resident")


def test_resuming_an_epoch_in_another_order_says_so(small_arch, folder, tmp_path, monkeypatch,
                                                    ctrl_c):
    """An epoch interrupted while streamed and resumed held in memory says that the rest of it
    follows another order, and still finishes."""
    config = _config(small_arch, folder, stream="always", engine="numpy", epochs=1)
    original = NumpyEngine.train_step

    def interrupted(self, batch, lr):
        original(self, batch, lr)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(NumpyEngine, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run")
    monkeypatch.setattr(NumpyEngine, "train_step", original)
    lines = []
    resumed = train(TrainConfig(**{**config.to_dict(), "stream": "never"}), tmp_path / "run",
                    resume=True, log=lines.append)
    assert any("resuming at step 1 of epoch 1" in line for line in lines)
    assert any("follows this run's order" in line for line in lines)
    assert len(resumed.history) == 1
