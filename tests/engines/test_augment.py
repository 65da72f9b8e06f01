"""Augmentation of training batches: shifts and flips by hand and against a padded-slice
reference, the same batches on both engines, seeding and resume, label smoothing, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.specs import SMALL_NO_DROPOUT

from cnnkit.cli import main
from cnnkit.engines.augment import Augmentation, apply_numpy, crop_indices
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.engines.loaders import Batch
from cnnkit.engines.numpy_engine import NumpyBatch, NumpyEngine
from cnnkit.engines.torch_engine import TorchEngine
from cnnkit.engines.training import TrainConfig, train
from cnnkit.errors import InvalidArgument

IMAGE = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # rows 1..4, 5..8, 9..12, 13..16


def _moved(down, right, flip, padding=2, fill=0.0, image=IMAGE):
    rows, columns = crop_indices([down], [right], [flip], 4, 4, padding=padding)
    return apply_numpy(image, rows, columns, padding=padding, fill=fill)[0, 0]


def test_shift_down_and_right_by_known_amounts():
    """Down 1 and right 2: the content moves, the uncovered rows and columns hold the fill."""
    expected = [[0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 5, 6], [0, 0, 9, 10]]
    np.testing.assert_array_equal(_moved(1, 2, False), expected)


def test_shift_up_and_left_with_fill():
    """Up 2 and left 1 with fill -1."""
    expected = [[10, 11, 12, -1], [14, 15, 16, -1], [-1, -1, -1, -1], [-1, -1, -1, -1]]
    np.testing.assert_array_equal(_moved(-2, -1, False, fill=-1.0), expected)


def test_flip_mirrors_left_to_right_and_follows_the_shift():
    """A flip alone reverses each row; with a shift, the shifted image is mirrored."""
    np.testing.assert_array_equal(_moved(0, 0, True), IMAGE[0, 0, :, ::-1])
    np.testing.assert_array_equal(_moved(1, 1, True), _moved(1, 1, False)[:, ::-1])


def test_shift_larger_than_the_padding_is_refused():
    """A shift beyond the padding would read outside the padded image."""
    with pytest.raises(InvalidArgument, match="padding=1"):
        crop_indices([2], [0], [False], 4, 4, padding=1)


def _reference(images, down, right, flips, padding, fill):
    """Pad each image, slice the window, mirror: the textbook RandomCrop and flip."""
    count, _, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                    constant_values=fill)
    out = np.empty_like(images)
    for n in range(count):
        top, left = padding - down[n], padding - right[n]
        window = padded[n, :, top:top + height, left:left + width]
        out[n] = window[:, :, ::-1] if flips[n] else window
    return out


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 5), channels=st.integers(1, 3), height=st.integers(1, 9),
       width=st.integers(1, 9), padding=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_numpy_and_torch_gathers_match_the_padded_slice_reference(count, channels, height,
                                                                   width, padding, seed):
    """Random shapes and shifts: NumPy's and the torch engine's batches equal the reference."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((count, channels, height, width)).astype(np.float32)
    down, right = rng.integers(-padding, padding + 1, (2, count))
    flips = rng.random(count) < 0.5
    expected = _reference(images, down, right, flips, padding, np.float32(-0.5))
    rows, columns = crop_indices(down, right, flips, height, width, padding=padding)
    got = apply_numpy(images, rows, columns, padding=padding, fill=np.float32(-0.5))
    np.testing.assert_array_equal(got, expected)


def test_draws_depend_on_seed_epoch_and_step_alone():
    """Equal for equal (seed, epoch, step); different otherwise; 'shift' never flips; each of
    two processes gets its rows of the global draw."""
    one = Augmentation("shift-flip", seed=1, fill=0.0)
    again = Augmentation("shift-flip", seed=1, fill=0.0)
    for first, second in zip(one.draws(3, 5, 64, 28, 28), again.draws(3, 5, 64, 28, 28)):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(one.draws(3, 5, 64, 28, 28)[0], one.draws(3, 6, 64, 28, 28)[0])
    assert not np.array_equal(one.draws(3, 5, 64, 28, 28)[0],
                              Augmentation("shift-flip", 2, 0.0).draws(3, 5, 64, 28, 28)[0])
    _, columns = Augmentation("shift", seed=1, fill=0.0).draws(0, 0, 500, 28, 28)
    assert (np.diff(columns, axis=1) == 1).all()
    _, columns = one.draws(0, 0, 500, 28, 28)
    assert 150 < (np.diff(columns, axis=1) == -1).all(axis=1).sum() < 350
    rows, _ = one.draws(0, 1, 10, 28, 28)
    shards = [Augmentation("shift-flip", 1, 0.0, rank=r, world=2).draws(0, 1, 10, 28, 28)[0]
              for r in (0, 1)]
    np.testing.assert_array_equal(shards[0], rows[0::2])
    np.testing.assert_array_equal(shards[1], rows[1::2])


def _config(arch, **kw):
    args = {"dataset": "synthetic-digits", "arch": arch, "epochs": 2, "val_size": 200,
            "train_limit": 640, "seed": 3, "augment": "shift", "label_smoothing": 0.1}
    return TrainConfig(**{**args, **kw})


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_augmented_run_resumed_after_one_epoch_equals_the_straight_run(small_arch, tmp_path,
                                                                       engine):
    """Same seed: 1 epoch + resume to 2 ends with the weights of 2 epochs straight; the
    augmentation changes the result (it is applied)."""
    kw = {"engine": engine}
    train(_config(small_arch, **kw), tmp_path / "straight", evaluate_test=False)
    train(_config(small_arch, epochs=1, **kw), tmp_path / "split", evaluate_test=False)
    train(_config(small_arch, **kw), tmp_path / "split", resume=True, evaluate_test=False)
    train(_config(small_arch, augment="none", **kw), tmp_path / "plain", evaluate_test=False)
    straight = load_checkpoint(tmp_path / "straight").model
    assert _equal(straight, load_checkpoint(tmp_path / "split").model)
    assert not _equal(straight, load_checkpoint(tmp_path / "plain").model)


@pytest.mark.parametrize("engine_class", [TorchEngine, NumpyEngine])
def test_training_loss_with_label_smoothing_is_torch_cross_entropy(engine_class):
    """One step's loss sum is F.cross_entropy(label_smoothing=0.2) of the logits before it."""
    from cnnkit.arch import load_architecture

    config = TrainConfig(engine=engine_class.name, label_smoothing=0.2)
    if engine_class is TorchEngine:
        config.precision = "fp32"
    engine = engine_class(config)
    engine.build(load_architecture(SMALL_NO_DROPOUT), (1, 28, 28), 10, seed=0, lr=1e-3)
    images = np.random.default_rng(1).standard_normal((16, 1, 28, 28)).astype(np.float32)
    labels = np.arange(16) % 10
    logits = torch.from_numpy(engine.logits(images)).double()
    expected = F.cross_entropy(logits, torch.from_numpy(labels), reduction="sum",
                               label_smoothing=0.2).item()
    engine.start_epoch()
    if engine_class is TorchEngine:
        batch = Batch(torch.from_numpy(images), torch.from_numpy(labels), 16)
    else:
        batch = NumpyBatch(images, labels, 16)
    engine.train_step(batch, 1e-3)
    assert engine.totals()[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("kw", "message"), [
    ({"dataset": "mnist", "augment": "shift-flip"}, "mirrors images"),
    ({"dataset": "synthetic-digits", "augment": "shift-flip"}, "use --augment shift"),
    ({"augment": "rotate"}, "augment"),
    ({"label_smoothing": 1.0}, r"\[0, 1\)"),
    ({"label_smoothing": -0.1}, r"\[0, 1\)"),
    ({"label_smoothing": True}, r"\[0, 1\)"),
])
def test_bad_augmentation_settings_are_refused(kw, message):
    """Flips of digits, unknown policies and smoothing outside [0, 1) are refused by name."""
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**kw)


def test_flips_are_allowed_for_fashion_mnist():
    """Clothes may be mirrored: the configuration is accepted."""
    assert TrainConfig(dataset="fashion-mnist", augment="shift-flip").augment == "shift-flip"


def test_cli_refuses_flipping_digits_in_one_line(tmp_path, capsys):
    """cnnkit train --augment shift-flip on digits: exit 2, one line naming the option."""
    status = main(["train", "--augment", "shift-flip", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--augment shift-flip" in err[0]
    assert not (tmp_path / "run").exists()
