"""The run folder: file names, and a new run that finds the folder filled once it holds the lock."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cnnkit
from cnnkit.errors import AlreadyExists
from cnnkit.runfolder import RunFolder


def test_checkpoint_names_live_in_the_run_folder(tmp_path):
    """The run folder alone names the checkpoints; both are run files that --overwrite moves."""
    run = RunFolder(tmp_path)
    assert (run.checkpoint.name, run.best.name) == ("checkpoint.safetensors", "best.safetensors")
    assert run.is_own(run.checkpoint.name) and run.is_own(run.best.name)
    assert run.is_own(".checkpoint.safetensors.ab12_xyz.safetensors") is False
    (tmp_path / ".checkpoint.safetensors.ab12_xyz.safetensors").write_bytes(b"half")
    assert run._is_temporary(tmp_path / ".checkpoint.safetensors.ab12_xyz.safetensors")


def test_new_run_refuses_a_folder_filled_between_check_and_lock(tmp_path):
    """Regression: two runs started into one folder both passed check_new; the one that locks
    second must find the other's files and refuse, leaving them and no lock behind."""
    run = RunFolder(tmp_path / "run")
    run.check_new(overwrite=False)
    (tmp_path / "run").mkdir()
    run.checkpoint.write_bytes(b"the other run's checkpoint")
    with pytest.raises(AlreadyExists, match="filled by another run"):
        run.open(overwrite=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.safetensors"]
    assert run.checkpoint.read_bytes() == b"the other run's checkpoint"
    run.open(overwrite=False, resume=True)  # resuming that run is allowed
    run.unlock()


def test_every_file_a_command_writes_is_named_by_the_run_folder(tmp_path):
    """The names of what training and the other commands write come from the run folder, and
    each of them is a run file that --overwrite sets aside; the weight figures go stale."""
    run = RunFolder(tmp_path)
    own = [run.config, run.metrics, run.checkpoint, run.best, run.curves, run.report, run.onnx,
           run.weights_figure, run.confusion_figure("test"), run.explain_figure("cat")]
    assert [path.name for path in own] == [
        "config.json", "metrics.csv", "checkpoint.safetensors", "best.safetensors", "curves.png",
        "report.html", "model.onnx", "weights.png", "confusion-test.png", "explain-cat.png"]
    assert all(path.parent == tmp_path and run.is_own(path.name) for path in own)
    for path in own:
        path.write_bytes(b"")
    assert run.remove_weight_figures() == ["confusion-test.png", "explain-cat.png", "weights.png"]


#: Files that still spell a run file's name themselves; they are being rewritten (the trained
#: model's commands), and should ask RunFolder instead. The list may only shrink.


class _Spellings(ast.NodeVisitor):
    """String literals in code (not docstrings, not argparse help) that spell a run file."""

    def __init__(self, patterns: list[re.Pattern]):
        self.patterns = patterns
        self.found: list[tuple[int, str]] = []

    def visit_Expr(self, node: ast.Expr) -> None:
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.generic_visit(node)  # a bare string is a docstring

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg not in ("help", "description"):
            self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        # f"explain-{stem}.png" reads as "explain-{}.png"
        self._check(node, "".join(part.value if isinstance(part, ast.Constant) else "{}"
                                  for part in node.values))

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self._check(node, node.value)

    def _check(self, node: ast.AST, text: str) -> None:
        if any(pattern.search(text) for pattern in self.patterns):
            self.found.append((node.lineno, text))


def test_run_file_names_are_spelled_only_by_the_run_folder():
    """Outside cnnkit.runfolder no code spells a run file's name (docstrings and help texts may
    name them for the reader)."""
    run = RunFolder("")
    names = [run.config, run.metrics, run.checkpoint, run.best, run.legacy_checkpoint,
             run.legacy_best, run.curves, run.report, run.onnx, run.weights_figure,
             run.confusion_figure("{}"), run.explain_figure("{}")]
    patterns = [re.compile(r"(?<![\w.-])" + re.escape(path.name).replace(r"\{\}", r"\S*")
                           + r"(?!\w)") for path in names]
    package = Path(cnnkit.__file__).parent
    spelled = {}
    for path in sorted(package.rglob("*.py")):
        visitor = _Spellings(patterns)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        name = path.relative_to(package).as_posix()
        if visitor.found and name != "runfolder.py":
            spelled[name] = visitor.found
    assert not spelled, spelled


def _ended_pid() -> int:
    """The PID of a process that has already ended."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _leave_lock(run: RunFolder, **holder) -> None:
    import json
    import socket
    import time

    run.path.mkdir(parents=True, exist_ok=True)
    run.lock_file.write_text(json.dumps(
        {"pid": _ended_pid(), "host": socket.gethostname(), "started": time.time(), **holder}))


def test_a_restarted_attempt_takes_over_its_jobs_lock_even_from_another_machine(tmp_path):
    """A lock that names torchrun job J, held on another machine (whose process this one cannot
    see), is taken over by an attempt of J, with the files J wrote, and refused to anyone else."""
    from cnnkit.errors import RunBusy

    run = RunFolder(tmp_path / "run")
    _leave_lock(run, host="another-machine", pid=1, job="job-a")
    run.config.write_text("{}")  # what the failed attempt wrote
    for job in (None, "job-b"):
        with pytest.raises(RunBusy, match="another-machine"):
            run.check_new(overwrite=False, job=job)
    assert run.left_by_job("job-a") and not run.left_by_job("job-b")
    run.check_not_busy("job-a")
    run.open(overwrite=False, job="job-a")
    assert '"job": "job-a"' in run.lock_file.read_text() and run.config.exists()
    run.unlock()
    assert not run.lock_file.exists()


def test_a_live_lock_is_never_taken_over_by_another_job(tmp_path):
    """This machine's live process holds the lock for job J: job K is refused."""
    from cnnkit.errors import RunBusy

    first, second = RunFolder(tmp_path), RunFolder(tmp_path)
    first.lock(job="job-j")
    with pytest.raises(RunBusy):
        second.lock(job="job-k")
    first.unlock()


def test_a_failed_job_puts_back_the_run_it_was_replacing_when_it_ends(tmp_path):
    """--overwrite under torchrun: the first attempt sets the earlier run aside and dies; the
    restart keeps it aside (it must not be overwritten by the attempt's files); when the job
    fails for good, end_job puts it back and releases the lock; a job that wrote a checkpoint
    commits instead."""
    run = RunFolder(tmp_path / "run")
    _leave_lock(run)
    run.checkpoint.write_text("earlier run")
    run.lock_file.unlink()
    attempt = RunFolder(run.path)
    attempt.open(overwrite=True, job="job-a")
    run.config.write_text("first attempt")
    _leave_lock(run, job="job-a")  # the attempt died holding the lock
    restart = RunFolder(run.path)
    restart.open(overwrite=True, job="job-a")
    assert (run.previous / "checkpoint.safetensors").read_text() == "earlier run"
    _leave_lock(run, job="job-a")  # and so did the restart
    assert not run.end_job("job-b")
    assert run.end_job("job-a")
    assert run.checkpoint.read_text() == "earlier run"
    assert not run.previous.exists() and not run.config.exists() and not run.lock_file.exists()

    committed = RunFolder(run.path)
    committed.open(overwrite=True, job="job-c")
    committed.commit()
    assert not run.previous.exists() and not run.checkpoint.exists()
    committed.unlock()
