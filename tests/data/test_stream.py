"""Batches from resident or memory-mapped images: same batches, seeded, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.data.stream import BatchSource, batch_source, choose_residency, epoch_order


@pytest.fixture
def mapped(tmp_path):
    """1,000 distinct 1×2×2 images in a memory-mapped .npy file, labels 0..9."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (1000, 1, 2, 2), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(1000) % 256
    images[:, 0, 0, 1] = np.arange(1000) // 256
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r"), rng.integers(0, 10, 1000)


def _ids(batch):
    return (batch[:, 0, 0, 0].astype(int) + 256 * batch[:, 0, 0, 1].astype(int)).tolist()


def _epoch(source, epoch, start=0):
    return [(images.copy(), labels.copy()) for images, labels in source.epoch(epoch,
                                                                             start_batch=start)]


def test_streaming_equals_resident(mapped):
    """A budget that forces streaming gives the resident path's batches, for the same seed."""
    images, labels = mapped
    train = np.arange(0, 1000, 3)
    lines = []
    streamed = batch_source(images, labels, 32, seed=3, indices=train, budget=100,
                            block_size=64, report=lines.append)
    resident = batch_source(images, labels, 32, seed=3, indices=train, budget=10**9,
                            block_size=64)
    assert "streamed" in lines[0] and streamed.read_ahead > 0 and resident.read_ahead == 0
    for epoch in (0, 1):
        one, other = _epoch(streamed, epoch), _epoch(resident, epoch)
        assert len(one) == len(other) == 11
        for (a_images, a_labels), (b_images, b_labels) in zip(one, other):
            np.testing.assert_array_equal(a_images, b_images)
            np.testing.assert_array_equal(a_labels, b_labels)
        seen = sorted(i for batch, _ in one for i in _ids(batch))
        assert seen == train.tolist()  # every training image once per epoch


def test_order_depends_on_seed_and_epoch(mapped):
    """The same seed and epoch repeat the order; another epoch or seed changes it."""
    images, labels = mapped
    order = [_ids(b) for b, _ in _epoch(BatchSource(images, labels, 50, seed=1, read_ahead=2), 0)]
    again = [_ids(b) for b, _ in _epoch(BatchSource(images, labels, 50, seed=1, read_ahead=2), 0)]
    assert order == again
    assert order != [_ids(b) for b, _ in _epoch(BatchSource(images, labels, 50, seed=1), 1)]
    assert order != [_ids(b) for b, _ in _epoch(BatchSource(images, labels, 50, seed=2), 0)]


def test_resume_from_batch_k(mapped):
    """Starting epoch 2 at batch 7 gives exactly the rest of the epoch."""
    images, labels = mapped
    source = BatchSource(images, labels, 64, seed=9, read_ahead=3, block_size=100)
    whole, rest = _epoch(source, 2), _epoch(source, 2, start=7)
    assert len(rest) == len(whole) - 7
    for (a, la), (b, lb) in zip(whole[7:], rest):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_block_shuffle_mixes_blocks():
    """Rows are shuffled within windows of blocks; the whole order is a permutation."""
    order = epoch_order(1000, 0, seed=0, block_size=10, window_blocks=4)
    assert sorted(order.tolist()) == list(range(1000))
    windows = order.reshape(25, 40) // 10
    assert all(len(set(window.tolist())) == 4 for window in windows)


def test_shards_split_every_global_batch(mapped):
    """Two ranks read disjoint halves of every global batch; together they are the batch."""
    images, labels = mapped
    whole = BatchSource(images, labels, 96, seed=0, block_size=50)
    ranks = [BatchSource(images, labels, 96, seed=0, block_size=50, shard=(rank, 2))
             for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole) == 11
    for index, (full, *parts) in enumerate(zip(_epoch(whole, 0), *(_epoch(r, 0) for r in ranks),
                                               strict=True)):
        ids = _ids(full[0])
        assert _ids(parts[0][0]) == ids[0::2] and _ids(parts[1][0]) == ids[1::2]
        assert whole.global_size(index) == len(ids)
    assert whole.global_size(10) == 1000 - 10 * 96


def test_no_seed_keeps_the_rows_in_order(mapped):
    """Without a seed the rows come in the order given, for evaluation."""
    images, labels = mapped
    rows = np.arange(5, 1000, 7)
    source = BatchSource(images, labels, 64, seed=None, indices=rows, read_ahead=2)
    assert [i for batch, _ in _epoch(source, 3) for i in _ids(batch)] == rows.tolist()


def test_stopping_early_ends_the_reader(mapped):
    """Leaving an epoch after one batch stops the read-ahead thread."""
    import threading

    images, labels = mapped
    batches = BatchSource(images, labels, 10, seed=0, read_ahead=2).epoch(0)
    next(batches)
    batches.close()
    assert not any(t.name == "cnnkit-read-ahead" for t in threading.enumerate())


def test_bad_arguments_are_refused(mapped):
    """Wrong shapes, ranks and start batches are refused, naming the argument."""
    images, labels = mapped
    with pytest.raises(ValueError, match="labels must be"):
        BatchSource(images, labels[:5], 10, seed=0)
    with pytest.raises(ValueError, match="rank must be"):
        BatchSource(images, labels, 10, seed=0, shard=(2, 2))
    with pytest.raises(ValueError, match="start_batch"):
        next(BatchSource(images, labels, 10, seed=0).epoch(0, start_batch=101))
    with pytest.raises(ValueError, match="images must be uint8"):
        BatchSource(np.zeros((3, 2, 2)), np.zeros(3), 1, seed=0)
    assert choose_residency(0, budget=0).streaming is False
