"""Hostile inputs and careless commands, each run as a user would run it.

Every case builds its input in a temporary folder, runs ``cnnkit`` in a subprocess under an
address-space limit and a time limit, and checks the outcome: exit status 2, one line on stderr
that names the file or argument, no traceback, and an earlier run's files left exactly as they
were.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data import write_idx
from cnnkit.engines.checkpoint import load_checkpoint
from tests.hostile.helpers import (
    GIB,
    NUMPY_MEMORY,
    assert_refused,
    run_cnnkit,
    snapshot,
)
from tests.specs import TINY, write_spec

#: A quick training run on the built-in synthetic digits.
QUICK = ("--epochs", "1", "--train-limit", "256", "--val-size", "64", "--threads", "1",
         "--quiet", "--no-report")


@pytest.fixture
def spec(tmp_path) -> Path:
    """The quickest network's spec file, for the runs these tests train."""
    return write_spec(TINY, tmp_path)


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    """A folder holding the files of an earlier run (and a note of the user's)."""
    run = tmp_path / "run"
    run.mkdir()
    for name, content in [("checkpoint.safetensors", b"weights of the earlier run"),
                          ("best.safetensors", b"best weights"), ("metrics.csv", b"epoch\n1\n"),
                          ("config.json", b"{}"), ("curves.png", b"png"),
                          ("notes.txt", b"the user's own notes")]:
        (run / name).write_bytes(content)
    return run


def _fashion_files(folder: Path, *, train_labels=None, images_payload=None) -> Path:
    """Four small Fashion-MNIST-format IDX files (60 training, 20 test images) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = (np.arange(60) % 10).astype(np.uint8) if train_labels is None else train_labels
    write_idx(folder / "train-labels-idx1-ubyte", np.asarray(labels))
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28), np.uint8))
    path = folder / "train-images-idx3-ubyte"
    if images_payload is None:
        write_idx(path, rng.integers(0, 256, (60, 28, 28), np.uint8))
    else:
        path.write_bytes(images_payload)
    return folder


def _gzip_bomb(header_shape: tuple[int, ...], expanded_bytes: int) -> bytes:
    """A gzip file of an IDX header followed by ``expanded_bytes`` zeros, built in chunks."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    header = bytes([0, 0, 0x08, len(header_shape)]) + struct.pack(
        f">{len(header_shape)}I", *header_shape)
    parts = [compressor.compress(header)]
    chunk = bytes(1 << 20)
    for _ in range(expanded_bytes >> 20):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return b"".join(parts)


# -- data loss: --overwrite with a mistake keeps the earlier run -------------------------------

@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--dataset", "fashion-mnst"], "dataset must be one of"),
        (["--arch", "missing.json"], "arch file missing.json does not exist"),
        (["--dataset", "mnist"], "dataset 'mnist' not found"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--val-size", "1.5"], "val_size as a fraction must be in [0, 1)"),
    ],
    ids=["dataset-typo", "missing-arch", "missing-data", "zero-epochs", "bad-val-size"],
)
def test_overwrite_with_a_mistake_keeps_the_earlier_run(tmp_path, earlier_run, arguments,
                                                        message):
    """A refused --overwrite run leaves every file of the earlier run as it was."""
    before = snapshot(earlier_run)
    outcome = run_cnnkit("train", "--out", "run", "--overwrite", *QUICK, *arguments,
                         cwd=tmp_path)
    assert_refused(outcome, message)
    assert snapshot(earlier_run) == before


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.r_[np.arange(59) % 10, 255].astype(np.uint8), "label 255 at position 59"),
        (np.r_[-1, np.arange(59) % 10].astype(np.int8), "label -1 at position 0"),
    ],
    ids=["label-255", "label-minus-1"],
)
def test_bad_labels_are_refused_before_training(tmp_path, earlier_run, spec, labels, message):
    """Labels outside the classes stop the run at loading time, naming the label and file."""
    data = _fashion_files(tmp_path / "data", train_labels=labels)
    before = snapshot(earlier_run)
    outcome = run_cnnkit("train", "--out", "run", "--overwrite", "--dataset", "fashion-mnist",
                         "--data-dir", str(data), "--arch", str(spec), *QUICK, cwd=tmp_path)
    assert_refused(outcome, message)
    assert "train-labels-idx1-ubyte" in outcome.stderr
    assert snapshot(earlier_run) == before


def test_huge_architecture_is_refused_with_the_number(tmp_path, earlier_run):
    """An architecture with 10⁹ channels is refused up front, with the bytes it would need."""
    huge = {"name": "huge", "layers": [
        {"type": "conv2d", "out_channels": 10**9, "kernel_size": 5},
        {"type": "flatten"}, {"type": "linear", "out_features": "num_classes"}]}
    (tmp_path / "huge.json").write_text(json.dumps(huge))
    before = snapshot(earlier_run)
    outcome = run_cnnkit("train", "--out", "run", "--overwrite", "--arch", "huge.json", *QUICK,
                         cwd=tmp_path)
    assert_refused(outcome, "would need about")
    assert "TiB" in outcome.stderr or "PiB" in outcome.stderr
    assert snapshot(earlier_run) == before


def test_successful_overwrite_replaces_only_the_runs_own_files(tmp_path, earlier_run, spec):
    """A successful --overwrite replaces the run's files and keeps the user's other files."""
    outcome = run_cnnkit("train", "--out", "run", "--overwrite", "--arch", str(spec), *QUICK,
                         cwd=tmp_path)
    assert outcome.status == 0, outcome.stderr
    assert (earlier_run / "notes.txt").read_bytes() == b"the user's own notes"
    assert (earlier_run / "checkpoint.safetensors").read_bytes() != b"weights of the earlier run"
    assert not (earlier_run / ".previous-run").exists()
    assert not (earlier_run / ".lock").exists()


# -- one run, one writer ----------------------------------------------------------------------

def test_second_writer_is_refused(tmp_path, spec):
    """While a live process holds a run's lock, another train into it is refused by name."""
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps(
            {"pid": holder.pid, "host": os.uname().nodename, "started": time.time()}))
        outcome = run_cnnkit("train", "--out", "run", "--arch", str(spec), *QUICK, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert_refused(outcome, f"is being written by process {holder.pid}")


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, spec):
    """A lock left by a process that has ended does not block a new run."""
    run = tmp_path / "run"
    run.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    (run / ".lock").write_text(json.dumps(
        {"pid": int(ended.stdout), "host": os.uname().nodename, "started": 0}))
    outcome = run_cnnkit("train", "--out", "run", "--arch", str(spec), *QUICK, cwd=tmp_path)
    assert outcome.status == 0, outcome.stderr
    assert not (run / ".lock").exists()


def test_two_runs_started_together_leave_one_winner(tmp_path, spec):
    """Two trains into one folder at once: exactly one succeeds, the other is refused."""
    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "cnnkit", "train", "--out", "run", "--arch", str(spec),
             *QUICK], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"})

    first, second = start(), start()
    results = [(p.wait(timeout=120), p.communicate()[1].decode()) for p in (first, second)]
    statuses = sorted(status for status, _ in results)
    assert statuses == [0, 2], results
    refusal = next(err for status, err in results if status == 2)
    # Which check refuses depends on timing: the other run's lock, its files, or its files
    # found under this run's own lock.
    assert any(reason in refusal for reason in (
        "is being written by process", "is not empty", "was filled by another run"))
    assert "Traceback" not in refusal


# -- hangs and unbounded memory ---------------------------------------------------------------

def test_gzip_bomb_stops_at_the_headers_size(tmp_path, spec):
    """A compressed IDX file that expands past its header's size is refused without expanding."""
    bomb = _gzip_bomb((60, 28, 28), 1 << 30)  # 1 GiB of zeros in about a megabyte
    data = _fashion_files(tmp_path / "data")
    (data / "train-images-idx3-ubyte").unlink()
    (data / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    outcome = run_cnnkit("train", "--out", "run", "--dataset", "fashion-mnist", "--data-dir",
                         str(data), "--arch", str(spec), *QUICK, cwd=tmp_path, timeout=30)
    assert_refused(outcome, "is longer than its header says")
    assert outcome.peak_bytes < 1 * GIB
    assert not (tmp_path / "run").exists()


def test_header_declaring_terabytes_is_refused(tmp_path):
    """An IDX header that declares more data than memory holds is refused with the number."""
    payload = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 28, 28)
    data = _fashion_files(tmp_path / "data", images_payload=gzip.compress(payload))
    outcome = run_cnnkit("data", "info", "fashion-mnist", "--data-dir", str(data), cwd=tmp_path,
                         memory=NUMPY_MEMORY + GIB)
    assert_refused(outcome, "holds an array of shape (2147483648, 28, 28), not 60x28x28")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("/dev/zero", "is a character device, not a regular file"),
        ("[" * 100_000 + "]" * 100_000, "is nested 100000 levels deep"),
        ("{\"layers\": [{\"type\": \"conv2d\"", "is not valid JSON"),
    ],
    ids=["dev-zero", "deep-nesting", "truncated-json"],
)
def test_hostile_spec_files_are_refused(tmp_path, content, message):
    """Spec files that are endless, nested without end or cut short are refused in one line."""
    if content.startswith("/dev/"):
        arch = content
    else:
        arch = str(tmp_path / "spec.json")
        Path(arch).write_text(content)
    outcome = run_cnnkit("summary", "--arch", arch, cwd=tmp_path, memory=NUMPY_MEMORY + GIB,
                         timeout=30)
    assert_refused(outcome, message)


def test_decompression_bomb_image_is_refused_by_predict(tmp_path, trained_run):
    """An image whose header declares more pixels than the limit is refused before decoding."""
    from PIL import Image

    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")  # 50 KB, 400 megapixels
    outcome = run_cnnkit("predict", str(trained_run), "bomb.png", cwd=tmp_path)
    assert_refused(outcome, "more than the limit")
    assert outcome.peak_bytes < 1 * GIB


# -- checkpoints that would have crashed later --------------------------------------------------

@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda info: info.update(std=0.0), "pixel std is 0.0; it must be positive"),
        (lambda info: info.update(class_names=["x"]), "'class_names' must list 10 names"),
        (lambda info: info.pop("arch"), "'model_info' has no 'arch'"),
        (lambda info: info["arch"]["layers"][0].update(out_channels=10**9),
         "would need about"),
    ],
    ids=["std-zero", "class-names", "no-arch", "huge-arch"],
)
def test_crafted_checkpoint_is_refused_by_evaluate(tmp_path, run_copy, change, message):
    """A checkpoint whose model description cannot work is refused, not used or crashed on."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = run_copy / "checkpoint.safetensors"
    with safe_open(str(path), framework="numpy") as handle:
        metadata = json.loads(handle.metadata()["cnnkit"])
    change(metadata["model_info"])
    save_file(load_file(str(path)), str(path), metadata={"cnnkit": json.dumps(metadata)})
    for engine in ("numpy", "torch"):
        outcome = run_cnnkit("evaluate", "run", "--engine", engine, cwd=tmp_path)
        assert_refused(outcome, message)


def _safetensors_header(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
         "header claims"),
        (_safetensors_header({"model.0.weight": {"dtype": "F32", "shape": [2**40, 2**20],
                                                 "data_offsets": [0, 8]}}, b"\0" * 8),
         "claims 4,611,686,018,427,387,904 bytes"),
        (_safetensors_header({"__metadata__": {"cnnkit": "[" * 100_000}}), "not JSON"),
        (b"PK\x03\x04" + bytes(200), "cnnkit convert-checkpoint"),
    ],
    ids=["random-bytes", "huge-tensor-claim", "deep-json", "old-pt"],
)
def test_damaged_safetensors_checkpoint_is_refused(tmp_path, content, message):
    """Random bytes, a header claiming huge tensors, deeply nested metadata and an earlier
    torch.save file under the new name: one line, within the NumPy memory bound."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(content)
    before = snapshot(run)
    for command in (("evaluate", "run", "--engine", "numpy"), ("summary", "--run", "run"),
                    ("train", "--resume", "run", "--engine", "numpy")):
        outcome = run_cnnkit(*command, cwd=tmp_path, memory=NUMPY_MEMORY)
        assert_refused(outcome, message)
    assert snapshot(run) == before


def test_truncated_checkpoint_is_refused_and_the_run_kept(tmp_path, run_copy):
    """A checkpoint cut short is refused in one line by evaluate and by resume."""
    epochs = str(load_checkpoint(run_copy).epoch + 1)
    path = run_copy / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    before = snapshot(run_copy)
    assert_refused(run_cnnkit("evaluate", "run", cwd=tmp_path), "truncated")
    assert_refused(run_cnnkit("train", "--resume", "run", "--epochs", epochs, cwd=tmp_path),
                   "truncated")
    assert snapshot(run_copy) == before


# -- signals ---------------------------------------------------------------------------------

def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["SIGTERM", "SIGKILL"])
def test_stopped_training_keeps_its_checkpoint_and_resumes(tmp_path, spec, kind):
    """SIGTERM (like Ctrl-C) and SIGKILL during training keep the last complete checkpoint,
    leave no temporary file behind, and the run resumes (a dead process's lock is taken over)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnkit", "train", "--out", "run", "--arch", str(spec),
         "--epochs", "50", "--train-limit", "512", "--val-size", "64", "--threads", "1",
         "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    _wait_for(tmp_path / "run" / "checkpoint.safetensors", process)
    process.send_signal(getattr(signal, kind))
    _, stderr = process.communicate(timeout=60)
    if kind == "SIGTERM":
        assert process.returncode == 143
        assert stderr.decode().strip().splitlines()[-1].startswith("cnnkit: terminated")
        assert _hidden_files(tmp_path / "run") == []  # no lock, no temporary checkpoint
    else:
        assert process.returncode == -signal.SIGKILL
    epoch = load_checkpoint(tmp_path / "run").epoch
    outcome = run_cnnkit("train", "--resume", "run", "--epochs", str(epoch + 1), "--threads",
                         "1", "--quiet", cwd=tmp_path)
    assert outcome.status == 0, outcome.stderr
    assert load_checkpoint(tmp_path / "run").epoch == epoch + 1
    assert _hidden_files(tmp_path / "run") == []  # a killed run's temporaries are cleared


def _hidden_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))
