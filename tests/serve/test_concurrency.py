"""Concurrent requests against a real server: all answered, each answer right, and refused or
failing requests in between take nothing down."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.error
import urllib.request

import numpy as np

from tests.serve.helpers import png_bytes, stroke_png


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_inspector_copies_give_the_same_answer_in_parallel(run_dir):
    """Eight threads inspecting different images at once get exactly the answers that one
    thread gets one after another (the model copies are not shared)."""
    from cnnkit.serve.network import Inspector

    inspector = Inspector(run_dir, replicas=2)
    rng = np.random.default_rng(0)
    images = [png_bytes(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(8)]
    alone = [inspector.inspect(image, method="saliency") for image in images]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda image: inspector.inspect(image, method="saliency"),
                                 images * 2))
    for expected, answer in zip(alone * 2, together):
        assert answer["top"] == expected["top"]
        assert answer["attribution"]["png"] == expected["attribution"]["png"]
        assert [m["maps"] for m in answer["layers"]] == [m["maps"] for m in expected["layers"]]


def test_concurrent_mixed_requests_are_all_answered(server_url):
    """Predictions, convolutions and bad requests sent at once from 8 threads: every good one
    is answered 200 with the same top class, every bad one 4xx, and the server still serves."""
    drawing = stroke_png()
    jobs = []
    for index in range(32):
        if index % 4 == 0:
            jobs.append(("/api/convolution", b"{bad json", "application/json", 400))
        elif index % 4 == 1:
            jobs.append(("/api/predict", b"not an image", "application/octet-stream", 400))
        elif index % 4 == 2:
            jobs.append(("/api/convolution", json.dumps({"padding": 1, "stride": 2}).encode(),
                         "application/json", 200))
        else:
            jobs.append(("/api/predict", drawing, "application/octet-stream", 200))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: _post(server_url + job[0], job[1], job[2]), jobs))
    assert [status for status, _ in answers] == [job[3] for job in jobs]
    tops = {answer["top"][0]["index"] for (status, answer), job in zip(answers, jobs)
            if status == 200 and job[0] == "/api/predict"}
    assert len(tops) == 1
    assert all("error" in answer for status, answer in answers if status == 400)
    with urllib.request.urlopen(server_url + "/api/options", timeout=30) as response:
        assert response.status == 200
