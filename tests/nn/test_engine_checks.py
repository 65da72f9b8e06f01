"""The NumPy engine without PyTorch, its refusals, and the layer registry's new types."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cnnkit import nn
from cnnkit.arch import Architecture, format_summary, load_architecture, trace
from cnnkit.engines.model import build_model as build_torch_model
from cnnkit.errors import CnnkitError, ShapeError, StateDictError


def test_engine_imports_builds_and_trains_without_torch():
    """With torch impossible to import, cnnkit.nn builds the tutorial CNN and its loss falls."""
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        import cnnkit, cnnkit.arch, cnnkit.layers, cnnkit.nn, cnnkit.schedule
        from cnnkit.arch import load_architecture
        model = cnnkit.nn.build_model(load_architecture("tutorial"), (1, 12, 12), seed=0)
        optimizer = cnnkit.nn.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        images = rng.standard_normal((8, 1, 12, 12)).astype(np.float32)
        labels = rng.integers(0, 10, 8)
        losses = []
        for step in range(5):
            optimizer.param_groups[0]["lr"] = cnnkit.schedule.lr_at(
                step, 5, base_lr=1e-3, epochs=1, warmup_epochs=0.4)
            optimizer.zero_grad()
            loss, grad = cnnkit.nn.cross_entropy(model(images), labels)
            model.backward(grad)
            optimizer.step()
            losses.append(loss)
        assert "torch" not in {name.split(".")[0] for name in sys.modules if sys.modules[name]}
        print(losses[0] > losses[-1])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_input_that_does_not_fit_names_the_layer():
    """A wrong number of channels or features names the layer, what it expected and what it got."""
    model = nn.build_model(load_architecture("tutorial"), (1, 28, 28))
    with pytest.raises(ShapeError, match=r"layer 0 \(Conv2d\): expected an input of shape "
                                         r"\(N, 1, H, W\), got \(2, 3, 28, 28\)"):
        model(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(ShapeError, match=r"layer 7 \(Linear\): expected an input of shape "
                                         r"\(N, 3136\), got \(2, 4096\)"):
        model(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ShapeError, match=r"layer 2 \(MaxPool2d\): input of shape \(1, 32, 1, 1\) "
                                         "is too small"):
        model(np.zeros((1, 1, 1, 1), np.float32))


def test_state_dict_with_missing_extra_or_misshapen_keys_is_refused_by_name():
    """load_state_dict names the missing, unexpected or misshapen key and changes nothing."""
    arch = Architecture("x", [{"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                              {"type": "batch_norm2d"}, {"type": "flatten"},
                              {"type": "linear", "out_features": "num_classes"}])
    model = nn.build_model(arch, (1, 5, 5), 3)
    state = model.state_dict()
    before = model.state_dict()["0.weight"].copy()
    missing = {k: v for k, v in state.items() if k != "1.running_var"}
    with pytest.raises(StateDictError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict(missing)
    with pytest.raises(StateDictError, match=r"unexpected keys \['1.extra'\]"):
        model.load_state_dict({**state, "1.extra": np.zeros(1)})
    misshapen = {**state, "0.weight": np.ones((2, 1, 3, 3)), "3.weight": np.zeros((3, 19))}
    with pytest.raises(StateDictError, match=r"'3.weight' has shape \(3, 19\), the model needs "
                                             r"\(3, 18\)"):
        model.load_state_dict(misshapen)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before)
    assert issubclass(StateDictError, CnnkitError) and issubclass(StateDictError, ValueError)


def test_new_layer_types_trace_like_pytorch():
    """batch_norm2d and global_avg_pool2d give PyTorch's shapes and parameter counts."""
    arch = Architecture("x", [
        {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "groups": 1, "bias": False},
        {"type": "batch_norm2d", "eps": 1e-3, "momentum": None},
        {"type": "avg_pool2d", "kernel_size": 2, "ceil_mode": True, "count_include_pad": False},
        {"type": "global_avg_pool2d"},
        {"type": "flatten"},
        {"type": "linear", "out_features": "num_classes"},
    ])
    rows = trace(arch, (3, 9, 8), 4)
    model = build_torch_model(arch, (3, 9, 8), 4)
    x = torch.zeros(2, 3, 9, 8)
    for row, layer in zip(rows, model, strict=True):
        x = layer(x)
        assert tuple(x.shape[1:]) == row.output_shape
        assert sum(p.numel() for p in layer.parameters()) == row.parameters
    assert model[1].eps == 1e-3 and model[1].momentum is None
    text = format_summary(arch, (3, 9, 8), 4)
    assert "global_avg_pool2d" in text and "2*6 = 12 (+ running mean and var)" in text


def test_grouped_convolution_that_does_not_divide_is_refused():
    """A groups value that does not divide the derived input channels names the layer."""
    arch = Architecture("x", [{"type": "conv2d", "out_channels": 4, "kernel_size": 1,
                               "groups": 2}, {"type": "flatten"},
                              {"type": "linear", "out_features": 2}])
    with pytest.raises(ShapeError, match=r"layer 0 \(conv2d\) groups=2 must divide"):
        trace(arch, (3, 4, 4), 2)


@pytest.mark.parametrize(("layer", "message"), [
    ({"type": "batch_norm2d", "eps": 0}, "eps must be a positive number"),
    ({"type": "batch_norm2d", "momentum": 2}, "momentum must be a number in [0, 1]"),
    ({"type": "conv2d", "out_channels": 1, "kernel_size": 1, "padding_mode": "mirror"},
     "padding_mode must be one of"),
    ({"type": "max_pool2d", "kernel_size": 2, "ceil_mode": 1}, "ceil_mode must be true or false"),
    ({"type": "global_avg_pool2d", "output_size": 1}, "unknown keys ['output_size']"),
])
def test_bad_values_of_new_keys_are_refused(layer, message):
    """The new keys are checked when the spec is read, with the layer and the value named."""
    with pytest.raises((ValueError, TypeError)) as info:
        Architecture("bad", [layer])
    assert message in str(info.value)


def test_trace_batch_records_every_layer_and_matches_the_model_gradients():
    """trace_batch's gradients equal a plain backward pass and its outputs the forward pass."""
    model = nn.build_model(load_architecture("tutorial"), (1, 12, 12), 10, dtype=np.float64)
    model.eval()
    images = np.random.default_rng(0).standard_normal((4, 1, 12, 12))
    labels = np.array([1, 2, 3, 4])
    result = nn.trace_batch(model, images, labels)
    logits = model(images)
    loss, grad = nn.cross_entropy(logits, labels)
    model.zero_grad()
    model.backward(grad)
    assert result.loss == loss
    np.testing.assert_array_equal(result.outputs["10"], logits)
    np.testing.assert_array_equal(result.gradients["10"], grad)
    for name, parameter in model.named_parameters():
        np.testing.assert_array_equal(result.parameter_gradients[name], parameter.grad)
    assert list(result.outputs) == ["input", *map(str, range(11))]
    assert result.types["7"] == "Linear" and "loss" in str(result)
