"""The command line's shell: the demo tour, usage errors as one line with status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnnkit.cli import main


def test_demo_tour_prints_every_section(capsys):
    """`cnnkit demo --no-train --no-figures` prints the five sections with the key numbers."""
    assert main(["demo", "--no-train", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "floor((32 + 2*2 - 5) / 1) + 1 = 32" in out
    assert "same: length  8  [5, 14, 16, 26, 24, 34, 19, 22]" in out
    assert "[7.0, 9.0, 8.0]" in out
    assert "[17. 19.]" in out and "[14. 16.]" in out
    assert "(5, 32, 32)" in out


def test_no_command_shows_help_and_status_2(capsys):
    """Without a command, cnnkit prints its help and exits with status 2."""
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["no-such-command"], ["demo", "--bogus"]])
def test_usage_errors_are_one_line(argv, capsys):
    """Unknown commands and options give one line on stderr and status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error: ") and err.count("\n") == 1


def test_module_entry_point_runs():
    """`python -m cnnkit --version` works as a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("cnnkit ")


def test_demo_subprocess_without_training(tmp_path):
    """`python -m cnnkit demo --no-train` runs as a real process and writes its figures."""
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "demo", "--no-train", "--out", str(tmp_path / "d")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "edges.png").is_file()
    assert (tmp_path / "d" / "blur.png").is_file()


def test_demo_refuses_non_empty_explicit_folder(tmp_path, capsys):
    """An explicit --out folder holding files is refused unless --overwrite."""
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--no-train", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"
