"""A copy of the shared trained run, the application around it, and a real server."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="cnnkit serve needs pip install 'cnnkit[serve]'")

#: A stand-in for the report that cnnkit report writes (serving it does not depend on its text).
REPORT_TEXT = "<!doctype html><title>report</title><h1 id='report-title'>Run report</h1>"


@pytest.fixture(scope="session")
def run_dir(trained_run, tmp_path_factory):
    """The run served: a copy of the shared trained run with a stand-in report added."""
    run = Path(shutil.copytree(trained_run, tmp_path_factory.mktemp("serve") / "run"))
    (run / "report.html").write_text(REPORT_TEXT)
    return run


@pytest.fixture(scope="session")
def app(run_dir):
    from cnnkit.serve.app import create_app

    return create_app(run_dir)


@pytest.fixture()
def client(app):
    from starlette.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def server_url(run_dir):
    """The application as cnnkit serve runs it, served by uvicorn on a free localhost port in
    a thread."""
    from cnnkit.serve import bind
    from cnnkit.serve.app import LOOPBACK_HOSTS, create_app
    from cnnkit.serve.connections import make_server

    app = create_app(run_dir, allowed_hosts=LOOPBACK_HOSTS)

    listener = bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.02)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()

