"""The JSON API of cnnkit serve through Starlette's test client: every endpoint, every refusal.

Numbers are checked against cnnkit's own functions and, where they exist, against scipy, numpy
and PyTorch in float64 (CONVENTIONS.md tolerances).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit import convolve2d, correlate2d
from cnnkit.filters import KERNEL_NAMES, SAMPLE_NAMES, make_kernel, sample_image
from cnnkit.ops import PADDING_MODES, avg_pool2d, max_pool2d
from cnnkit.shapes import explain_output_size, output_shape
from tests.serve.conftest import REPORT_TEXT
from tests.serve.helpers import png_bytes, stroke_png
from tests.specs import SMALL, feature_map_shapes, shown_layers

RTOL = 1e-12


def convolution(client, **request):
    response = client.post("/api/convolution", json=request)
    assert response.status_code == 200, response.text
    return response.json()


def refused(response, status: int, *words: str) -> str:
    """The response is a JSON refusal with this status whose message holds every word."""
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    return message


# --- pages and files -------------------------------------------------------------------------


def test_page_and_its_static_files_are_served(client):
    """/ is the page; the scripts and style sheets it names are served from the package (the
    feature-map ones are those the report inlines)."""
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("app.js", "app.css", "featuremaps.js", "featuremaps.css"):
        assert f"/static/{name}" in page.text
        assert client.get(f"/static/{name}").status_code == 200


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/errors.py",
    "/static//etc/passwd", "/static/nothing.js", "/run/checkpoint.safetensors", "/run/..%2fconfig.json",
    "/run/%2fetc%2fpasswd", "/etc/passwd", "/../../etc/passwd",
])
def test_no_path_outside_the_served_files_is_read(client, path):
    """Traversal and names outside the package's static files and the run's files give 404."""
    response = client.get(path)
    assert response.status_code == 404
    assert "root:" not in response.text and "import" not in response.text


def test_the_runs_report_is_served(client):
    """/run/report.html is the run's own report file."""
    response = client.get("/run/report.html")
    assert response.status_code == 200 and response.text == REPORT_TEXT


def test_without_a_run_the_network_and_report_are_refused():
    """With no run folder, predict and the run's files answer 404 with a message saying so."""
    from starlette.testclient import TestClient

    from cnnkit.serve.app import create_app

    with TestClient(create_app()) as bare:
        assert bare.get("/api/options").json()["run"] is None
        refused(bare.post("/api/predict", content=stroke_png()), 404, "cnnkit serve RUN")
        refused(bare.post("/api/featuremap?layer=1&channel=0", content=stroke_png()), 404,
                "cnnkit serve RUN")
        refused(bare.get("/run/report.html"), 404, "no run is loaded")


def test_a_run_without_a_report_says_how_to_write_one(run_dir, tmp_path):
    """A run folder without report.html: the page is told so, and the file answers 404."""
    import shutil

    from starlette.testclient import TestClient

    from cnnkit.serve.app import create_app

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    with TestClient(create_app(copy)) as bare:
        assert bare.get("/api/options").json()["run"]["report"] is None
        refused(bare.get("/run/report.html"), 404, "cnnkit report")


def test_a_missing_run_folder_is_refused_before_serving(tmp_path):
    """create_app refuses a missing folder, a file and a folder without checkpoint."""
    from cnnkit.errors import CnnkitError, NotAFolder, NotFound
    from cnnkit.serve.app import create_app

    with pytest.raises(NotFound, match="does not exist"):
        create_app(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAFolder):
        create_app(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError):
        create_app(tmp_path / "empty")


def test_options_list_cnnkits_own_choices(client, run_dir):
    """/api/options names cnnkit's samples, kernels and padding modes, and the run's model."""
    options = client.get("/api/options").json()
    assert options["samples"] == list(SAMPLE_NAMES)
    assert list(options["kernels"]) == list(KERNEL_NAMES)
    assert options["padding_modes"] == list(PADDING_MODES)
    assert options["run"]["name"] == run_dir.name
    assert options["run"]["report"] == "/run/report.html"
    assert options["run"]["shown_layers"] == shown_layers(SMALL)


# --- the convolution playground --------------------------------------------------------------


def test_tutorial_2d_example_element_by_element(client):
    """The textbook's 2-D example (convolution, padding 1): every element's written-out sum is
    the textbook's number and cnnkit's."""
    X = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
    W = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
    expected = [[11, 25, 32, 13], [19, 25, 24, 13], [13, 28, 25, 17], [11, 17, 14, 9]]
    upload = client.post("/api/upload", content=png_bytes(np.array(X, np.uint8))).json()
    scale = 255.0  # the upload is read as pixels / 255
    for row in range(4):
        for column in range(4):
            result = convolution(client, image={"upload": upload["id"]},
                                 kernel={"weights": W}, operation="convolve", padding=1,
                                 pixel=[row, column])
            pixel = result["pixel"]
            assert pixel["sum"] * scale == pytest.approx(expected[row][column], rel=1e-9)
            assert pixel["value"] == pytest.approx(pixel["sum"], rel=RTOL)
            assert result["kernel"]["applied"] == np.flip(W).tolist()


@pytest.mark.parametrize("operation,reference", [("correlate", scipy.signal.correlate2d),
                                                 ("convolve", scipy.signal.convolve2d)])
@pytest.mark.parametrize("padding", ["full", "same", "valid"])
def test_elements_match_scipy(client, operation, reference, padding):
    """Each explained element of a 5x4 kernel equals scipy.signal's result at that position."""
    kernel = np.arange(20.0).reshape(5, 4) - 7
    image = sample_image("circles", 12)
    expected = reference(image, kernel, mode=padding)
    result = convolution(client, image={"sample": "circles", "size": 12},
                         kernel={"weights": kernel.tolist()}, operation=operation,
                         padding=padding)
    assert result["output"]["shape"] == list(expected.shape)
    for pixel in [(0, 0), (expected.shape[0] - 1, expected.shape[1] - 1), (3, 2)]:
        if pixel[0] >= expected.shape[0] or pixel[1] >= expected.shape[1]:
            continue
        explained = convolution(client, image={"sample": "circles", "size": 12},
                                kernel={"weights": kernel.tolist()}, operation=operation,
                                padding=padding, pixel=list(pixel))["pixel"]
        assert explained["sum"] == pytest.approx(expected[pixel], rel=RTOL, abs=1e-12)


@settings(max_examples=30)
@given(size=st.integers(6, 20), kernel_rows=st.integers(1, 5), kernel_columns=st.integers(1, 5),
       operation=st.sampled_from(["correlate", "convolve"]),
       padding=st.one_of(st.sampled_from(["full", "same", "valid"]), st.integers(0, 3)),
       padding_mode=st.sampled_from(PADDING_MODES), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), sample=st.sampled_from(SAMPLE_NAMES),
       where=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_any_element_is_its_written_out_sum(app, size, kernel_rows, kernel_columns, operation,
                                            padding, padding_mode, stride, dilation, sample,
                                            where):
    """For random settings, the shown window times the shown kernel sums to cnnkit's output at
    that element; the size and formula are cnnkit's, or the request is refused with cnnkit's
    message."""
    from starlette.testclient import TestClient

    from cnnkit.errors import CnnkitError

    kernel = np.random.default_rng(size).normal(size=(kernel_rows, kernel_columns))
    function = correlate2d if operation == "correlate" else convolve2d
    image = sample_image(sample, size)
    request = {"image": {"sample": sample, "size": size}, "kernel": {"weights": kernel.tolist()},
               "operation": operation, "padding": padding, "padding_mode": padding_mode,
               "stride": stride, "dilation": dilation}
    with TestClient(app) as client:
        try:
            expected = function(image, kernel, padding, padding_mode=padding_mode,
                                stride=stride, dilation=dilation)
        except CnnkitError as exc:
            refused(client.post("/api/convolution", json=request), 400, str(exc))
            return
        pixel = [min(int(w * n), n - 1) for w, n in zip(where, expected.shape)]
        result = convolution(client, **request, pixel=pixel)
    assert result["output"]["shape"] == list(expected.shape)
    explained = result["pixel"]
    assert explained["value"] == expected[tuple(pixel)]
    assert explained["sum"] == pytest.approx(explained["value"], rel=1e-9, abs=1e-9)
    products = np.array(explained["window"]) * np.array(explained["kernel"])
    assert np.allclose(products, explained["products"], rtol=1e-9, atol=1e-9)
    if isinstance(padding, int):
        assert result["formula"][0] == explain_output_size(size, kernel_rows, stride, padding,
                                                           dilation)


def test_named_kernel_with_parameters_and_the_formula(client):
    """A named kernel with a parameter is cnnkit's; the formula has the user's numbers in."""
    result = convolution(client, image={"sample": "grid", "size": 32},
                         kernel={"name": "gaussian", "params": {"sigma": 1, "radius": 2}},
                         padding=2, stride=2)
    assert np.allclose(result["kernel"]["weights"], make_kernel("gaussian", sigma=1, radius=2))
    assert result["output"]["shape"] == [16, 16]
    assert result["formula"] == ["floor((32 + 2*2 - 5) / 2) + 1 = 16"] * 2


@pytest.mark.parametrize("request_body,status,words", [
    ({"padding": "same", "stride": 2}, 400, ["only defined for stride 1"]),
    ({"padding": "valid", "image": {"sample": "grid", "size": 4}, "kernel": {"name": "box", "params": {"size": 7}}}, 400, ["does not fit"]),
    ({"padding": 9, "padding_mode": "reflect", "image": {"sample": "grid", "size": 4}}, 400, ["reflect"]),
    ({"padding": -1}, 400, ["padding"]),
    ({"padding": "around"}, 400, ["'valid', 'same', 'full'"]),
    ({"padding": [1, 2, 3]}, 400, ["padding"]),
    ({"padding": 1000}, 413, ["at most 64"]),
    ({"stride": 0}, 400, ["stride"]),
    ({"stride": 1.5}, 400, ["stride must be an integer"]),
    ({"dilation": "2"}, 400, ["dilation"]),
    ({"operation": "multiply"}, 400, ["operation"]),
    ({"padding_mode": "mirror"}, 400, ["padding_mode"]),
    ({"image": {"sample": "lena"}}, 400, ["image sample"]),
    ({"image": {"sample": "grid", "size": 100000}}, 413, ["size"]),
    ({"image": "/etc/passwd"}, 400, ["image must be an object"]),
    ({"image": {"upload": "u999999"}}, 404, ["upload it again"]),
    ({"kernel": {"weights": "/etc/passwd.npy"}}, 400, ["list of rows"]),
    ({"kernel": {"name": "/etc/passwd.npy"}}, 400, ["kernel name"]),
    ({"kernel": {"weights": [[1, 2], [3]]}}, 400, ["rectangular"]),
    ({"kernel": {"weights": [[1, "x"]]}}, 400, ["finite numbers"]),
    ({"kernel": {"weights": [[1, None]]}}, 400, ["finite numbers"]),
    ({"kernel": {"weights": [[0.0] * 40]}}, 413, ["at most 15"]),
    ({"kernel": {"name": "gaussian", "params": {"sigma": 50}}}, 413, ["larger than"]),
    ({"kernel": {"name": "box", "params": {"size": 999999999}}}, 413, ["at most 15"]),
    ({"kernel": {"name": "sobel-x", "params": {"colour": 1}}}, 400, ["takes size"]),
    ({"pixel": [500, 0]}, 400, ["outside the output"]),
    ({"pixel": [0]}, 400, ["pixel"]),
])
def test_convolution_refusals(client, request_body, status, words):
    """Invalid settings get a 4xx JSON answer with cnnkit's explanation."""
    refused(client.post("/api/convolution", json=request_body), status, *words)


@pytest.mark.parametrize("body,words", [
    (b"{not json", ["not valid JSON"]),
    (b"[1, 2]", ["JSON object"]),
    (b"\xff\xfe", ["not valid JSON"]),
    (b"", ["empty body"]),
])
def test_bad_json_is_refused(client, body, words):
    """A body that is not a JSON object is refused with a message, not a traceback."""
    refused(client.post("/api/convolution", content=body), 400, *words)


def test_oversize_json_is_refused(client):
    """A JSON body over the limit is refused (413) before it is parsed."""
    from cnnkit.serve.app import MAX_JSON_BYTES

    refused(client.post("/api/convolution", content=b" " * (MAX_JSON_BYTES + 1)), 413, "limit")


def test_wrong_method_and_unknown_endpoint(client):
    """GET on a POST endpoint is 405 and an unknown API path 404, both as JSON."""
    assert client.get("/api/convolution").status_code == 405
    assert client.get("/api/convolution").json()["error"]
    assert client.post("/api/nothing", json={}).status_code == 404


def test_a_failing_request_does_not_stop_the_server(app, monkeypatch):
    """An unexpected exception is a 500 JSON answer, and the next request is served."""
    from starlette.testclient import TestClient

    from cnnkit.serve import playground

    def broken(request, uploads):
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        monkeypatch.setattr(playground, "convolution", broken)
        refused(client.post("/api/convolution", json={}), 500, "internal error")
        monkeypatch.undo()
        assert client.post("/api/convolution", json={}).status_code == 200


# --- 1-D, several channels, pooling ----------------------------------------------------------


def test_signal1d_is_the_tutorials_example(client):
    """The 1-D view of the tutorial's x and w: 'same' is the textbook's answer, 'full' and
    'valid' are numpy.convolve's, and each element's sum is its output."""
    x, w = [1, 3, 2, 4, 5, 6, 1, 3], [1, 0, 3, 1, 2]
    result = client.post("/api/signal1d", json={"operation": "convolve"}).json()
    modes = {mode["padding"]: mode for mode in result["modes"]}
    assert modes["same"]["output"] == [5, 14, 16, 26, 24, 34, 19, 22]
    assert modes["full"]["output"] == np.convolve(x, w, "full").tolist()
    assert modes["valid"]["output"] == np.convolve(x, w, "valid").tolist()
    assert modes["same"]["formula"] == "floor((8 + 2*2 - 5) / 1) + 1 = 8"
    for mode in modes.values():
        for element, value in zip(mode["elements"], mode["output"]):
            assert element["sum"] == pytest.approx(value, rel=RTOL)


def test_signal1d_stride_and_correlation(client):
    """The textbook's strided example (padding 0, stride 2) and correlation against numpy."""
    x, w = [3, 2, 1, 7, 1, 2, 5, 4], [0.5, 0.75, 1.0, 0.25]
    result = client.post("/api/signal1d", json={"x": x, "kernel": w, "operation": "convolve",
                                                "paddings": [0], "stride": 2}).json()
    assert result["modes"][0]["output"] == [7, 9, 8]
    result = client.post("/api/signal1d", json={"x": x, "kernel": w, "paddings": ["valid"]})
    assert result.json()["modes"][0]["output"] == pytest.approx(np.correlate(x, w, "valid"))


@pytest.mark.parametrize("request_body,words", [
    ({"x": []}, ["non-empty list"]),
    ({"x": [1, "a"]}, ["finite numbers"]),
    ({"x": [1] * 65}, ["at most 64"]),
    ({"kernel": [1] * 9, "paddings": ["valid"]}, ["does not fit"]),
    ({"paddings": ["same"], "stride": 2}, ["stride 1"]),
    ({"paddings": "same"}, ["list of 1 to 8"]),
])
def test_signal1d_refusals(client, request_body, words):
    """Bad 1-D requests are refused with cnnkit's message."""
    response = client.post("/api/signal1d", json=request_body)
    assert response.status_code in (400, 413)
    for word in words:
        assert word in response.json()["error"]


def test_multichannel_is_conv2d_as_per_channel_sums_plus_bias(client):
    """Given weights and bias, the output shape is conv2d's and every filter's per-channel sums
    plus bias equal the layer's output (float64 rounding only)."""
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(3, 3, 5, 5)), rng.normal(size=3)
    result = client.post("/api/multichannel", json={
        "channels": ["grid", "step", "checkerboard"], "size": 20, "weight": weight.tolist(),
        "bias": bias.tolist(), "padding": 1, "stride": 2}).json()
    assert result["input_shape"] == [3, 20, 20]
    assert result["output_shape"] == [3, *output_shape((20, 20), 5, 2, 1)]
    assert [f["bias"] for f in result["filters"]] == pytest.approx(bias.tolist())
    for block, kernels in zip(result["filters"], weight):
        assert np.allclose(block["weights"], kernels, rtol=1e-9)
        assert block["difference"] < 1e-12
        assert len(block["parts"]) == 3


@pytest.mark.parametrize("request_body,words", [
    ({"channels": ["grid", "grid"]}, ["three samples"]),
    ({"filters": 50}, ["at most 8"]),
    ({"weight": [[[[1.0]]]]}, ["3 kernels"]),
    ({"weight": [[[[1.0]]] * 3], "bias": [1.0, 2.0]}, ["one number per filter"]),
    ({"kernel_size": 40}, ["at most 15"]),
])
def test_multichannel_refusals(client, request_body, words):
    """Bad multi-channel requests are refused with a message."""
    response = client.post("/api/multichannel", json=request_body)
    assert response.status_code in (400, 413)
    for word in words:
        assert word in response.json()["error"]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel_size,stride,padding,ceil_mode,include_pad", [
    (2, None, 0, False, True), (3, 2, 1, True, True), (3, 2, 1, True, False), (2, 3, 1, False, True),
])
def test_pooling_matches_torch(client, kind, kernel_size, stride, padding, ceil_mode, include_pad):
    """Pooling's shape is PyTorch's, every explained window gives PyTorch's value (max: the
    chosen element; average: sum / divisor), and the formula is cnnkit's."""
    import torch.nn.functional as functional

    image = sample_image("gradient", 11)
    tensor = torch.from_numpy(image)[None, None]
    if kind == "max":
        expected = functional.max_pool2d(tensor, kernel_size, stride, padding, ceil_mode=ceil_mode)
    else:
        expected = functional.avg_pool2d(tensor, kernel_size, stride, padding, ceil_mode=ceil_mode,
                                         count_include_pad=include_pad)
    expected = expected[0, 0].numpy()
    request = {"image": {"sample": "gradient", "size": 11}, "kind": kind,
               "kernel_size": kernel_size, "stride": stride, "padding": padding,
               "ceil_mode": ceil_mode, "count_include_pad": include_pad}
    result = client.post("/api/pooling", json=request).json()
    assert result["output"]["shape"] == list(expected.shape)
    assert result["formula"][0] == explain_output_size(11, kernel_size, stride or kernel_size,
                                                       padding, 1, ceil_mode)
    for pixel in np.ndindex(*expected.shape):
        explained = client.post("/api/pooling", json={**request, "pixel": list(pixel)}).json()
        explained = explained["pixel"]
        assert explained["value"] == pytest.approx(expected[pixel], rel=1e-10)
        if kind == "max":
            assert image[tuple(explained["chosen"])] == explained["value"]
        else:
            assert explained["sum"] / explained["divisor"] == pytest.approx(expected[pixel],
                                                                             rel=1e-10)


def test_pooling_agrees_with_cnnkit(client):
    """The pooled values are cnnkit's max_pool2d and avg_pool2d at each explained element."""
    image = sample_image("circles", 9)[None]
    for kind, function in (("max", max_pool2d), ("avg", avg_pool2d)):
        expected = function(image, 3, 2, 1, ceil_mode=True)[0]
        for pixel in [(0, 0), (expected.shape[0] - 1, expected.shape[1] - 1)]:
            explained = client.post("/api/pooling", json={
                "image": {"sample": "circles", "size": 9}, "kind": kind, "kernel_size": 3,
                "stride": 2, "padding": 1, "ceil_mode": True, "pixel": list(pixel)}).json()
            assert explained["pixel"]["value"] == expected[pixel]


@pytest.mark.parametrize("request_body,words", [
    ({"kernel_size": 2, "padding": 2}, ["at most half"]),
    ({"kind": "median"}, ["kind"]),
    ({"ceil_mode": "yes"}, ["true or false"]),
    ({"kernel_size": 0}, ["kernel_size"]),
    ({"image": {"sample": "grid", "size": 4}, "kernel_size": 9}, ["does not fit"]),
])
def test_pooling_refusals(client, request_body, words):
    """Bad pooling requests are refused with cnnkit's message."""
    response = client.post("/api/pooling", json=request_body)
    assert response.status_code == 400
    for word in words:
        assert word in response.json()["error"]


# --- uploads ---------------------------------------------------------------------------------


def test_upload_is_read_as_cnnkit_reads_images(client, tmp_path):
    """An uploaded colour image is the playground's gray image, as cnnkit.imageio reads it."""
    from cnnkit.imageio import read_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = png_bytes(pixels)
    (tmp_path / "image.png").write_bytes(data)
    answer = client.post("/api/upload", content=data).json()
    assert answer["shape"] == [20, 30]
    expected = correlate2d(read_image(tmp_path / "image.png", color="gray"), make_kernel("sobel-y"),
                           "same")
    result = convolution(client, image={"upload": answer["id"]}, kernel={"name": "sobel-y"},
                         padding="same", pixel=[5, 7])
    assert result["pixel"]["value"] == pytest.approx(expected[5, 7], rel=RTOL)


def test_large_upload_is_shrunk_to_the_playground(client):
    """An image larger than the playground's side is shrunk, keeping its aspect, with a note."""
    answer = client.post("/api/upload", content=png_bytes(np.zeros((300, 600), np.uint8))).json()
    assert answer["shape"] == [128, 256] and "shrunk" in answer["notes"][0]


def test_upload_refusals(client):
    """Too many bytes, too many pixels and a non-image are refused with 4xx and a message."""
    from PIL import Image

    from cnnkit.serve.network import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS

    refused(client.post("/api/upload", content=b"\0" * (MAX_UPLOAD_BYTES + 1)), 413, "limit")
    side = int(MAX_UPLOAD_PIXELS ** 0.5) + 1
    bomb = png_bytes(Image.new("1", (side, side)))
    assert len(bomb) < MAX_UPLOAD_BYTES
    refused(client.post("/api/upload", content=bomb), 413, "pixels")
    refused(client.post("/api/predict", content=bomb), 413, "pixels")
    message = refused(client.post("/api/upload", content=b"GIF89a not really"), 400,
                      "not an image")
    assert message.startswith("the upload is not an image") and "/" not in message.split("(")[0]
    truncated = png_bytes(np.zeros((64, 64), np.uint8))[:60]
    refused(client.post("/api/predict", content=truncated), 400, "the upload")
    refused(client.post("/api/upload", content=b""), 400, "empty")


# --- inside the network ----------------------------------------------------------------------


def test_predict_matches_cnnkit_predict(client, run_dir, tmp_path):
    """The drawn image's top classes and probabilities are cnnkit predict's for the same file;
    the feature maps are the shown layers', and the input notes say what was done."""
    from cnnkit.evaluation import predict

    data = stroke_png()
    (tmp_path / "stroke.png").write_bytes(data)
    expected = predict(run_dir, [tmp_path / "stroke.png"], top_k=3, engine="numpy")[0]
    result = client.post("/api/predict?top=3", content=data).json()
    assert [entry["index"] for entry in result["top"]] == expected.indices
    assert [entry["probability"] for entry in result["top"]] == pytest.approx(
        expected.probabilities, abs=1e-6)
    shapes = feature_map_shapes(SMALL, (1, 28, 28))
    assert [layer["index"] for layer in result["layers"]] == shown_layers(SMALL)
    assert [layer["shape"] for layer in result["layers"]] == [
        list(shapes[index]) for index in shown_layers(SMALL)]
    assert any("inverted" in note for note in result["image"]["notes"])
    assert any("resized from 280×280 to 28×28" in note for note in result["image"]["notes"])
    assert result["image"]["png"].startswith("data:image/png;base64,")


def test_predict_warns_as_cnnkit_predict_does(client, run_dir, tmp_path):
    """image.warnings holds cnnkit predict's warnings for the same file: the default is
    'auto' for a digit run too, and invert=never leaves the drawing's light border, named."""
    from cnnkit.evaluation import predict

    data = stroke_png()
    (tmp_path / "stroke.png").write_bytes(data)
    default = client.post("/api/predict", content=data).json()["image"]
    for invert in ("auto", "never"):
        expected = predict(run_dir, [tmp_path / "stroke.png"], engine="numpy", invert=invert)[0]
        result = client.post(f"/api/predict?invert={invert}", content=data).json()["image"]
        assert result["warnings"] == expected.warnings
        if invert == "auto":
            assert default == result
    assert any("its border is light" in warning for warning in expected.warnings)


def test_predict_can_show_every_layer(client):
    """layers=all adds the convolutions that an activation follows: every layer with maps."""
    result = client.post("/api/predict?layers=all", content=stroke_png()).json()
    with_maps = list(feature_map_shapes(SMALL, (1, 28, 28)))
    assert [layer["index"] for layer in result["layers"]] == with_maps
    assert [layer["kind"] for layer in result["layers"]] == [
        SMALL["layers"][index]["type"] for index in with_maps]


@pytest.mark.parametrize("method", ["saliency", "gradcam", "integrated-gradients"])
def test_predict_attribution_is_cnnkits(client, run_dir, method):
    """Each attribution method answers a picture of the model's input size."""
    import base64
    import io

    from PIL import Image

    result = client.post(f"/api/predict?method={method}", content=stroke_png()).json()
    assert result["attribution"]["method"] == method
    data = base64.b64decode(result["attribution"]["png"].split(",", 1)[1])
    assert Image.open(io.BytesIO(data)).size == (28, 28)


def test_predict_answers_each_map_labelled(client):
    """Each shown layer has its readable name and one picture per map, of the map's size; the
    attribution says whether it is flat."""
    import base64
    import io

    from PIL import Image

    result = client.post("/api/predict", content=stroke_png()).json()
    shapes = feature_map_shapes(SMALL, (1, 28, 28))
    assert [layer["name"] for layer in result["layers"]] == ["relu1", "pool1", "relu2", "pool2"]
    for layer in result["layers"]:
        channels, rows, columns = shapes[layer["index"]]
        assert len(layer["maps"]) == channels
        picture = Image.open(io.BytesIO(base64.b64decode(layer["maps"][-1].split(",", 1)[1])))
        assert picture.size == (columns, rows)
    assert "flat" in result["attribution"]


def _stroke_model(run_dir, tmp_path):
    """The run's model and the stroke as its normalised input, prepared as the server does."""
    from cnnkit.model import TrainedModel

    (tmp_path / "stroke.png").write_bytes(stroke_png())
    model = TrainedModel.load(run_dir, engine="numpy")
    return model, model.normalise(model.prepare(tmp_path / "stroke.png").pixels[np.newaxis])


def test_featuremap_shows_a_convolutions_kernels_and_pixel(client, run_dir, tmp_path):
    """One conv2 map of the stroke: the filter's kernels are the checkpoint's, its inputs the
    pool1 maps, and a pixel's channel sums plus bias equal the network's value there, which is
    torch.nn.functional.conv2d's on the same input."""
    model, inputs = _stroke_model(run_dir, tmp_path)
    result = client.post("/api/featuremap?layer=3&channel=2&row=0&column=6",
                         content=stroke_png())
    assert result.status_code == 200, result.text
    detail = result.json()
    assert (detail["name"], detail["source_name"], detail["kind"]) == ("conv2", "pool1",
                                                                         "conv2d")
    weights = model.checkpoint.model["3.weight"]
    np.testing.assert_allclose(detail["kernels"]["weights"], weights[2], rtol=0, atol=5e-11)
    assert [source["channel"] for source in detail["sources"]] == list(range(weights.shape[1]))
    pixel = detail["pixel"]
    assert len(pixel["channels"]) == weights.shape[1]
    assert pixel["padding"][0] == [True, True, True]  # row 0 with padding 1
    assert abs(pixel["computed"] - pixel["value"]) <= pixel["tolerance"]
    outputs, _ = model.layer_outputs(inputs, [2])
    reference = torch.nn.functional.conv2d(
        torch.from_numpy(outputs[2].astype(np.float64)),
        torch.from_numpy(weights.astype(np.float64)),
        torch.from_numpy(model.checkpoint.model["3.bias"].astype(np.float64)), padding=1)
    assert pixel["computed"] == pytest.approx(float(reference[0, 2, 0, 6]), rel=1e-9, abs=1e-12)


def test_featuremap_of_a_pooling_and_an_activation(client, run_dir, tmp_path):
    """A pool1 pixel is the maximum of its 2×2 window of relu1; a relu1 pixel is max(0, conv1)
    at the same place; both are the network's values."""
    model, inputs = _stroke_model(run_dir, tmp_path)
    outputs, _ = model.layer_outputs(inputs, [0, 1, 2])
    pool = client.post("/api/featuremap?layer=2&channel=1&row=7&column=7",
                       content=stroke_png()).json()
    assert pool["text"] == "pool1 map 1 = the maximum of each 2×2 window (stride 2) of relu1 map 1"
    window = outputs[1][0, 1, 14:16, 14:16]
    np.testing.assert_allclose(pool["pixel"]["window"], window, rtol=0, atol=1e-9)
    assert pool["pixel"]["value"] == pytest.approx(float(window.max()))
    relu = client.post("/api/featuremap?layer=1&channel=1&row=14&column=14",
                       content=stroke_png()).json()["pixel"]
    assert relu["source"] == pytest.approx(float(outputs[0][0, 1, 14, 14]))
    assert relu["value"] == relu["computed"] == max(0.0, relu["source"])


@pytest.mark.parametrize("query,status,words", [
    ("", 400, ["?layer=L&channel=C"]),
    ("?layer=1", 400, ["?layer=L&channel=C"]),
    ("?layer=x&channel=0", 400, ["layer must be a non-negative integer"]),
    ("?layer=7&channel=0", 400, ["layer with feature maps"]),
    ("?layer=1&channel=99", 400, ["channel must be an index from 0 to"]),
    ("?layer=1&channel=0&row=3", 400, ["both row and column"]),
    ("?layer=2&channel=0&row=14&column=0", 400, ["pixel must be an index from 0 to 13"]),
    ("?layer=1&channel=0&invert=maybe", 400, ["invert"]),
])
def test_featuremap_refusals(client, query, status, words):
    """A map or pixel that does not exist, or a half-given pixel, is refused with a message."""
    refused(client.post(f"/api/featuremap{query}", content=stroke_png()), status, *words)


@pytest.mark.parametrize("query,body,status,words", [
    ("?invert=maybe", None, 400, ["invert"]),
    ("?method=lime", None, 400, ["method"]),
    ("?top=0", None, 400, ["top"]),
    ("?top=-1", None, 400, ["top"]),
    ("?layers=some", None, 400, ["layers"]),
    ("", b"not an image", 400, ["not an image"]),
    ("", b"", 400, ["empty"]),
])
def test_predict_refusals(client, query, body, status, words):
    """Bad predict requests are refused with a message."""
    response = client.post(f"/api/predict{query}", content=stroke_png() if body is None else body)
    refused(response, status, *words)


def test_every_static_file_is_package_data():
    """Each file the page needs matches pyproject's package-data globs, so that a
    non-editable install carries it."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    from cnnkit.serve.app import STATIC

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cnnkit.serve"]
    files = [path.relative_to(STATIC.parent).as_posix() for path in STATIC.iterdir()]
    assert {"static/index.html", "static/app.js", "static/app.css", "static/featuremaps.js",
            "static/featuremaps.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
