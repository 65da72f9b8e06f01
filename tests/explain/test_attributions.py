"""Attributions, per-layer outputs and weights of a TrainedModel: written once over the engine
interface, checked on both engines against PyTorch's autograd and against hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.errors import InvalidArgument
from cnnkit.filters.kernels import sobel_kernel
from cnnkit.model import METHODS, TrainedModel, bilinear_resize

ENGINES = ("numpy", "torch")


def _model(layers: list[dict], input_shape, module: nn.Sequential, engine: str) -> TrainedModel:
    """A TrainedModel of ``layers`` holding the weights of the torch module ``module``."""
    weights = {name: value.detach().numpy() for name, value in module.state_dict().items()}
    return TrainedModel.from_weights({"name": "test", "layers": layers}, input_shape, weights,
                                     engine=engine)


LEFT_HALF = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
             {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]


def _left_half_module(seed: int = 0) -> nn.Sequential:
    """conv 3x3 (padding 1), ReLU, linear on 16x16 inputs; the linear layer ignores the conv
    outputs in columns 7 and up, so the right half (input columns 8 and up) cannot change any
    score."""
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                           nn.Linear(4 * 16 * 16, 3))
    with torch.no_grad():
        module[3].weight.view(3, 4, 16, 16)[..., 7:] = 0.0
    return module.eval()


def _autograd_attribution(module: nn.Sequential, inputs: np.ndarray, targets, method: str,
                          layer: int, steps: int) -> np.ndarray:
    """The three definitions written directly with torch.autograd, as the reference."""
    x = torch.from_numpy(inputs)
    rows = torch.arange(len(x))
    if method == "saliency":
        x.requires_grad_(True)
        (gradient,) = torch.autograd.grad(module(x)[rows, targets].sum(), x)
        return gradient.abs().amax(dim=1).numpy()
    if method == "gradcam":
        activation = module[:layer + 1](x)
        (gradient,) = torch.autograd.grad(module[layer + 1:](activation)[rows, targets].sum(),
                                          activation)
        cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1))
        return nn.functional.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear",
                                         align_corners=False)[:, 0].detach().numpy()
    total = torch.zeros_like(x)
    for step in range(steps):
        point = ((step + 0.5) / steps * x).requires_grad_(True)
        (gradient,) = torch.autograd.grad(module(point)[rows, targets].sum(), point)
        total += gradient
    return (x * total / steps).sum(dim=1).numpy()


TUTORIAL_LIKE = [{"type": "conv2d", "out_channels": 6, "kernel_size": 5, "padding": 2},
                 {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
                 {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
                 {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
                 {"type": "flatten"}, {"type": "linear", "out_features": 32}, {"type": "relu"},
                 {"type": "dropout"}, {"type": "linear", "out_features": 10}]


@pytest.fixture(scope="module")
def tutorial_like():
    """A small tutorial-shaped network (random weights), its torch module and a batch."""
    torch.manual_seed(11)
    module = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(8 * 7 * 7, 32), nn.ReLU(), nn.Dropout(),
                           nn.Linear(32, 10)).eval()
    inputs = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    return module, inputs, np.array([0, 3, 7, 9, 2])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layer", [None, 1, 3])
def test_both_engines_equal_autograd(tutorial_like, method, layer):
    """Saliency, Grad-CAM (default and chosen layers) and integrated gradients: the NumPy and
    the PyTorch engine give the autograd reference's maps, and each other's, within 1e-5 of the
    map's scale."""
    module, inputs, targets = tutorial_like
    reference = _autograd_attribution(module, inputs, targets, method,
                                      4 if layer is None else layer, steps=8)
    maps = {engine: _model(TUTORIAL_LIKE, (1, 28, 28), module, engine).attribute(
        inputs, targets, method=method, layer=layer, steps=8) for engine in ENGINES}
    scale = np.abs(reference).max()
    assert scale > 0
    for engine, got in maps.items():
        assert got.shape == (5, 28, 28) and got.dtype == np.float32, engine
        np.testing.assert_allclose(got, reference, atol=1e-5 * scale, rtol=0, err_msg=engine)
    np.testing.assert_allclose(maps["numpy"], maps["torch"], atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_layer_outputs_and_weights_equal_torch(tutorial_like, engine):
    """Every kept layer's output and the logits equal the torch module's, and conv_weights
    are its convolution weights."""
    module, inputs, _ = tutorial_like
    model = _model(TUTORIAL_LIKE, (1, 28, 28), module, engine)
    outputs, logits = model.layer_outputs(inputs, [1, 2, 4, 5])
    x = torch.from_numpy(inputs)
    with torch.no_grad():
        for index in range(len(module)):
            x = module[index](x)
            if index in outputs:
                np.testing.assert_allclose(outputs[index], x.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, x.numpy(), rtol=1e-5, atol=1e-5)
    (first, w1), (second, w2) = model.conv_weights()
    assert (first, second) == (0, 3)
    np.testing.assert_array_equal(w1, module[0].weight.detach().double().numpy())
    np.testing.assert_array_equal(w2, module[3].weight.detach().double().numpy())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("method", ["saliency", "integrated-gradients"])
def test_right_half_that_cannot_matter_gets_zero(engine, method):
    """Inputs the scores cannot depend on get exactly zero attribution; the left half does
    not."""
    model = _model(LEFT_HALF, (1, 16, 16), _left_half_module(), engine)
    inputs = np.random.default_rng(1).random((3, 1, 16, 16)).astype(np.float32)
    result = model.attribute(inputs, [0, 1, 2], method=method)
    assert result.shape == (3, 16, 16)
    assert np.all(result[:, :, 8:] == 0.0)
    assert np.all(np.abs(result[:, :, :6]).sum(axis=(1, 2)) > 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_saliency_of_a_linear_model_is_the_weight_size(engine):
    """For score = w·x the saliency is |w| (largest over channels)."""
    torch.manual_seed(2)
    module = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).eval()
    model = _model([{"type": "flatten"}, {"type": "linear", "out_features": 3}], (2, 5, 5),
                   module, engine)
    result = model.attribute(np.random.default_rng(3).standard_normal((1, 2, 5, 5)), [1])
    expected = module[1].weight[1].detach().abs().view(2, 5, 5).amax(dim=0).numpy()
    np.testing.assert_allclose(result[0], expected, rtol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_integrated_gradients_of_a_linear_model_are_exact(engine):
    """For score = w·x + b, integrated gradients are (x - x0)·w summed over channels."""
    torch.manual_seed(3)
    module = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).eval()
    model = _model([{"type": "flatten"}, {"type": "linear", "out_features": 2}], (2, 4, 4),
                   module, engine)
    inputs = np.random.default_rng(4).standard_normal((2, 2, 4, 4)).astype(np.float32)
    baseline = np.full((1, 2, 4, 4), -0.5, np.float32)
    result = model.attribute(inputs, [0, 1], method="integrated-gradients", baseline=baseline,
                             steps=4)
    weights = module[1].weight.detach().view(2, 2, 4, 4).numpy()
    np.testing.assert_allclose(result, ((inputs - baseline) * weights).sum(axis=1), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_integrated_gradients_add_up_to_the_score_difference(engine):
    """Completeness: the attributions sum to score(x) - score(baseline) (midpoint rule, 1%)."""
    model = _model(LEFT_HALF, (1, 16, 16), _left_half_module(seed=4), engine)
    inputs = np.random.default_rng(5).random((2, 1, 16, 16)).astype(np.float32)
    result = model.attribute(inputs, [2, 0], method="integrated-gradients", steps=128)
    logits = model.logits(inputs)
    zero = model.logits(np.zeros((1, 1, 16, 16), np.float32))[0]
    expected = [logits[0, 2] - zero[2], logits[1, 0] - zero[0]]
    np.testing.assert_allclose(result.sum(axis=(1, 2)), expected, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
def test_gradcam_of_a_summing_network_is_the_rectified_activation(engine):
    """With score = sum of the activation every channel weight is 1, so Grad-CAM equals the
    activation (same size: nothing to interpolate)."""
    module = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                           nn.Linear(36, 1, bias=False)).eval()
    with torch.no_grad():
        module[0].weight.copy_(torch.tensor(sobel_kernel(1)).view(1, 1, 3, 3))
        module[3].weight.fill_(1.0)
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1,
               "bias": False}, {"type": "relu"}, {"type": "flatten"},
              {"type": "linear", "out_features": 1, "bias": False}]
    model = _model(layers, (1, 6, 6), module, engine)
    inputs = np.random.default_rng(6).standard_normal((1, 1, 6, 6)).astype(np.float32)
    result = model.attribute(inputs, [0], method="gradcam")
    expected = torch.relu(module[0](torch.from_numpy(inputs))).detach().numpy()[:, 0]
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_bilinear_resize_matches_torch():
    """The map upsampling equals torch's bilinear interpolation with align_corners=False."""
    maps = np.random.default_rng(1).random((2, 7, 5)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=(28, 13),
                                               mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(bilinear_resize(maps, (28, 13)), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_layer_targets_and_inputs_are_refused(engine):
    """Grad-CAM on a layer without maps, targets that are not one class per input, and inputs
    of another shape are refused by name."""
    model = _model(LEFT_HALF, (1, 16, 16), _left_half_module(), engine)
    inputs = np.zeros((1, 1, 16, 16), np.float32)
    with pytest.raises(InvalidArgument, match=r"\(0, 1\), got 2"):
        model.attribute(inputs, [0], method="gradcam", layer=2)
    with pytest.raises(InvalidArgument, match="targets must hold one class index"):
        model.attribute(inputs, [0, 1])
    with pytest.raises(InvalidArgument, match="targets must hold one class index"):
        model.attribute(inputs, [3])
    with pytest.raises(InvalidArgument, match=r"inputs must be a batch \(N, 1, 16, 16\)"):
        model.attribute(np.zeros((1, 1, 8, 8)), [0])
    with pytest.raises(InvalidArgument, match="layer 9 does not exist"):
        model.layer_outputs(inputs, [9])
