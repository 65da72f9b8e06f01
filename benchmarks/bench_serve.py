"""Load test of ``cnnkit serve``: the prediction endpoint under concurrent requests.

A real server (``python -m cnnkit serve RUN --port 0``, a child process) answers ``threads``
clients, each sending ``requests`` drawings (a 280×280 PNG stroke, as the page sends) to
``/api/predict`` one after another. The script counts failures (there must be none) and prints
the median and 95th-percentile latency and the throughput. First it times one update alone,
over HTTP and, as the reference measured in the same run, the same work in this process
(:meth:`cnnkit.serve.network.Inspector.inspect`, no HTTP), so the ratio is the cost of the web
layer.

    python benchmarks/bench_serve.py [RUN] [--threads 8] [--requests 200] [--method gradcam]

Without RUN, the tutorial CNN is trained for one short epoch on synthetic digits into a
temporary folder (the weights do not change the time of an update).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.serve.helpers import stroke_png


def _tutorial_run(folder: Path) -> Path:
    from cnnkit.engines.training import TrainConfig, train

    config = TrainConfig(dataset="synthetic-digits", arch="tutorial", epochs=1,
                         train_limit=256, val_size=64, engine="numpy")
    train(config, folder / "run", evaluate_test=False)
    return folder / "run"


@contextlib.contextmanager
def _server(run: Path) -> Iterator[str]:
    """The server in a child process; its address."""
    with subprocess.Popen([sys.executable, "-m", "cnnkit", "serve", str(run), "--port", "0"],
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        try:
            line = process.stdout.readline()
            if not line.startswith("cnnkit serve: http://"):
                raise SystemExit(f"the server did not start: {line!r}")
            yield line.split()[2]
        finally:
            process.terminate()
            process.wait()


def _post(address: tuple[str, int], path: str, body: bytes) -> tuple[int, float]:
    """Status and seconds of one POST on a fresh connection, as a browser's fetch."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(*address, timeout=120)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (default: a fresh tutorial CNN)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per thread")
    parser.add_argument("--single", type=int, default=30, help="single updates timed")
    parser.add_argument("--method", default="gradcam")
    args = parser.parse_args()

    from cnnkit.serve.network import Inspector

    with tempfile.TemporaryDirectory() as scratch:
        run = Path(args.run) if args.run else _tutorial_run(Path(scratch))
        body = stroke_png()
        path = f"/api/predict?method={args.method}"

        # Reference: the same update in this process, no HTTP.
        inspector = Inspector(run)
        inspector.inspect(body, method=args.method)
        local = []
        for _ in range(args.single):
            started = time.perf_counter()
            inspector.inspect(body, method=args.method)
            local.append(time.perf_counter() - started)

        with _server(run) as url:
            parts = urllib.parse.urlsplit(url)
            address = (parts.hostname, parts.port)
            _post(address, path, body)  # warm-up
            single = [_post(address, path, body)[1] for _ in range(args.single)]

            def client(_: int) -> list[tuple[int, float]]:
                return [_post(address, path, body) for _ in range(args.requests)]

            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                results = [r for batch in pool.map(client, range(args.threads)) for r in batch]
            elapsed = time.perf_counter() - started

    failures = sum(status != 200 for status, _ in results)
    latencies = [seconds for _, seconds in results]
    load = os.getloadavg()[0]
    print(f"run {run.name}, method {args.method}, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"single update, in process (reference): median {1e3 * statistics.median(local):.1f} ms")
    print(f"single update over HTTP:               median {1e3 * statistics.median(single):.1f} "
          f"ms (ratio to in process {statistics.median(single) / statistics.median(local):.2f})")
    print(f"{args.threads} threads x {args.requests} requests: {len(results)} sent, "
          f"{failures} failed")
    print(f"latency under load: median {1e3 * statistics.median(latencies):.1f} ms, "
          f"95th percentile {1e3 * _percentile(latencies, 0.95):.1f} ms; "
          f"{len(results) / elapsed:.1f} requests/s")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
