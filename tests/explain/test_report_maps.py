"""The feature maps a report embeds for its linked views: the network's outputs and the
checkpoint's weights, stored compactly, decoded here as the page's script decodes them."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest
from tests.browser import needs_chromium, open_page
from tests.explain.test_featuremaps import EVERY_KIND, INPUT_SHAPE, _weights

from cnnkit import report
from cnnkit.evaluation import load_split
from cnnkit.model import TrainedModel, softmax


def embedded(text: str) -> dict:
    """The report's data object (the JSON in its page)."""
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                      re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def decoded_maps(maps: dict, example: str) -> tuple[dict, dict]:
    """Every stored array of one example (by layer, -1 the input) as float64, and each array's
    per-channel scales; the bytes must be used up exactly."""
    raw = zlib.decompress(base64.b64decode(maps["examples"][example]["maps"]))
    arrays, scales, offset = {}, {}, 0
    for group in maps["groups"]:
        shape = maps["input_shape"] if group[0] < 0 else maps["layers"][str(group[0])]["shape"]
        channels, height, width = shape
        scale = np.frombuffer(raw, "<f4", channels, offset).astype(np.float64)
        offset += 4 * channels
        values = np.frombuffer(raw, "<i2", channels * len(group) * height * width, offset)
        offset += 2 * values.size
        values = values.reshape(channels, len(group), height, width)
        for position, key in enumerate(group):
            arrays[key] = values[:, position] * (scale / maps["quantum"])[:, None, None]
            scales[key] = scale
    assert offset == len(raw)
    return arrays, scales


def decoded_weights(maps: dict) -> dict[str, np.ndarray]:
    """The convolutions' weights and biases as stored, by state-dict name."""
    raw = zlib.decompress(base64.b64decode(maps["weights"]))
    result, offset = {}, 0
    for key in sorted(maps["layers"], key=int):
        layer = maps["layers"][key]
        if layer["operation"] != "convolution":
            continue
        source = (maps["input_shape"] if layer["source"] < 0
                  else maps["layers"][str(layer["source"])]["shape"])
        shape = (layer["shape"][0], source[0] // layer["groups"], *layer["kernel_size"])
        for name, size in (("weight", int(np.prod(shape))), ("bias", layer["shape"][0])):
            values = np.frombuffer(raw, "<f4", size, offset)
            result[f"{key}.{name}"] = values.reshape(shape) if name == "weight" else values
            offset += 4 * size
    assert offset == len(raw)
    return result


def test_stored_maps_are_the_networks_outputs(report_path):
    """Decoded, every stored map of every example equals the network's output (and the input)
    to half a stored step: 1/65534 of its channel's largest magnitude."""
    text = report_path.read_text(encoding="utf-8")
    maps = embedded(text)["featuremaps"]
    model = TrainedModel.load(report_path.parent)
    _, _, images, _ = load_split(model.checkpoint, "the run")
    examples = re.findall(r'<article class="example" data-example="(\d+)"', text)
    assert examples and sorted(examples) == sorted(maps["examples"])
    layers = model.info.spatial_layers
    assert sorted(map(int, maps["layers"])) == layers
    for example in examples:
        inputs = model.normalise(images[int(example)][np.newaxis])
        outputs, _ = model.layer_outputs(inputs, layers)
        exact = {-1: inputs[0], **{layer: outputs[layer][0] for layer in layers}}
        arrays, scales = decoded_maps(maps, example)
        assert sorted(arrays) == [-1, *layers]
        for key, values in arrays.items():
            # Half a step of 1/32767 of the channel's largest magnitude, and float32 noise of
            # the network's batches (the report ran twenty images at once, this one).
            largest = scales[key][:, None, None]
            assert np.all(np.abs(values - exact[key]) <= largest * (0.5 / maps["quantum"] + 1e-6))


def test_stored_weights_are_the_checkpoints(report_path):
    """The convolutions' kernels and biases the page shows are the checkpoint's, bit for bit."""
    maps = embedded(report_path.read_text(encoding="utf-8"))["featuremaps"]
    checkpoint = TrainedModel.load(report_path.parent).checkpoint.model
    stored = decoded_weights(maps)
    assert sorted(stored) == sorted(name for name in checkpoint if name.startswith(("0.", "3.")))
    for name, values in stored.items():
        assert np.array_equal(values, np.asarray(checkpoint[name], np.float32)), name


def test_every_map_has_a_labelled_tile_group(report_path):
    """Each example has one tile group per shown layer, named conv1/relu1/pool1..., and each
    layer's step says how its maps are made."""
    text = report_path.read_text(encoding="utf-8")
    maps = embedded(text)["featuremaps"]
    model = TrainedModel.load(report_path.parent)
    groups = re.findall(r'<div class="fm-tiles" role="group" data-layer="(\d+)" '
                        r'aria-label="(\w+): (\d+) maps', text)
    shown = model.info.shown_layers()
    assert len(groups) == len(shown) * len(maps["examples"])
    for layer, name, count in groups[:len(shown)]:
        assert name == model.info.names[int(layer)]
        assert int(count) == model.info.layers[int(layer)].output_shape[0]
    assert maps["layers"]["1"]["texts"][2] == "relu1 map 2 = max(0, conv1 map 2)"
    assert maps["layers"]["0"]["texts"][0].startswith("conv1 map 0 = the input ⋆ kernel 0")


@pytest.fixture(scope="module")
def every_kind_report(tmp_path_factory):
    """A report of the network of every layer kind (random weights, random images): its path,
    model and images."""
    rng = np.random.default_rng(7)
    model = TrainedModel.from_weights(EVERY_KIND, INPUT_SHAPE, _weights(rng), engine="numpy")
    images = rng.integers(0, 256, size=(9, *INPUT_SHAPE), dtype=np.uint8)
    labels = np.arange(9) % 3
    probabilities = softmax(model.logits(model.normalise(images)))
    test = report.TestPass("synthetic-digits", "test", images, labels, probabilities,
                    np.zeros((9, 6), np.float32))
    folder = tmp_path_factory.mktemp("every-kind")
    path = folder / "report.html"
    path.write_text(report.build_report(folder, model=model, test_pass=test), encoding="utf-8")
    return path, model, images


def test_every_layer_kind_is_stored(every_kind_report):
    """Batch normalisation's scale and shift, and every kind's maps, are stored; the maps of a
    convolution and the activation after it are one group."""
    path, _, _ = every_kind_report
    maps = embedded(path.read_text(encoding="utf-8"))["featuremaps"]
    assert maps["groups"] == [[-1], [0, 1, 2], [3, 4], [5, 6], [7, 8], [9]]
    assert maps["layers"]["1"]["operation"] == "batch_norm"
    assert len(maps["layers"]["1"]["scale"]) == 4
    arrays, _ = decoded_maps(maps, next(iter(maps["examples"])))
    assert arrays[9].shape == (6, 1, 1)


def test_a_flat_attribution_is_named_not_drawn(every_kind_report, monkeypatch):
    """An attribution map that is constant is written as 'flat map (range ...)', not drawn."""
    _, model, images = every_kind_report
    monkeypatch.setattr(TrainedModel, "attribute",
                        lambda self, inputs, targets, **options: np.zeros((len(inputs),
                                                                           *INPUT_SHAPE[1:])))
    test = report.TestPass("synthetic-digits", "test", images[:3], np.arange(3),
                    softmax(model.logits(model.normalise(images[:3]))),
                    np.zeros((3, 6), np.float32))
    text = report.build_report(".", model=model, test_pass=test, examples_per_class=1)
    section = text[text.index('<section id="examples"'):text.index('<section id="pca"')]
    assert section.count("flat map (range 0 to 0)") == 3 * 3
    assert 'alt="saliency of test image' not in section


@needs_chromium
def test_the_pages_pixels_are_cnnkits_for_every_layer_kind(every_kind_report):
    """In a browser, for a corner and an inner pixel of a map of every layer (the convolution
    before the sigmoid reached through its source link), the page's written-out result and the
    network's value equal cnnkit.featuremaps' numbers; no console error, nothing fetched."""
    from cnnkit.featuremaps import map_detail

    path, model, images = every_kind_report
    with open_page(path.resolve().as_uri()) as page:
        page.wait_for_selector("article[data-example][data-ready=true]")
        article = page.locator("article[data-example]").first
        example = int(article.get_attribute("data-example"))
        inputs = model.normalise(images[example][np.newaxis])
        detail = article.locator(".fm-detail")
        checked = []
        for layer in [*model.info.shown_layers(), 3]:
            channel = 1
            if layer == 3:  # shown through the sigmoid after it
                article.locator(f'.fm-tile[data-layer="4"][data-channel="{channel}"]').click()
                detail.locator(".fm-open").click()
            else:
                article.locator(f'.fm-tile[data-layer="{layer}"][data-channel="{channel}"]'
                                ).click()
            assert detail.get_attribute("data-layer") == str(layer)
            shape = model.info.layers[layer].output_shape[1:]
            for pixel in {(0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, shape[1] // 2)}:
                box = detail.locator(".fm-big canvas").bounding_box()
                page.mouse.click(box["x"] + (pixel[1] + 0.5) * box["width"] / shape[1],
                                 box["y"] + (pixel[0] + 0.5) * box["height"] / shape[0])
                heading = f"Pixel ({pixel[0]}, {pixel[1]}) of"
                page.wait_for_function(
                    "text => document.querySelector('article[data-example] .fm-pixel h4')"
                    "?.textContent.startsWith(text)", arg=heading)
                reference = map_detail(model, inputs, layer, channel, list(pixel))["pixel"]
                shown = float(detail.locator(".fm-sum").inner_text().split("= ")[-1])
                value = float(detail.locator(".fm-value").inner_text())
                assert shown == pytest.approx(reference["computed"], rel=1e-4, abs=1e-3), (
                    layer, pixel)
                assert value == pytest.approx(reference["value"], rel=1e-4, abs=1e-3)
                assert "the same up to rounding" in detail.locator(".fm-check").inner_text()
                window = reference.get("window") or (reference.get("channels") or [{}])[0].get(
                    "window")
                if window is not None:
                    cells = detail.locator(".fm-pixel table").first.locator("td")
                    _same_cells(cells.all_inner_texts(), [v for row in window for v in row])
                checked.append((layer, pixel))
        assert page.errors == [] and page.requests == [path.resolve().as_uri()]
    assert {layer for layer, _ in checked} == set(model.info.spatial_layers)


def _same_cells(shown: list[str], expected: list) -> None:
    """A window's cells as the page shows them ('pad' for a pooling's padding) against
    cnnkit's numbers."""
    assert len(shown) == len(expected)
    for text, value in zip(shown, expected):
        if value is None:
            assert text == "pad"
        else:
            assert float(text) == pytest.approx(value, rel=1e-3, abs=1e-3)
