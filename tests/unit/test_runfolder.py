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
    assert run.is_own(".checkpoint.safetensors.ab12_x.safetensors") is False
    (tmp_path / ".checkpoint.safetensors.ab12_x.safetensors").write_bytes(b"half")
    assert run._is_temporary(tmp_path / ".checkpoint.safetensors.ab12_x.safetensors")


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
