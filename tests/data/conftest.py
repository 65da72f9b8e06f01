"""What the data tests share: a generated image folder, and a local HTTP server on 127.0.0.1
with the data set folders pointed into a temporary folder."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest
from PIL import Image

from cnnkit.data import registry


def make_folder(root, counts=(70, 60, 50), seed=0, split=""):
    """Classes a, b, c of small PNG and JPEG files of mixed sizes and modes under root/split."""
    rng = np.random.default_rng(seed)
    for label, count in enumerate(counts):
        folder = root / split / "abc"[label]
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rows, columns = rng.integers(12, 40, size=2)
            pixels = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if index % 3 == 0:
                image.convert("L").save(folder / f"{index:03d}.png")
            elif index % 3 == 1:
                image.save(folder / f"{index:03d}.jpg", quality=90)
            else:
                image.save(folder / f"{index:03d}.png")
    return root


@pytest.fixture
def image_root(tmp_path):
    """180 images in three classes."""
    return make_folder(tmp_path / "photos")


PAYLOAD = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd", mtime=0)
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves /good (the payload), /corrupt (altered bytes) and /dropped (cut half-way)."""

    def do_GET(self):
        if self.path.endswith("/good") or self.path.startswith("/mirror/"):
            body = self.server.files.get(self.path, PAYLOAD)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.endswith("/corrupt"):
            body = bytes(reversed(PAYLOAD))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.endswith("/dropped"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 in a thread; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Cache, environment and system folder all pointed into tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.delenv("CNNKIT_OFFLINE", raising=False)
    monkeypatch.setattr(registry, "_SYSTEM_FOLDER", tmp_path / "system")
    return tmp_path
