"""``cnnkit serve`` against slow, dead, greedy and hostile clients, all on 127.0.0.1.

Each server runs in a child process (its own file-descriptor limit, its own log), with the
header and body timeouts shortened to one second so that a slow client is dropped quickly;
the checks are on what the server answers and what its log holds, never on how fast it is.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="cnnkit serve needs pip install 'cnnkit[serve]'")

from tests.serve.helpers import png_bytes, stroke_png

# A server as `cnnkit serve` runs it (serve(), make_server), with short timeouts, under a
# file-descriptor limit (argv[1], 0: none) and an optional run folder (argv[2]).
_SERVER = r"""
import resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
from cnnkit.serve import bind, connections, serve
connections.HEADER_TIMEOUT = 1.0
connections.BODY_TIMEOUT = 1.0
from cnnkit.serve.app import LOOPBACK_HOSTS, create_app
app = create_app(sys.argv[2] if len(sys.argv) > 2 else None, allowed_hosts=LOOPBACK_HOSTS)
listener = bind("127.0.0.1", 0)
print(listener.getsockname()[1], flush=True)
serve(app, listener)
"""

#: Seconds a client waits for any one answer before the test fails (a hang, not a speed).
PATIENCE = 30


class Server:
    """A child process serving on 127.0.0.1; :meth:`stop` returns its log (stderr)."""

    def __init__(self, folder: Path, *, descriptors: int = 0, run: Path | None = None) -> None:
        self.log_path = folder / f"server-{os.getpid()}-{id(self)}.log"
        self.log = self.log_path.open("wb")
        arguments = [str(descriptors)] + ([str(run)] if run else [])
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, *arguments], stdout=subprocess.PIPE,
            stderr=self.log, env={**os.environ, "OMP_NUM_THREADS": "1"})
        line = self.process.stdout.readline()
        assert line.strip().isdigit(), self.stop()
        self.port = int(line)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE)

    def post(self, path: str, body: bytes) -> tuple[int, dict, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=PATIENCE) as response:
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), json.load(error)

    def peak_memory(self) -> int:
        """The server's largest resident set so far, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=PATIENCE)
        self.process.stdout.close()
        self.log.close()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path)
    yield running
    running.stop()


def _until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_slow_and_silent_clients_are_dropped_and_others_still_served(server):
    """A client that connects and says nothing, one whose headers never end, and one whose
    body never ends: the first two are closed, the third answered 408; meanwhile and afterwards
    the server answers others."""
    silent = server.connect()
    unfinished = server.connect()
    unfinished.sendall(b"GET /api/options HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    slow_body = server.connect()
    slow_body.sendall(b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
    status, _, _ = server.post("/api/convolution", b"{}")
    assert status == 200
    with silent, unfinished, slow_body:
        assert _until_closed(silent) == b""
        assert _until_closed(unfinished) == b""
        answer = _until_closed(slow_body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"did not arrive within 1 s" in answer
    assert server.post("/api/convolution", b"{}")[0] == 200
    log = server.stop()
    assert "Traceback" not in log, log
    assert log.count("were not complete after 1 s") == 1, log


def test_clients_leaving_mid_upload_are_one_line_each_kind(server):
    """Twenty clients that close their connection in the middle of an upload leave one line
    in the log (with the count of the others), no traceback, and the server serves on."""
    for _ in range(20):
        with server.connect() as client:
            client.sendall(b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 100000\r\n\r\n" + b"\x89PNG" + b"\0" * 2000)
    assert server.post("/api/upload", stroke_png(64))[0] == 200
    log = server.stop()
    assert "Traceback" not in log, log
    assert log.count("disconnected before its request body was complete") == 1, log


def test_running_out_of_file_descriptors_is_logged_once(tmp_path):
    """Under ``ulimit -n 64``, 100 connections opened at once: those beyond the limit are
    answered 503 or wait, the log says so in a line or two (not a traceback per attempt), and
    once they close the server answers again."""
    server = Server(tmp_path, descriptors=64)
    try:
        crowd = [server.connect() for _ in range(100)]
        for client in crowd:
            client.close()
        # The server may still be accepting and closing the crowd: a 503 asks to come back.
        for _ in range(PATIENCE * 5):
            status, _, answer = server.post("/api/convolution", b"{}")
            if status != 503:
                break
            time.sleep(0.2)
        assert status == 200, answer
    finally:
        log = server.stop()
    assert "Traceback" not in log, log[:3000]
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) <= 4, lines
    assert sum("out of file descriptors" in line for line in lines) <= 1, lines


def test_a_burst_of_large_uploads_stays_within_the_memory_budget(tmp_path):
    """Twelve uploads of a 4096x4096 PNG at once (each within the documented limits): every
    one is answered 200 or 503 with Retry-After, and the server's peak memory stays within its
    budget (512 MiB) above what it held before; it used to reach 2.5 GB for 24."""
    picture = np.full((4096, 4096, 3), 255, np.uint8)
    picture[1000:3000, 2000:2100] = 0
    data = png_bytes(picture)
    server = Server(tmp_path)
    try:
        server.post("/api/upload", stroke_png(64))
        before = server.peak_memory()
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: server.post("/api/upload", data), range(12)))
        peak = server.peak_memory()
    finally:
        log = server.stop()
    for status, headers, answer in answers:
        assert status in (200, 503), answer
        if status == 503:
            assert headers.get("retry-after") == "1" and "busy" in answer["error"]
    assert any(status == 200 for status, _, _ in answers)
    assert peak - before < 512 * 2**20, (before, peak)
    assert "Traceback" not in log, log


@pytest.fixture
def own_run(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_a_full_memory_budget_answers_503_with_retry_after(own_run):
    """While the memory budget is taken, a prediction or an upload is answered 503 with
    Retry-After and cnnkit's message; once it is free, the same request is answered."""
    from starlette.testclient import TestClient

    from cnnkit.serve.app import create_app

    app = create_app(own_run)
    gate = app.state.gate
    with TestClient(app) as client:
        with gate.hold(gate.budget, "another request"):
            for path in ("/api/predict", "/api/upload"):
                response = client.post(path, content=stroke_png())
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert "the server is busy" in response.json()["error"]
        assert client.post("/api/predict", content=stroke_png()).status_code == 200


def test_run_files_are_served_only_from_inside_the_run_folder(own_run, tmp_path):
    """/run/config.json linking to a file outside the run, and metrics.csv being a FIFO: both
    answered 404 at once, the outside file's text never sent; the report still served."""
    from starlette.testclient import TestClient

    from cnnkit.serve.app import create_app

    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "s3cr3t"}')
    (own_run / "config.json").unlink()
    (own_run / "config.json").symlink_to(secret)
    (own_run / "metrics.csv").unlink(missing_ok=True)
    os.mkfifo(own_run / "metrics.csv")
    (own_run / "report.html").write_text("<!doctype html><title>report</title>")
    with TestClient(create_app(own_run)) as client:
        linked = client.get("/run/config.json")
        assert linked.status_code == 404 and "s3cr3t" not in linked.text
        assert "link to a file outside the run folder" in linked.json()["error"]
        assert client.get("/run/metrics.csv").status_code == 404
        assert client.get("/run/report.html").status_code == 200


@pytest.mark.parametrize("name", ["<!--<script>", "</script><b>x</b>", "a&b</SCRIPT", "\u2028"])
def test_class_names_cannot_break_the_reports_script(name):
    """The report's inline JSON holds a class name that opens a comment or closes the script:
    the script element ends where the page ends it, and its data reads back exactly."""
    from cnnkit.report import _Page

    page = _Page("run <!--", ["zero", name]).render()
    start = page.index('<script type="application/json" id="report-data">')
    body = page[start:].split(">", 1)[1]
    data = body[:body.lower().index("</script")]
    assert "<!--" not in data and "<script" not in data.lower()
    assert json.loads(data)["classes"] == ["zero", name]
    assert "<!--" not in page.split("<script", 1)[0].split("</title>", 1)[1]
