"""Every cnnkit.nn layer and option: gradients against central differences and torch.autograd.

Tolerances: ``gradcheck`` relative error < 1e-7 (central differences in float64, step 1e-6);
output and gradients against torch.autograd in float64 to 1e-10 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit import nn
from tests.nn.helpers import against_autograd, torch_twin

FINITE_DIFFERENCES = 1e-7
AUTOGRAD = 1e-10


class MaskedDropout(torch.nn.Module):
    """Dropout with a given keep-mask, the twin of cnnkit's Dropout after ``use_mask``."""

    def __init__(self, mask: np.ndarray, p: float) -> None:
        super().__init__()
        self.scale = torch.from_numpy(mask.astype(np.float64) / (1 - p))

    def forward(self, x):
        return x * self.scale


def _generator():
    return np.random.default_rng(7)


# (id, cnnkit layer, torch twin, input shape, training)
CASES = [
    ("conv", lambda: nn.Conv2d(2, 3, 3, padding=1, generator=_generator()),
     lambda: torch.nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 6), True),
    ("conv-even-stride2", lambda: nn.Conv2d(2, 4, (2, 4), stride=2, generator=_generator()),
     lambda: torch.nn.Conv2d(2, 4, (2, 4), stride=2), (1, 2, 7, 9), True),
    ("conv-dilation-groups",
     lambda: nn.Conv2d(4, 4, (3, 2), padding=1, dilation=(2, 1), groups=2,
                       generator=_generator()),
     lambda: torch.nn.Conv2d(4, 4, (3, 2), padding=1, dilation=(2, 1), groups=2),
     (2, 4, 6, 5), True),
    ("conv-same-even", lambda: nn.Conv2d(2, 2, 2, padding="same", generator=_generator()),
     lambda: torch.nn.Conv2d(2, 2, 2, padding="same"), (1, 2, 4, 5), True),
    ("conv-reflect", lambda: nn.Conv2d(1, 2, 3, stride=(1, 2), padding=2, padding_mode="reflect",
                                       generator=_generator()),
     lambda: torch.nn.Conv2d(1, 2, 3, stride=(1, 2), padding=2, padding_mode="reflect"),
     (2, 1, 5, 5), True),
    ("conv-replicate-nobias",
     lambda: nn.Conv2d(1, 2, 3, padding=1, bias=False, padding_mode="replicate",
                       generator=_generator()),
     lambda: torch.nn.Conv2d(1, 2, 3, padding=1, bias=False, padding_mode="replicate"),
     (1, 1, 4, 4), True),
    ("conv-circular", lambda: nn.Conv2d(2, 1, 3, padding=1, padding_mode="circular",
                                        generator=_generator()),
     lambda: torch.nn.Conv2d(2, 1, 3, padding=1, padding_mode="circular"), (1, 2, 4, 4), True),
    ("maxpool", lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (2, 3, 6, 6), True),
    ("maxpool-overlap-pad", lambda: nn.MaxPool2d(3, 2, 1), lambda: torch.nn.MaxPool2d(3, 2, 1),
     (2, 2, 7, 6), True),
    ("maxpool-ceil", lambda: nn.MaxPool2d(2, ceil_mode=True),
     lambda: torch.nn.MaxPool2d(2, ceil_mode=True), (1, 2, 5, 5), True),
    ("maxpool-dilation", lambda: nn.MaxPool2d(2, 1, dilation=2),
     lambda: torch.nn.MaxPool2d(2, 1, dilation=2), (1, 2, 5, 6), True),
    ("avgpool", lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (2, 3, 6, 6), True),
    ("avgpool-pad-exclude", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda: torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 7, 6), True),
    ("avgpool-ceil", lambda: nn.AvgPool2d(2, ceil_mode=True),
     lambda: torch.nn.AvgPool2d(2, ceil_mode=True), (1, 2, 5, 5), True),
    ("global-avg", lambda: nn.GlobalAvgPool2d(), lambda: torch.nn.AdaptiveAvgPool2d(1),
     (2, 3, 4, 5), True),
    ("batchnorm-train", lambda: nn.BatchNorm2d(3, dtype=np.float64),
     lambda: torch.nn.BatchNorm2d(3), (4, 3, 3, 2), True),
    ("batchnorm-eval", lambda: _trained_batch_norm(nn.BatchNorm2d(3, dtype=np.float64)),
     lambda: torch.nn.BatchNorm2d(3), (4, 3, 3, 2), False),
    ("batchnorm-no-affine", lambda: nn.BatchNorm2d(2, affine=False, momentum=None),
     lambda: torch.nn.BatchNorm2d(2, affine=False, momentum=None), (3, 2, 2, 2), True),
    ("relu", lambda: nn.ReLU(), lambda: torch.nn.ReLU(), (3, 7), True),
    ("tanh", lambda: nn.Tanh(), lambda: torch.nn.Tanh(), (3, 2, 2, 2), True),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid(), (3, 7), True),
    ("flatten", lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (2, 3, 2, 2), True),
    ("linear", lambda: nn.Linear(5, 4, generator=_generator()),
     lambda: torch.nn.Linear(5, 4), (3, 5), True),
    ("linear-nobias", lambda: nn.Linear(5, 2, bias=False, generator=_generator()),
     lambda: torch.nn.Linear(5, 2, bias=False), (3, 5), True),
]


def _trained_batch_norm(layer: nn.BatchNorm2d) -> nn.BatchNorm2d:
    """A batch norm whose running statistics and affine parameters are not the initial ones."""
    rng = np.random.default_rng(3)
    for _ in range(3):
        layer.forward(rng.standard_normal((4, layer.num_features, 3, 2)) * 2 + 1)
    layer.weight.data[...] = rng.uniform(0.5, 2, layer.num_features)
    layer.bias.data[...] = rng.standard_normal(layer.num_features)
    return layer


@pytest.mark.parametrize(("make", "make_twin", "shape", "training"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_backward_matches_finite_differences(make, make_twin, shape, training):
    """Each layer's backward pass equals central differences for its input and parameters."""
    layer = make().train(training)
    x = np.random.default_rng(1).standard_normal(shape)
    errors = nn.gradcheck(layer, x)
    assert set(errors) == {"input", *(name for name, _ in layer.named_parameters())}
    assert max(errors.values()) < FINITE_DIFFERENCES, errors


@pytest.mark.parametrize(("make", "make_twin", "shape", "training"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_forward_and_backward_match_torch(make, make_twin, shape, training):
    """Each layer's output and gradients equal torch.autograd's for the same weights (float64)."""
    layer = make().to(np.float64).train(training)
    twin = torch_twin(layer, make_twin()).train(training)
    x = np.random.default_rng(2).standard_normal(shape)
    errors = against_autograd(layer, twin, x)
    assert max(errors.values()) < AUTOGRAD, errors


def test_dropout_with_a_fixed_mask_matches_finite_differences_and_torch():
    """Dropout with an injected mask scales kept elements by 1/(1-p), forward and backward."""
    mask = np.random.default_rng(4).random((3, 6)) > 0.3
    layer = nn.Dropout(0.3)
    layer.use_mask(mask)
    errors = against_autograd(layer, MaskedDropout(mask, 0.3), np.ones((3, 6)))
    assert max(errors.values()) < AUTOGRAD
    layer.use_mask(mask)
    output = layer.forward(np.ones((3, 6)))
    np.testing.assert_allclose(output, mask / 0.7, rtol=1e-15)


def test_dropout_draws_from_its_generator_and_gradcheck_replays_it():
    """A drawn mask keeps about 1-p of the elements, and gradcheck replays it exactly."""
    layer = nn.Dropout(0.25, generator=np.random.default_rng(0))
    kept = np.mean(layer.forward(np.ones((200, 50))) != 0)
    assert abs(kept - 0.75) < 0.02
    errors = nn.gradcheck(layer, np.random.default_rng(1).standard_normal((4, 5)))
    assert errors["input"] < FINITE_DIFFERENCES


def test_batch_norm_running_statistics_follow_torch():
    """Running mean, unbiased running var and the batch count evolve as in torch over 5 batches."""
    for momentum in (0.1, None):
        layer = nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64)
        twin = torch.nn.BatchNorm2d(3, momentum=momentum).double()
        rng = np.random.default_rng(5)
        for _ in range(5):
            x = rng.standard_normal((4, 3, 2, 3)) * 3 + 2
            layer.forward(x)
            twin(torch.from_numpy(x))
        for key, value in twin.state_dict().items():
            np.testing.assert_allclose(layer.state_dict()[key], value.numpy(), rtol=1e-12)


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.integers(0, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    # Big enough that the window fits and reflect padding is allowed (padding < size).
    size = [draw(st.integers(d * (k - 1) + 1, 9)) for k, d in zip(kernel, dilation)]
    size = [max(n, padding + 1) for n in size]
    batch = draw(st.integers(1, 3))
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
               "padding_mode": mode}
    return (batch, in_channels, *size), in_channels, out_channels, kernel, options


@settings(max_examples=25)
@given(case=conv_case(), seed=st.integers(0, 2**16))
def test_conv2d_layer_matches_torch_on_drawn_shapes(case, seed):
    """Conv2d agrees with torch.nn.Conv2d (float64) for drawn shapes and options."""
    shape, in_channels, out_channels, kernel, options = case
    layer = nn.Conv2d(in_channels, out_channels, kernel, **options,
                      generator=np.random.default_rng(seed), dtype=np.float64)
    twin = torch_twin(layer, torch.nn.Conv2d(in_channels, out_channels, kernel, **options))
    x = np.random.default_rng(seed + 1).standard_normal(shape)
    assert max(against_autograd(layer, twin, x, seed).values()) < AUTOGRAD


@settings(max_examples=25)
@given(
    kind=st.sampled_from(["max", "avg"]),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    ceil_mode=st.booleans(),
    height=st.integers(4, 9),
    width=st.integers(4, 9),
    seed=st.integers(0, 2**16),
)
def test_pooling_layers_match_torch_on_drawn_shapes(
    kind, kernel, stride, padding, ceil_mode, height, width, seed
):
    """MaxPool2d and AvgPool2d agree with torch (float64) for drawn shapes and options."""
    padding = min(padding, kernel // 2)
    layer_class, twin_class = {
        "max": (nn.MaxPool2d, torch.nn.MaxPool2d), "avg": (nn.AvgPool2d, torch.nn.AvgPool2d)
    }[kind]
    layer = layer_class(kernel, stride, padding, ceil_mode=ceil_mode)
    twin = twin_class(kernel, stride, padding, ceil_mode=ceil_mode)
    x = np.random.default_rng(seed).standard_normal((2, 2, height, width))
    assert max(against_autograd(layer, twin, x, seed).values()) < AUTOGRAD


def test_gradcheck_catches_a_wrong_backward():
    """gradcheck reports a large error for a layer whose gradient is off by a factor of 2."""

    class WrongTanh(nn.Tanh):
        def backward(self, grad):
            return 2 * super().backward(grad)

    errors = nn.gradcheck(WrongTanh(), np.random.default_rng(0).standard_normal((2, 3)))
    assert errors["input"] > 0.4


def test_gradcheck_on_sampled_elements_of_a_model():
    """gradcheck with samples checks a few elements of each array of a whole model."""
    from cnnkit.arch import Architecture

    arch = Architecture("small", [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
        {"type": "batch_norm2d"}, {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
        {"type": "global_avg_pool2d"}, {"type": "flatten"},
        {"type": "linear", "out_features": "num_classes"},
    ])
    model = nn.build_model(arch, (2, 6, 6), 4, seed=1)
    errors = nn.gradcheck(model, np.random.default_rng(0).standard_normal((3, 2, 6, 6)),
                          samples=5)
    assert set(errors) == {"input", "0.weight", "0.bias", "1.weight", "1.bias", "6.weight",
                           "6.bias"}
    assert max(errors.values()) < FINITE_DIFFERENCES


def test_backward_without_input_gradient_accumulates_the_same_parameter_gradients():
    """Sequential.backward(input_grad=False) returns None and leaves every parameter the
    gradient a full backward pass gives (the first layer skips only its input's gradient)."""
    generator = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, generator=generator), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5, generator=generator),
    )
    x = generator.standard_normal((3, 2, 6, 6)).astype(np.float32)
    grad = generator.standard_normal((3, 5)).astype(np.float32)
    gradients = []
    for input_grad in (True, False):
        model.zero_grad()
        model(x)
        returned = model.backward(grad, input_grad=input_grad)
        assert (returned is None) == (not input_grad)
        gradients.append([parameter.grad.copy() for parameter in model.parameters()])
    for full, partial in zip(*gradients, strict=True):
        np.testing.assert_array_equal(full, partial)
