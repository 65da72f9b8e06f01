"""Architecture specs: shapes and parameter counts against PyTorch, and every refusal."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.arch import (
    Architecture,
    format_summary,
    load_architecture,
    parse_input_shape,
    trace,
)
from cnnkit.engines.model import build_model


def _torch_reference(input_shape, num_classes=10):
    """The tutorial CNN written directly in torch.nn, with the flatten size computed by hand."""
    channels, height, width = input_shape
    flat = 64 * (height // 2 // 2) * (width // 2 // 2)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(flat, 1024), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(1024, num_classes),
    )


def test_tutorial_parameter_count_is_the_published_one():
    """The tutorial spec on 1x28x28 with ten classes has 3,274,634 parameters, as in PyTorch."""
    rows = trace(load_architecture("tutorial"), (1, 28, 28), 10)
    reference = _torch_reference((1, 28, 28))
    assert sum(row.parameters for row in rows) == 3_274_634
    assert sum(p.numel() for p in reference.parameters()) == 3_274_634
    assert rows[6].output_shape == (3136,)


def test_tutorial_on_cifar_10_images_takes_three_channels():
    """On CIFAR-10's 3x32x32 the tutorial's layers become conv 3->32 (3*25*32 + 32 = 2,432),
    conv 32->64 (51,264), dense 64*8*8 = 4096 -> 1024 (4,195,328) and 1024 -> 10 (10,250)."""
    rows = trace(load_architecture("tutorial"), (3, 32, 32), 10)
    counted = {row.index: row.parameters for row in rows if row.parameters}
    assert counted == {0: 2_432, 3: 51_264, 7: 4_195_328, 10: 10_250}
    assert [row.output_shape for row in rows[:7]] == [
        (32, 32, 32), (32, 32, 32), (32, 16, 16), (64, 16, 16), (64, 16, 16), (64, 8, 8),
        (4096,)]
    assert sum(counted.values()) == 4_259_274


@settings(max_examples=15, deadline=None)
@given(
    channels=st.sampled_from([1, 3]),
    height=st.integers(4, 70),
    width=st.integers(4, 70),
    classes=st.integers(2, 12),
)
def test_traced_shapes_and_counts_match_pytorch(channels, height, width, classes):
    """Every layer's traced output shape and parameter count equal those of the PyTorch model."""
    arch = load_architecture("tutorial")
    rows = trace(arch, (channels, height, width), classes)
    model = build_model(arch, (channels, height, width), classes)
    reference = _torch_reference((channels, height, width), classes)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    x = torch.zeros(2, channels, height, width)
    for row, layer in zip(rows, model, strict=True):
        x = layer(x)
        assert tuple(x.shape[1:]) == row.output_shape
        assert sum(p.numel() for p in layer.parameters()) == row.parameters


def test_summary_has_one_row_per_layer_with_formulas():
    """The summary shows each layer with its formula, and the total matches PyTorch's count."""
    text = format_summary(load_architecture("tutorial"), (3, 32, 32), 10)
    assert "floor((32 + 2*2 - 5) / 1) + 1 = 32" in text
    assert "64*8*8 = 4096" in text
    reference = _torch_reference((3, 32, 32))
    total = sum(p.numel() for p in reference.parameters())
    assert text.splitlines()[-1] == f"total parameters: {total:,} (trainable {total:,})"
    assert len(text.splitlines()) == 4 + 11 + 1


def test_json_spec_round_trip(tmp_path):
    """A spec written as JSON loads back to the same layers."""
    arch = load_architecture("tutorial")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(arch.to_dict()))
    assert load_architecture(path) == arch
    assert load_architecture(str(path)).layers == arch.layers


def test_pool_stride_defaults_to_kernel_size():
    """A pooling layer without stride moves by its kernel size, as in PyTorch."""
    arch = Architecture("p", [{"type": "max_pool2d", "kernel_size": 3}, {"type": "flatten"},
                              {"type": "linear", "out_features": "num_classes"}])
    rows = trace(arch, (1, 9, 9), 4)
    assert rows[0].output_shape == (1, 3, 3)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "conv3d"}], "layer 0 has type 'conv3d'"),
        ([{"out_features": 10}], "layer 0 has no 'type' key"),
        ([{"type": "conv2d", "kernel_size": 3}], "needs the key 'out_channels'"),
        ([{"type": "relu", "inplace": True}], "unknown keys ['inplace']"),
        ([{"type": "dropout", "p": 1.5}], "p must be a number in [0, 1)"),
        ([{"type": "dropout", "p": "half"}], "p must be a number in [0, 1)"),
        # Regression: a text momentum reached a comparison with a number (TypeError).
        ([{"type": "batch_norm2d", "momentum": ""}], "momentum must be a number in [0, 1]"),
        ([{"type": "conv2d", "out_channels": 0, "kernel_size": 3}], "out_channels"),
        ([{"type": "linear", "out_features": 3, "bias": "yes"}], "bias must be true or false"),
        (["relu"], "layer 0 must be a dict"),
        ([], "non-empty list"),
    ],
)
def test_bad_layer_specs_are_refused(layers, message):
    """A malformed layer is refused with the layer and the problem named."""
    with pytest.raises((ValueError, TypeError)) as info:
        Architecture("bad", layers)
    assert message in str(info.value)


def test_pooling_below_one_pixel_is_refused_with_layer_and_sizes():
    """A pooling that would shrink a 3x3 map below one pixel names the layer and the sizes."""
    with pytest.raises(ValueError, match=r"layer 5 \(max_pool2d\) does not fit its 1x1 input"):
        trace(load_architecture("tutorial"), (1, 3, 3))


def test_linear_without_flatten_is_refused():
    """A linear layer on a CxHxW map is refused with a hint to flatten."""
    arch = Architecture("x", [{"type": "linear", "out_features": 10}])
    with pytest.raises(ValueError, match="add a flatten layer"):
        trace(arch, (1, 4, 4))


def test_wrong_number_of_outputs_is_refused():
    """A network whose last layer does not give one score per class is refused."""
    arch = Architecture("x", [{"type": "flatten"}, {"type": "linear", "out_features": 7}])
    with pytest.raises(ValueError, match="gives 7 outputs but there are 10 classes"):
        trace(arch, (1, 4, 4), 10)


def test_network_ending_in_a_map_is_refused():
    """A network that does not end in a flat vector is refused."""
    arch = Architecture("x", [{"type": "relu"}])
    with pytest.raises(ValueError, match="must end in a flat vector"):
        trace(arch, (1, 4, 4), 10)


def test_pool_padding_larger_than_half_kernel_is_refused():
    """Pooling padding over half the kernel is refused, as PyTorch refuses it."""
    arch = Architecture("x", [{"type": "max_pool2d", "kernel_size": 2, "padding": 2},
                              {"type": "flatten"}, {"type": "linear", "out_features": 2}])
    with pytest.raises(ValueError, match="more than half the kernel size"):
        trace(arch, (1, 8, 8), 2)


@pytest.mark.parametrize("text", ["28x28", "1x28", "ax28x28", "1x0x28", ""])
def test_bad_input_shapes_are_refused(text):
    """An input shape that is not three positive integers is refused."""
    with pytest.raises(ValueError, match="input shape"):
        parse_input_shape(text)


def test_unknown_arch_name_is_refused():
    """An unknown architecture name lists the built-in ones."""
    with pytest.raises(ValueError, match="'tutorial'"):
        load_architecture("resnet")


def test_bad_json_is_refused(tmp_path):
    """A spec file that is not JSON, or has no layers, is refused with the file named."""
    path = tmp_path / "spec.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_architecture(path)
    path.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="'layers' list"):
        load_architecture(path)


def test_arch_of_wrong_type_is_refused():
    """trace and load_architecture refuse arguments of the wrong type."""
    with pytest.raises(TypeError):
        trace("tutorial", (1, 28, 28))
    with pytest.raises(TypeError):
        load_architecture(42)
