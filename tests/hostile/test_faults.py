"""A failing machine: a full disk, no memory, a bug; and files that follow the user's umask."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnkit._files import atomic_write
from cnnkit.cli import main
from cnnkit.engines.checkpoint import load_checkpoint
from tests.hostile.test_commands import QUICK
from tests.specs import TINY, write_spec


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing epoch 2's checkpoint: one line, exit 2, epoch 1's checkpoint intact,
    no temporary file left."""
    write_spec(TINY, tmp_path)
    real_fsync, calls = os.fsync, []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) > 5:  # config, metrics, then epoch 1: checkpoint, best, metrics
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    status = main(["train", "--out", str(tmp_path / "run"), "--arch", str(tmp_path / "tiny.json"),
                   *QUICK, "--epochs", "3"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    line = _one_error_line(capsys)
    assert status == 2
    assert line.startswith("cnnkit: error: the disk is full:") and "could not be written" in line
    assert load_checkpoint(tmp_path / "run").epoch == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True)
    return result.returncode == 0


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    """On a real filesystem that fills up during training, the run stops with one line, exit 2,
    and its last complete checkpoint loads."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "32m"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        write_spec(TINY, disk)
        process = subprocess.Popen(
            [sys.executable, "-m", "cnnkit", "train", "--out", "run", "--arch", "tiny.json",
             "--epochs", "200", "--train-limit", "256", "--val-size", "64", "--threads", "1",
             "--quiet"],
            cwd=disk, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 90
        while not (disk / "run" / "metrics.csv").exists() or load_epoch(disk) < 1:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        with open(disk / "filler", "wb") as filler:  # take every free byte
            try:
                while True:
                    filler.write(bytes(1 << 16))
                    filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        _, stderr = process.communicate(timeout=90)
        lines = stderr.decode().strip().splitlines()
        assert process.returncode == 2, stderr.decode()
        assert len(lines) == 1 and lines[0].startswith("cnnkit: error: the disk is full")
        (disk / "filler").unlink()
        assert load_checkpoint(disk / "run").epoch >= 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def load_epoch(disk: Path) -> int:
    """Completed epochs in the run's metrics (0 while the first is running)."""
    rows = (disk / "run" / "metrics.csv").read_text().strip().splitlines()
    return len(rows) - 1


def test_out_of_memory_is_one_line(monkeypatch, capsys):
    """A MemoryError anywhere becomes one line naming memory, exit 2."""
    import cnnkit.commands.summary as summary

    def exhausted(args):
        raise MemoryError

    monkeypatch.setattr(summary, "run", exhausted)
    monkeypatch.setattr("cnnkit.cli.COMMANDS", [_register_with(summary, exhausted)])
    assert main(["summary"]) == 2
    assert _one_error_line(capsys).startswith("cnnkit: error: out of memory")


def test_a_bug_shows_its_traceback_and_exit_1(monkeypatch, capsys):
    """An exception that is not a cnnkit error is a bug: traceback, a request to report, exit 1."""
    import cnnkit.commands.summary as summary

    def broken(args):
        return {}["missing"]

    monkeypatch.setattr("cnnkit.cli.COMMANDS", [_register_with(summary, broken)])
    assert main(["summary"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert "this is a bug in cnnkit" in err and "report it" in err


def _register_with(module, handler):
    def register(subparsers):
        module.register(subparsers)
        subparsers.choices["summary"].set_defaults(handler=handler)
    return register


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_written_files_follow_the_umask(tmp_path, mask):
    """New and replaced files get 0o666 less the umask, as open() gives, not mkstemp's 0600."""
    previous = os.umask(mask)
    try:
        path = tmp_path / "out.txt"
        atomic_write(path, lambda temporary: temporary.write_text("one"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
        path.chmod(0o600)
        atomic_write(path, lambda temporary: temporary.write_text("two"), overwrite=True)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    finally:
        os.umask(previous)
