"""CIFAR-10's binary archive: download from a local mirror of generated files, verification,
parsing against hand-written records, refusal of damaged or hostile archives, one training step."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from cnnkit.cli import main
from cnnkit.data import load_dataset, registry
from cnnkit.data.cifar import FOLDER, META_MEMBER, RECORD_BYTES, TEST_MEMBER, TRAIN_MEMBERS
from cnnkit.data.registry import ARCHIVE_DATASETS, DatasetNotFoundError, locate
from cnnkit.errors import BadFile

NAME = "cifar-10"
ARCHIVE = "cifar-10-binary.tar.gz"
CLASS_NAMES = ARCHIVE_DATASETS[NAME].class_names
META = ("\n".join(CLASS_NAMES) + "\n\n").encode()


def _record(label, red, green, blue):
    """One record: the label byte, then the red, green and blue 32x32 planes row by row."""
    planes = [np.broadcast_to(np.asarray(plane, np.uint8), (32, 32)) for plane in (red, green,
                                                                                    blue)]
    return bytes([label]) + b"".join(plane.tobytes() for plane in planes)


ROWS = np.arange(32)[:, None] * np.ones(32, np.uint8)  # each pixel holds its row number
COLUMNS = ROWS.T  # each pixel holds its column number


def _batch(first_label, count=4):
    """``count`` records with labels ``first_label, first_label + 1, ...``; record ``k`` has
    red = 10 * label, green = row + k, blue = column."""
    return b"".join(_record((first_label + k) % 10, 10 * ((first_label + k) % 10), ROWS + k,
                            COLUMNS) for k in range(count))


def _members():
    """Five training batches of 4 records (labels 0..9 twice, in order) and a test batch of 4."""
    members = {name: _batch(4 * index) for index, name in enumerate(TRAIN_MEMBERS)}
    members[TEST_MEMBER] = _batch(6)
    members[META_MEMBER] = META
    return members


def _archive(members=None, *, extra=(), compress=True):
    """The bytes of a tar(.gz) with ``FOLDER/name`` for each member (``None`` leaves one out)
    and ``extra`` TarInfo/bytes pairs added as they are."""
    members = _members() if members is None else members
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folder = tarfile.TarInfo(FOLDER)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in members.items():
            if data is None:
                continue
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def _write(folder, data, name=ARCHIVE):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def _serve(httpd, base, monkeypatch, data, sha256=None):
    """Serve ``data`` as the archive from the local mirror; the registry expects ``sha256``
    (default the digest of ``data``)."""
    httpd.files[f"/mirror/{ARCHIVE}"] = data
    digest = sha256 or hashlib.sha256(data).hexdigest()
    fake = registry.ArchiveDataset(NAME, registry.DataFile(ARCHIVE, digest),
                                   mirrors=(f"{base}/mirror/",), class_names=CLASS_NAMES)
    monkeypatch.setitem(ARCHIVE_DATASETS, NAME, fake)


def test_download_is_verified_cached_and_parsed(server, isolated, monkeypatch):
    """Not on disk: the archive is downloaded into the cache, verified, and read into uint8
    (N, 3, 32, 32) images and int64 labels like MNIST's; the next load uses the cache."""
    httpd, base = server
    _serve(httpd, base, monkeypatch, _archive())
    data = load_dataset(NAME)
    cache = isolated / "cache" / "cnnkit" / NAME
    assert sorted(p.name for p in cache.iterdir()) == [ARCHIVE]
    assert (data.train_images.shape, data.test_images.shape) == ((20, 3, 32, 32), (4, 3, 32, 32))
    assert (data.train_images.dtype, data.train_labels.dtype) == (np.uint8, np.int64)
    assert data.input_shape == (3, 32, 32) and data.class_names == list(CLASS_NAMES)
    httpd.files.clear()  # the server now answers 404: the cache must serve the second load
    np.testing.assert_array_equal(load_dataset(NAME).test_labels, data.test_labels)


def test_wrong_digest_keeps_nothing(server, isolated, monkeypatch):
    """Bytes that are not the official archive (here: generated ones checked against the
    official digest) are refused with both digests named, and the cache stays empty."""
    httpd, base = server
    _serve(httpd, base, monkeypatch, _archive(),
           sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
    with pytest.raises(DatasetNotFoundError, match=r"has SHA-256 [0-9a-f]{64}, expected c4a38c"):
        load_dataset(NAME)
    cache = isolated / "cache" / "cnnkit" / NAME
    assert not cache.exists() or list(cache.iterdir()) == []


def test_records_parse_as_written_by_hand(isolated):
    """Labels come in batch order 1..5, and each record's planes are red, green, blue in rows:
    red 10*label, green row + k, blue column."""
    _write(isolated / "given", _archive())
    data = load_dataset(NAME, data_dir=isolated / "given", download=False)
    assert data.train_labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2
    assert data.test_labels.tolist() == [6, 7, 8, 9]
    image = data.test_images[3]  # label 9, k = 3
    assert image[0, 5, 7] == 90 and image[1, 5, 7] == 5 + 3 and image[2, 5, 7] == 7
    assert image[1, 31, 0] == 34 and image[2, 0, 31] == 31
    assert data.train_images[4, 0].min() == data.train_images[4, 0].max() == 40


def test_lookup_order_and_a_plain_tar(isolated, monkeypatch):
    """--data-dir wins over $CNNKIT_DATA/cifar-10, which wins over the system folder; an
    uncompressed cifar-10-binary.tar is found and read as well."""
    monkeypatch.setenv("CNNKIT_DATA", str(isolated / "env"))
    _write(isolated / "system" / NAME, _archive())
    assert locate(NAME)[ARCHIVE[: -len(".gz")]].parent == isolated / "system" / NAME
    _write(isolated / "env" / NAME, _archive(compress=False), name="cifar-10-binary.tar")
    assert locate(NAME)["cifar-10-binary.tar"].parent == isolated / "env" / NAME
    assert load_dataset(NAME, download=False).train_images.shape == (20, 3, 32, 32)
    _write(isolated / "given", _archive())
    assert locate(NAME, isolated / "given")["cifar-10-binary.tar"].parent == isolated / "given"


def test_missing_archive_names_the_file_and_folders(isolated, monkeypatch):
    """Offline without the archive: the message lists the folders and the one file to put
    there."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(NAME)
    message = str(info.value)
    assert f"put the file {ARCHIVE} in one of them" in message
    assert str(isolated / "system" / NAME) in message and "CNNKIT_OFFLINE" in message


def _info(name, kind=tarfile.REGTYPE, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def _damaged_gzip():
    data = bytearray(_archive())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return bytes(data)


def _huge_member():
    """A tar.gz whose first member declares 10**12 bytes that are not there."""
    info = _info(f"{FOLDER}/data_batch_1.bin", size=10**12)
    return gzip.compress(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
                         + bytes(1024), mtime=0)


def _changed(**changes):
    members = _members()
    members.update(changes)
    return members


def _with(**changes):
    return _archive(_changed(**changes))


REFUSALS = [
    # (what, archive bytes, the words the message holds)
    ("a member climbing out of the folder",
     _archive(extra=[(_info(f"{FOLDER}/../../evil.bin", size=3), b"abc")]),
     "holds the member 'cifar-10-batches-bin/../../evil.bin', which is not one of"),
    ("an absolute member name",
     _archive(extra=[(_info("/etc/cron.d/x", size=3), b"abc")]), "'/etc/cron.d/x'"),
    ("a symbolic link in place of a batch",
     _archive(_changed(**{"data_batch_5.bin": None}),
              extra=[(_info(f"{FOLDER}/data_batch_5.bin", tarfile.SYMTYPE, link="/etc/passwd"),
                      None)]),
     "'cifar-10-batches-bin/data_batch_5.bin' is not a regular file"),
    ("a member listed twice",
     _archive(extra=[(_info(f"{FOLDER}/{TEST_MEMBER}", size=RECORD_BYTES),
                      bytes(RECORD_BYTES))]), "twice"),
    ("a batch that is not whole records", _with(**{"data_batch_2.bin": bytes(RECORD_BYTES + 1)}),
     "data_batch_2.bin declares 3074 bytes, which is not a whole number of 3073-byte records"),
    ("a size declared before a byte is read", _huge_member(),
     "data_batch_1.bin declares 1000000000000 bytes"),
    ("a missing batch", _with(**{"data_batch_3.bin": None}),
     "it lacks cifar-10-batches-bin/data_batch_3.bin"),
    ("a label outside 0..9", _with(**{TEST_MEMBER: bytes([12]) + bytes(RECORD_BYTES - 1)}),
     "test_batch.bin: record 0 has the label 12, outside 0..9"),
    ("other class names", _with(**{META_MEMBER: b"cat\ndog\n"}),
     "batches.meta.txt lists the classes ['cat', 'dog'], not CIFAR-10's"),
    ("a damaged gzip stream", _damaged_gzip(), "is not a readable tar archive or is damaged"),
    ("a file that is no archive", b"just text", "is not a readable tar archive"),
]


@pytest.mark.parametrize(("archive", "words"), [row[1:] for row in REFUSALS],
                         ids=[row[0] for row in REFUSALS])
def test_damaged_or_hostile_archives_are_refused(isolated, archive, words):
    """Each damaged or hostile archive is a BadFile naming the archive (and the member); nothing
    is written next to it."""
    path = _write(isolated / "given", archive)
    with pytest.raises(BadFile) as info:
        load_dataset(NAME, data_dir=isolated / "given", download=False)
    assert str(info.value).startswith(str(path)) and words in str(info.value), str(info.value)
    assert [p.name for p in (isolated / "given").iterdir()] == [ARCHIVE]
    assert not (isolated / "etc").exists() and not (isolated / "evil.bin").exists()


def test_data_info_describes_it(isolated, capsys):
    """cnnkit data info cifar-10 shows where the archive is, the shape, classes and splits."""
    _write(isolated / "given", _archive())
    assert main(["data", "info", NAME, "--data-dir", str(isolated / "given")]) == 0
    out = capsys.readouterr().out
    assert f"files in {isolated / 'given'}" in out
    assert "cifar-10: images 3x32x32, 10 classes" in out
    assert "  test: 4 images" in out and "airplane, automobile, bird" in out


def test_one_numpy_training_step_on_generated_cifar(isolated, tmp_path):
    """The tutorial's CNN trains on 3x32x32 images with the NumPy engine: its first layer takes
    3 channels and its flatten 64*8*8 features, and the run records the shape."""
    from cnnkit.engines.checkpoint import load_checkpoint
    from cnnkit.engines.training import TrainConfig, train

    _write(isolated / "given", _archive())
    config = TrainConfig(dataset=NAME, data_dir=str(isolated / "given"), engine="numpy",
                         epochs=1, batch_size=64, val_size=2, seed=1)
    result = train(config, tmp_path / "run")
    assert result.engine == "numpy" and len(result.history) == 1
    saved = load_checkpoint(tmp_path / "run")
    assert saved.model_info["input_shape"] == [3, 32, 32]
    assert saved.model["0.weight"].shape == (32, 3, 5, 5)
    assert saved.model["7.weight"].shape == (1024, 4096)


def test_the_cifar_recipe_trains_on_generated_cifar(isolated, tmp_path):
    """cnnkit train --recipe cifar-10 (shifts and flips of colour images) runs one epoch; the
    run records the recipe and what the command line changed."""
    import json

    _write(isolated / "given", _archive())
    run = tmp_path / "run"
    assert main(["train", "--recipe", "cifar-10", "--data-dir", str(isolated / "given"),
                 "--engine", "numpy", "--epochs", "1", "--val-size", "2", "--quiet",
                 "--no-report", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["recipe"], config["augment"], config["dataset"]) == (
        "cifar-10", "shift-flip", NAME)
    assert set(config["recipe_overrides"]) == {"epochs", "val_size"}
