"""The NumPy engine against the PyTorch engine: same weights in, same logits and steps out.

Tolerances: logits of the same state dict to 1e-10 relative in float64; over 20 training steps
the losses and final weights to 1e-4 relative in float64 and 1e-3 in float32 (weights: the norm
of the difference over the norm of PyTorch's tensor). The tutorial CNN runs on 1x12x12 images,
batch 8, to keep the test short; the layers are those of 1x28x28.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit import nn
from cnnkit.arch import Architecture, load_architecture
from cnnkit.engines.model import build_model as build_torch_model

#: A spec with the types the tutorial lacks. The convolutions before batch norms have no
#: bias: its gradient would be zero up to rounding, which Adam turns into full-size steps whose
#: sign is the rounding's (in either engine).
BATCH_NORM_SPEC = Architecture("bn", [
    {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1, "bias": False},
    {"type": "batch_norm2d"},
    {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "groups": 2, "padding": 1,
     "padding_mode": "reflect", "bias": False},
    {"type": "batch_norm2d", "momentum": 0.2},
    {"type": "tanh"},
    {"type": "global_avg_pool2d"},
    {"type": "flatten"},
    {"type": "linear", "out_features": "num_classes"},
])

#: Every layer type once, for the state-dict round trips.
ALL_TYPES_SPEC = Architecture("all", [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "dilation": 1},
    {"type": "batch_norm2d", "affine": False},
    {"type": "sigmoid"},
    {"type": "avg_pool2d", "kernel_size": 2, "stride": 1, "ceil_mode": True},
    {"type": "batch_norm2d"},
    {"type": "max_pool2d", "kernel_size": 2, "padding": 1},
    {"type": "global_avg_pool2d"},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "out_features": 7},
    {"type": "relu"},
    {"type": "linear", "out_features": "num_classes", "bias": False},
])


def _torch_model_like(model: nn.Sequential, arch, input_shape, classes, dtype):
    twin = build_torch_model(arch, input_shape, classes).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return twin


@pytest.mark.parametrize(("arch", "input_shape"), [
    (load_architecture("tutorial"), (1, 12, 12)),
    (ALL_TYPES_SPEC, (3, 13, 11)),
    (BATCH_NORM_SPEC, (2, 12, 12)),
])
def test_state_dict_moves_between_engines_with_equal_logits(arch, input_shape):
    """A NumPy state dict loads into the PyTorch model (and back) and both give the same logits."""
    model = nn.build_model(arch, input_shape, 5, seed=3, dtype=np.float64)
    # Running statistics that are not the initial ones, so that the buffers matter.
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(2):
        model.forward(rng.standard_normal((4, *input_shape)) + 0.5)
    model.eval()
    twin = _torch_model_like(model, arch, input_shape, 5, np.float64).eval()
    assert list(twin.state_dict()) == list(model.state_dict())
    x = rng.standard_normal((3, *input_shape))
    expected = twin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-12)

    back = nn.build_model(arch, input_shape, 5, seed=99, dtype=np.float64).eval()
    back.load_state_dict(twin.state_dict())
    np.testing.assert_allclose(back.forward(x), expected, rtol=1e-10, atol=1e-12)
    for key, value in twin.state_dict().items():
        assert back.state_dict()[key].dtype == value.numpy().dtype, key


class _Masked(torch.nn.Module):
    """Replays the keep-masks the NumPy model's dropout layers get."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p, self.mask = p, None

    def forward(self, x):
        return x * (self.mask.to(x.dtype) / (1 - self.p))


def _optimizers(name, numpy_parameters, torch_parameters):
    choices = {
        "adam": (nn.Adam, torch.optim.Adam, {"lr": 1e-3}),
        "sgd-momentum": (nn.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
        "sgd-nesterov": (nn.SGD, torch.optim.SGD,
                         {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    }
    numpy_class, torch_class, options = choices[name]
    return numpy_class(numpy_parameters, **options), torch_class(torch_parameters, **options)


def _relative(actual, expected) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize(("arch_name", "optimizer", "dtype"), [
    ("tutorial", "adam", np.float64),
    ("tutorial", "adam", np.float32),
    ("tutorial", "sgd-momentum", np.float32),
    ("tutorial", "sgd-nesterov", np.float64),
    ("bn", "adam", np.float64),
    ("bn", "adam", np.float32),
    ("bn", "sgd-momentum", np.float32),
])
def test_twenty_training_steps_match_pytorch(arch_name, optimizer, dtype):
    """From the same weights on the same batches (same dropout masks), 20 steps of the NumPy
    engine give PyTorch's losses, weights and batch-norm statistics."""
    tolerance = 1e-4 if dtype == np.float64 else 1e-3
    arch, input_shape = {
        "tutorial": (load_architecture("tutorial"), (1, 12, 12)),
        "bn": (BATCH_NORM_SPEC, (2, 12, 12)),
    }[arch_name]
    model = nn.build_model(arch, input_shape, 10, seed=0, dtype=dtype)
    twin = _torch_model_like(model, arch, input_shape, 10, dtype)
    dropouts = [(index, layer.p) for index, layer in enumerate(model) if
                isinstance(layer, nn.Dropout)]
    for index, p in dropouts:
        twin[index] = _Masked(p)
    numpy_optimizer, torch_optimizer = _optimizers(
        optimizer, model.parameters(), twin.parameters()
    )
    rng = np.random.default_rng(1)
    for step in range(20):
        images = rng.standard_normal((8, *input_shape)).astype(dtype)
        labels = rng.integers(0, 10, 8)
        for index, p in dropouts:
            mask = rng.random((8, model[index - 2].out_features)) >= p
            model[index].use_mask(mask)
            twin[index].mask = torch.from_numpy(mask)
        numpy_optimizer.zero_grad()
        loss, grad = nn.cross_entropy(model.forward(images), labels)
        model.backward(grad)
        numpy_optimizer.step()

        torch_optimizer.zero_grad()
        torch_loss = F.cross_entropy(twin(torch.from_numpy(images)), torch.from_numpy(labels))
        torch_loss.backward()
        torch_optimizer.step()
        assert abs(loss - torch_loss.item()) <= tolerance * abs(torch_loss.item()), step
    for key, value in twin.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert int(model.state_dict()[key]) == int(value) == 20
        else:
            assert _relative(model.state_dict()[key], value.numpy()) < tolerance, key
