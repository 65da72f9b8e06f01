"""One feature map followed back one layer (cnnkit.featuremaps): every pixel written out equals
the network's value, and the same layer computed by torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import InvalidArgument
from cnnkit.featuremaps import explain_pixel, map_detail, map_steps
from cnnkit.model import TrainedModel

#: Every kind of layer with maps, with padding, stride, dilation, groups, a padding mode,
#: ceil mode and count_include_pad=False where a layer has them.
EVERY_KIND = {"name": "every-kind", "layers": [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 2,
     "padding_mode": "reflect"},
    {"type": "batch_norm2d"},
    {"type": "tanh"},
    {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 2, "dilation": 2,
     "groups": 2},
    {"type": "sigmoid"},
    {"type": "avg_pool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
     "count_include_pad": False},
    {"type": "dropout", "p": 0.5},
    {"type": "max_pool2d", "kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
    {"type": "relu"},
    {"type": "global_avg_pool2d"},
    {"type": "flatten"},
    {"type": "linear", "out_features": 3},
]}
INPUT_SHAPE = (1, 13, 11)


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "0.weight": rng.normal(size=(4, 1, 3, 3)), "0.bias": rng.normal(size=4),
        "1.weight": rng.uniform(0.5, 2, 4), "1.bias": rng.normal(size=4),
        "1.running_mean": rng.normal(size=4), "1.running_var": rng.uniform(0.5, 2, 4),
        "1.num_batches_tracked": np.array(10),
        "3.weight": rng.normal(size=(6, 2, 3, 3)), "3.bias": rng.normal(size=6),
        "11.weight": rng.normal(size=(3, 6)), "11.bias": rng.normal(size=3),
    }


@pytest.fixture(scope="module", params=["numpy", "torch"])
def every_kind(request):
    """The network of every kind on one engine, random weights, and one random image."""
    rng = np.random.default_rng(7)
    model = TrainedModel.from_weights(EVERY_KIND, INPUT_SHAPE, _weights(rng),
                                      engine=request.param)
    image = rng.normal(size=(1, *INPUT_SHAPE)).astype(np.float32)
    return model, image


def _torch_layer(step, source: torch.Tensor) -> torch.Tensor:
    """The layer of ``step`` computed by torch.nn.functional from its input, in float64."""
    (top, _), (left, _) = step.pads
    if step.operation == "convolution":
        if step.padding_mode != "zeros":
            source = F.pad(source, (left, left, top, top), mode=step.padding_mode)
            top = left = 0
        return F.conv2d(source, torch.from_numpy(step.weight), torch.from_numpy(step.bias),
                        step.stride, (top, left), step.dilation, step.groups)
    if step.operation == "max":
        return F.max_pool2d(source, step.kernel_size, step.stride, (top, left),
                            ceil_mode=step.ceil_mode)
    if step.operation == "avg":
        return F.avg_pool2d(source, step.kernel_size, step.stride, (top, left),
                            ceil_mode=step.ceil_mode, count_include_pad=step.count_include_pad)
    if step.operation == "batch_norm":
        return (source * torch.from_numpy(step.scale)[:, None, None]
                + torch.from_numpy(step.shift)[:, None, None])
    functions = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "identity": lambda x: x, "mean": lambda x: x.mean(dim=(-2, -1), keepdim=True)}
    return functions[step.operation](source)


def test_every_pixel_of_every_layer_is_its_formula_and_torchs(every_kind):
    """For every map and pixel of every layer kind, the pixel written out (float64) equals the
    network's value within its stated tolerance, and torch.nn.functional's layer on the same
    input within 1e-9."""
    model, image = every_kind
    steps = map_steps(model)
    layers = model.info.spatial_layers
    outputs, _ = model.layer_outputs(image, layers)
    assert sorted(steps) == layers
    for layer in layers:
        step = steps[layer]
        source = image[0] if step.source < 0 else outputs[step.source][0]
        output = outputs[layer][0]
        reference = _torch_layer(step, torch.from_numpy(source.astype(np.float64))).numpy()
        assert reference.shape == output.shape, step.name
        for channel in range(len(output)):
            for index in np.ndindex(*output.shape[1:]):
                pixel = explain_pixel(step, source, output, channel, list(index))
                assert abs(pixel["computed"] - pixel["value"]) <= pixel["tolerance"], (
                    step.name, channel, index)
                assert pixel["computed"] == pytest.approx(reference[(channel, *index)],
                                                          rel=1e-9, abs=1e-12)


def test_a_convolution_pixel_shows_the_checkpoints_kernels(every_kind):
    """A grouped convolution's pixel reads its group's input channels, with the checkpoint's
    kernels (to the 10 decimals JSON carries), and each channel's sum is its window times its
    kernel."""
    model, image = every_kind
    detail = map_detail(model, image, 3, 5, [0, 0])
    weights = model.checkpoint.model["3.weight"]
    assert detail["name"] == "conv2" and detail["kernels"]["channels"] == [2, 3]
    np.testing.assert_allclose(detail["kernels"]["weights"], weights[5], rtol=0, atol=5e-11)
    assert detail["kernels"]["bias"] == float(model.checkpoint.model["3.bias"][5])
    assert [source["channel"] for source in detail["sources"]] == [2, 3]
    pixel = detail["pixel"]
    for part, kernel in zip(pixel["channels"], weights[5]):
        np.testing.assert_allclose(part["kernel"], kernel, rtol=0, atol=5e-11)
        assert part["sum"] == pytest.approx(float(np.sum(np.multiply(part["window"],
                                                                      kernel))), abs=1e-9)
    # Padding 2 with dilation 2: the window of pixel (0, 0) starts two cells into the padding.
    assert pixel["padding"][0] == [True, True, True] and pixel["padding"][1][0] is True
    assert pixel["padding"][1][1:] == [False, False]
    assert all(v == 0 for v in pixel["channels"][0]["window"][0])


def test_padding_is_marked_and_filled_as_the_layer_pads():
    """A reflect-padded convolution reads the mirrored values into its padding and marks them;
    a max pooling window marks its padding as None and picks the largest real value."""
    model = TrainedModel.from_weights(
        {"layers": [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1,
                     "padding_mode": "reflect", "bias": False},
                    {"type": "max_pool2d", "kernel_size": 2, "padding": 1},
                    {"type": "flatten"}, {"type": "linear", "out_features": 2}]},
        (1, 3, 3), {"0.weight": np.ones((1, 1, 3, 3)), "3.weight": np.ones((2, 4)),
                    "3.bias": np.zeros(2)}, engine="numpy")
    image = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    convolution = map_detail(model, image, 0, 0, [0, 0])["pixel"]
    assert convolution["channels"][0]["window"] == [[4, 3, 4], [1, 0, 1], [4, 3, 4]]
    assert convolution["padding"] == [[True] * 3, [True, False, False], [True, False, False]]
    assert convolution["computed"] == convolution["value"] == 24
    edge = map_detail(model, image, 1, 0, [0, 1])["pixel"]
    assert edge["window"][0] == [None, None] and edge["padding"] == [[True, True],
                                                                     [False, False]]
    corner = map_detail(model, image, 1, 0, [0, 0])["pixel"]
    assert corner["window"] == [[None, None], [None, 24.0]] and corner["chosen"] == [1, 1]


def test_map_detail_names_the_map_and_its_source(every_kind):
    """The detail names the map (conv1 ...), says how it is made and shows its source map."""
    model, image = every_kind
    relu = map_detail(model, image, 8, 1)
    assert relu["name"] == "relu1" and relu["source_name"] == "pool1"
    assert relu["text"] == "relu1 map 1 = max(0, pool1 map 1)"
    assert [s["channel"] for s in relu["sources"]] == [1] and "pixel" not in relu
    first = map_detail(model, image, 0, 2)
    assert first["source"] == -1 and first["source_name"] == "input"
    assert first["text"].startswith("conv1 map 2 = the input ⋆ kernel 2")
    assert first["map"]["png"].startswith("data:image/png;base64,")
    assert map_detail(model, image, 9, 0)["shape"] == [1, 1]


@pytest.mark.parametrize("layer, channel, pixel, words", [
    (10, 0, None, "layer must be the index of a layer with feature maps"),
    (0, 4, None, "channel must be an index from 0 to 3"),
    (0, 0, [7, 0], "pixel must be an index from 0 to 6"),
    (0, 0, [1], "pixel must be [row, column]"),
])
def test_bad_maps_and_pixels_are_refused(every_kind, layer, channel, pixel, words):
    """A layer without maps, a channel or pixel outside the map: a message naming the range."""
    model, image = every_kind
    with pytest.raises(InvalidArgument, match=words.replace("[", r"\[")):
        map_detail(model, image, layer, channel, pixel)
