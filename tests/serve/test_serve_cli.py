"""`cnnkit serve` on the command line: a busy port, a missing run, Ctrl-C, a loud wide host."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from cnnkit.cli import main


def test_busy_port_is_one_line_and_status_2(capsys):
    """A port another program listens on gives one line on stderr and exit status 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is already in use" in err


def test_missing_run_folder_is_status_2(tmp_path, capsys):
    """A run folder that does not exist gives one line and exit status 2, and frees the port."""
    assert main(["serve", str(tmp_path / "no-run"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_folder_without_checkpoint_is_status_2(tmp_path, capsys):
    """A folder that holds no checkpoint is refused in one line."""
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_port_and_host_are_one_line(capsys):
    """A port above 65535 or a host that does not resolve is refused in one line."""
    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "--host", "no-such-host.invalid", "--port", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "65535" in lines[0] and "no-such-host.invalid" in lines[1]


@contextlib.contextmanager
def _serving(*arguments: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`cnnkit serve` in a child process and its address (the first line it prints); killed
    on the way out if a test left it running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen([sys.executable, "-m", "cnnkit", "serve", *arguments],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as process:
        try:
            line = process.stdout.readline()
            assert line.startswith("cnnkit serve: http://"), (line, process.stderr.read())
            yield process, line.split()[2]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_serves_a_run_until_ctrl_c(run_dir):
    """The server prints its address, answers, and stops cleanly on Ctrl-C (status 0)."""
    with _serving(str(run_dir), "--port", "0") as (process, url):
        with urllib.request.urlopen(url + "api/options", timeout=30) as response:
            assert json.load(response)["run"]["name"] == run_dir.name
        # Another host name (DNS rebinding) is refused.
        request = urllib.request.Request(url + "api/options", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        with refused.value as answer:
            assert answer.code == 400 and "evil.example" in json.load(answer)["error"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in process.stderr.read()


def test_a_host_beyond_loopback_is_warned_about():
    """--host 0.0.0.0 serves but prints a warning that other machines can reach it."""
    with _serving("--host", "0.0.0.0", "--port", "0") as (process, url):
        local = url.replace("0.0.0.0", "127.0.0.1")
        with urllib.request.urlopen(local + "api/options", timeout=30) as response:
            assert json.load(response)["run"] is None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "warning: listening on 0.0.0.0" in process.stderr.read()


def test_missing_extra_is_one_line(monkeypatch, capsys):
    """Without Starlette installed, the command says which extra to install, in one line."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "starlette" else real(name, *rest))
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'cnnkit[serve]'" in err
