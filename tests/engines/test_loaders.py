"""The batch loader: normalisation, seeded order, shards, resident and streaming paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.engines.loaders import BatchLoader


def _data(count=103, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 1, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    return images, labels


def _loader(images, labels, **kw):
    args = {"batch_size": 16, "device": torch.device("cpu"), "mean": 0.3, "std": 0.2}
    args.update(kw)
    return BatchLoader(images, labels, **args)


def test_batches_are_normalised_copies_of_the_data():
    """Without shuffling, batches are (image/255 - mean)/std of the data in order (numpy)."""
    images, labels = _data()
    batches = list(_loader(images, labels).batches())
    got = torch.cat([b.images for b in batches]).numpy()
    expected = (images.astype(np.float64) / 255 - 0.3) / 0.2
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(torch.cat([b.labels for b in batches]).numpy(), labels)
    assert [b.global_size for b in batches] == [16] * 6 + [7]


def test_shuffle_is_a_seeded_permutation():
    """A seeded epoch visits every image once; the same (seed, epoch) gives the same order."""
    images, labels = _data()
    loader = _loader(images, labels)
    order = loader.order(seed=4, epoch=2)
    assert sorted(order.tolist()) == list(range(len(images)))
    assert torch.equal(order, loader.order(seed=4, epoch=2))
    assert not torch.equal(order, loader.order(seed=4, epoch=3))
    labels_seen = torch.cat([b.labels for b in loader.batches(seed=4, epoch=2)])
    np.testing.assert_array_equal(labels_seen.numpy(), labels[order.numpy()])


def test_resident_and_streaming_deliver_the_same_batches():
    """The streaming path delivers exactly the batches the resident path does."""
    images, labels = _data()
    resident = _loader(images, labels, mode="resident")
    stream = _loader(images, labels, mode="stream")
    assert (resident.mode, stream.mode) == ("resident", "stream")
    for a, b in zip(resident.batches(1, 0), stream.batches(1, 0), strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_and_cover_each_global_batch(world):
    """Every process gets its own part of each global batch; together they cover it."""
    images, labels = _data()
    labels = np.arange(len(images))  # labels as image ids
    full = list(_loader(images, labels).batches(7, 1))
    shards = [list(_loader(images, labels, rank=r, world=world).batches(7, 1))
              for r in range(world)]
    for index, batch in enumerate(full):
        parts = [shard[index].labels.tolist() for shard in shards]
        joined = sorted(label for part in parts for label in part)
        assert joined == sorted(batch.labels.tolist())
        assert sum(len(p) for p in parts) == len(set(joined))
        assert all(shard[index].global_size == batch.global_size for shard in shards)


def test_channels_last_batches():
    """channels_last delivers the same values in channels-last memory format."""
    images, labels = _data()
    images = np.repeat(images, 3, axis=1)
    plain = next(_loader(images, labels).batches())
    last = next(_loader(images, labels, channels_last=True).batches())
    assert last.images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain.images, last.images)


def test_bad_inputs_are_refused():
    """Non-uint8 images, mismatched labels, bad modes and batch sizes are refused."""
    images, labels = _data()
    with pytest.raises(ValueError, match="uint8"):
        _loader(images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="labels"):
        _loader(images, labels[:-1])
    with pytest.raises(ValueError, match="loader must be one of"):
        _loader(images, labels, mode="fast")
    with pytest.raises(ValueError, match="batch_size"):
        _loader(images, labels, batch_size=0)
