"""Data set lookup order and the verified download, against a local HTTP server only."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from tests.data.conftest import GOOD_SHA, PAYLOAD

from cnnkit.data import choose_dataset, load_dataset, registry
from cnnkit.data.idx import write_idx
from cnnkit.data.registry import (
    IDX_DATASETS,
    DatasetNotFoundError,
    DownloadError,
    download,
    fetch,
    locate,
    search_folders,
)
from cnnkit.engines.demo import demo_dataset


def _write_set(folder, count=20, compress=True, seed=0):
    """Four small IDX files named like MNIST's in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if compress else ""
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}",
                  rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}",
                  (np.arange(count) % 10).astype(np.uint8), compress=compress)


def test_good_download_is_verified_and_renamed(server, tmp_path):
    """A complete download with the right digest ends up under its final name, nothing else."""
    _, base = server
    target = tmp_path / "d" / "file.gz"
    download(f"{base}/good", target, GOOD_SHA)
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.gz"]


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    """A download with the wrong digest is refused and leaves nothing behind."""
    _, base = server
    target = tmp_path / "d" / "file.gz"
    with pytest.raises(DownloadError, match=r"has SHA-256 .* expected"):
        download(f"{base}/corrupt", target, GOOD_SHA)
    assert list(target.parent.iterdir()) == []


def test_dropped_connection_leaves_no_file(server, tmp_path):
    """A connection dropped half-way is reported and leaves neither the file nor a part file."""
    _, base = server
    target = tmp_path / "d" / "file.gz"
    with pytest.raises(DownloadError, match=r"cut short|interrupted"):
        download(f"{base}/dropped", target, GOOD_SHA, timeout=5)
    assert list(target.parent.iterdir()) == []


def test_unreachable_server_is_reported(tmp_path):
    """A refused connection is a DownloadError naming the URL."""
    with pytest.raises(DownloadError, match=r"could not download http://127\.0\.0\.1:9/x"):
        download("http://127.0.0.1:9/x", tmp_path / "x", GOOD_SHA, timeout=5)


def test_fetch_downloads_into_the_cache_from_a_mirror(server, isolated, monkeypatch):
    """fetch downloads all four files into the user cache, each verified, then finds them."""
    httpd, base = server
    _serve_dataset("mnist", httpd, base, isolated, monkeypatch)
    found = fetch("mnist")
    assert all(path.parent == isolated / "cache" / "cnnkit" / "mnist" for path in found.values())
    data = load_dataset("mnist")
    assert data.train_images.shape == (20, 1, 28, 28)


def _ordered(files):
    by_name = {f.name: f for f in files}
    return [by_name[f"{p}-{k}-idx{d}-ubyte.gz"] for p, k, d in
            (("train", "images", 3), ("train", "labels", 1), ("t10k", "images", 3),
             ("t10k", "labels", 1))]


def test_fetch_with_a_corrupting_mirror_keeps_nothing(server, isolated, monkeypatch):
    """When every mirror serves wrong bytes, fetch fails and the cache holds no data file."""
    _, base = server
    spec = IDX_DATASETS["mnist"]
    monkeypatch.setitem(
        IDX_DATASETS, "mnist",
        registry.IdxDataset("mnist", *spec.files, mirrors=(f"{base}/corrupt?",),
                            class_names=spec.class_names),
    )
    with pytest.raises(DatasetNotFoundError, match="the download failed"):
        fetch("mnist")
    cache = isolated / "cache" / "cnnkit" / "mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_lookup_order(isolated, monkeypatch):
    """--data-dir wins over $CNNKIT_DATA, which wins over the cache, which wins over the system."""
    places = {
        "dir": isolated / "given",
        "env": isolated / "env" / "mnist",
        "cache": isolated / "cache" / "cnnkit" / "mnist",
        "system": isolated / "system" / "mnist",
    }
    monkeypatch.setenv("CNNKIT_DATA", str(isolated / "env"))
    assert search_folders("mnist", places["dir"]) == list(places.values())
    for name in reversed(list(places)):
        _write_set(places[name], compress=name != "env")
        expected = places[name]
        data_dir = places["dir"] if name == "dir" else None
        found = locate("mnist", data_dir)
        assert {path.parent for path in found.values()} == {expected}, name


def test_plain_and_gzip_files_are_both_found(isolated):
    """Uncompressed IDX files are found as well as .gz ones."""
    _write_set(isolated / "plain", compress=False)
    found = locate("mnist", isolated / "plain")
    assert all(not path.name.endswith(".gz") for path in found.values())


def test_an_incomplete_folder_is_passed_over(isolated):
    """A folder missing one of the four files is not used."""
    _write_set(isolated / "given")
    (isolated / "given" / "t10k-labels-idx1-ubyte.gz").unlink()
    _write_set(isolated / "system" / "mnist")
    found = locate("mnist", isolated / "given")
    assert {path.parent for path in found.values()} == {isolated / "system" / "mnist"}


def test_missing_dataset_message_lists_folders_and_hint(isolated, monkeypatch):
    """Without files and downloads, the message says where files were looked for and how to
    get them."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as info:
        fetch("fashion-mnist", isolated / "given")
    message = str(info.value)
    assert str(isolated / "given") in message and str(isolated / "system") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "CNNKIT_OFFLINE" in message


def test_unknown_dataset_is_refused():
    """Only the registered data sets can be fetched; the message lists them."""
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist', 'cifar-10', got 'cifar10'"):
        fetch("cifar10")


def test_registry_digests_are_sha256_hex():
    """Every registered file has a 64-digit hex SHA-256 digest and an official .gz name;
    CIFAR-10's archive has the published digest."""
    for spec in IDX_DATASETS.values():
        for data_file in spec.files:
            assert len(data_file.sha256) == 64
            int(data_file.sha256, 16)
            assert data_file.name.endswith("-ubyte.gz")
    archive = registry.ARCHIVE_DATASETS["cifar-10"].archive
    assert archive.name == "cifar-10-binary.tar.gz"
    assert archive.sha256 == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"


# ---- the demo's data: installed, cached, downloaded, or synthetic with the reason -------------


def _serve_dataset(name, httpd, base, isolated, monkeypatch):
    """Point data set ``name``'s mirror at the local server, which serves a small IDX set."""
    folder = isolated / "source"
    _write_set(folder)
    files = []
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        httpd.files[f"/mirror/{path.name}"] = data
        files.append(registry.DataFile(path.name, hashlib.sha256(data).hexdigest()))
    spec = IDX_DATASETS[name]
    fake = registry.IdxDataset(name, *_ordered(files), mirrors=(f"{base}/mirror/",),
                               class_names=spec.class_names)
    monkeypatch.setitem(IDX_DATASETS, name, fake)


def _serve_fashion(httpd, base, isolated, monkeypatch):
    """Point Fashion-MNIST's mirror at the local server, which serves a small IDX set."""
    _serve_dataset("fashion-mnist", httpd, base, isolated, monkeypatch)


def test_demo_uses_installed_fashion_mnist(isolated):
    """Files in the system folder (the Debian package) are used, and the line says where."""
    _write_set(isolated / "system" / "fashion-mnist")
    dataset, line = demo_dataset()
    assert dataset == "fashion-mnist"
    assert line == f"data: Fashion-MNIST (found in {isolated / 'system' / 'fashion-mnist'})"


def test_demo_downloads_fashion_mnist_then_finds_it_cached(server, isolated, monkeypatch):
    """Not installed: the demo downloads Fashion-MNIST (verified) and uses the cache next time."""
    httpd, base = server
    _serve_fashion(httpd, base, isolated, monkeypatch)
    cache = isolated / "cache" / "cnnkit" / "fashion-mnist"
    assert demo_dataset() == ("fashion-mnist", f"data: Fashion-MNIST (downloaded into {cache})")
    assert len(list(cache.iterdir())) == 4
    httpd.files.clear()  # the server now answers 404: the cache must serve the second run
    assert demo_dataset() == ("fashion-mnist", f"data: Fashion-MNIST (found in {cache})")


def test_demo_falls_back_to_synthetic_digits_with_the_reason(isolated):
    """With the mirror on a closed port the demo trains on synthetic digits and says why."""
    dataset, line = demo_dataset(mirrors=["http://127.0.0.1:9/"], timeout=5)
    assert dataset == "synthetic-digits"
    assert line.startswith("data: synthetic digits (Fashion-MNIST is not installed and the "
                           "download failed: could not download http://127.0.0.1:9/")


def test_demo_offline_says_downloads_are_off(isolated, monkeypatch):
    """With CNNKIT_OFFLINE set nothing is downloaded, and the line names the variable."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    assert demo_dataset() == ("synthetic-digits", "data: synthetic digits (Fashion-MNIST is not "
                              "installed and downloads are off because CNNKIT_OFFLINE is set)")


# ---- training's default data set: the tutorial's MNIST when it can be had ---------------------


def test_auto_chooses_mnist_on_disk_and_says_where(isolated):
    """MNIST's files in the system folder: the choice is mnist, and the line names the folder."""
    _write_set(isolated / "system" / "mnist")
    choice = choose_dataset()
    assert (choice.name, choice.folder, choice.downloaded) == (
        "mnist", isolated / "system" / "mnist", False)
    assert choice.describe() == ("data set: mnist, as none was named (--dataset): MNIST, the "
                                 f"tutorial's data set, is in {isolated / 'system' / 'mnist'}")


def test_auto_prefers_the_data_dir(isolated, tmp_path):
    """--data-dir is searched first, as for a named data set."""
    _write_set(isolated / "system" / "mnist")
    _write_set(tmp_path / "mine")
    assert choose_dataset(data_dir=tmp_path / "mine").folder == tmp_path / "mine"


def test_auto_downloads_mnist_when_it_can(server, isolated, monkeypatch):
    """Not on disk but downloadable: MNIST is downloaded (verified) into the cache and chosen."""
    httpd, base = server
    _serve_dataset("mnist", httpd, base, isolated, monkeypatch)
    choice = choose_dataset()
    cache = isolated / "cache" / "cnnkit" / "mnist"
    assert (choice.name, choice.folder, choice.downloaded) == ("mnist", cache, True)
    assert choice.describe().endswith("was not on disk and has been downloaded into "
                                      f"{cache}")


def test_auto_offline_falls_back_to_synthetic_digits_and_says_why(isolated, monkeypatch):
    """With downloads off the choice is synthetic digits; the line names the folders searched
    and the variable that turned downloads off."""
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    choice = choose_dataset()
    folders = ", ".join(str(folder) for folder in search_folders("mnist"))
    assert choice.name == "synthetic-digits"
    assert choice.describe() == (
        "data set: synthetic-digits, as none was named (--dataset): MNIST, the tutorial's data "
        f"set, is not in {folders} and downloads are off because CNNKIT_OFFLINE is set; "
        "synthetic digits, which need no files, stand in for it")
    assert "downloading was not allowed" in choose_dataset(download=False).describe()


def test_auto_names_a_failed_download(isolated):
    """Without a reachable mirror the choice is synthetic digits, naming the failure."""
    failed = []
    choice = choose_dataset(mirrors=["http://127.0.0.1:9/"], timeout=5, report=failed.append)
    assert choice.name == "synthetic-digits"
    assert choice.obstacle.startswith("the download failed: could not download "
                                      "http://127.0.0.1:9/")
    assert failed and failed[-1] in choice.obstacle
