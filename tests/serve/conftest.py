"""A tiny run trained with the NumPy engine, the application around it, and a real server."""

from __future__ import annotations

import json
import threading

import pytest

from tests.specs import conv_pool_spec

pytest.importorskip("starlette", reason="cnnkit serve needs pip install 'cnnkit[serve]'")

TINY = conv_pool_spec("tiny", (4, 6))

#: A stand-in for the report that cnnkit report writes (serving it does not depend on its text).
REPORT_TEXT = "<!doctype html><title>report</title><h1 id='report-title'>Run report</h1>"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A run folder: the tiny CNN trained for one short epoch on synthetic digits (NumPy)."""
    from cnnkit.engines.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("serve")
    spec = folder / "tiny.json"
    spec.write_text(json.dumps(TINY))
    config = TrainConfig(dataset="synthetic-digits", arch=str(spec), epochs=1, train_limit=300,
                         val_size=60, engine="numpy")
    train(config, folder / "run", evaluate_test=False)
    (folder / "run" / "report.html").write_text(REPORT_TEXT)
    return folder / "run"


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
    import uvicorn

    from cnnkit.serve import bind
    from cnnkit.serve.app import LOOPBACK_HOSTS, create_app

    app = create_app(run_dir, allowed_hosts=LOOPBACK_HOSTS)

    listener = bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                          lifespan="off"))
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

