"""Model building, device choice and precision."""

from __future__ import annotations

import pytest
import torch

from cnnkit.arch import Architecture, load_architecture
from cnnkit.engines.model import autocast_dtype, build_model, choose_device, resolve_precision


def test_built_model_matches_a_hand_written_one():
    """With the same seed the built tutorial model computes what the torch.nn original does."""
    torch.manual_seed(0)
    model = build_model(load_architecture("tutorial"), (1, 28, 28), 10)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(3136, 1024), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(1024, 10),
    )
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model.eval()
    reference.eval()
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_other_layer_types_build():
    """Average pooling, tanh, sigmoid, strides and bias-free layers build and run."""
    arch = Architecture("x", [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "bias": False},
        {"type": "tanh"},
        {"type": "avg_pool2d", "kernel_size": 2, "stride": 1},
        {"type": "sigmoid"},
        {"type": "flatten"},
        {"type": "linear", "out_features": "num_classes", "bias": False},
    ])
    model = build_model(arch, (3, 17, 13), 5)
    assert model(torch.zeros(2, 3, 17, 13)).shape == (2, 5)
    assert model[0].bias is None and model[0].stride == (2, 2)


def test_choose_device():
    """'cpu' and 'auto' give devices; 'auto' is the CPU on a machine without accelerators."""
    assert choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert choose_device("auto").type in ("cpu", "mps")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x"])
def test_unknown_device_is_refused(name):
    """A device name PyTorch does not know is refused with the allowed names."""
    with pytest.raises(ValueError, match="device must be"):
        choose_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_refused():
    """Asking for CUDA on a machine without it is refused clearly."""
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        choose_device("cuda")


def test_device_of_wrong_type_is_refused():
    """The device must be a string."""
    with pytest.raises(TypeError):
        choose_device(0)


def test_precision_resolution_on_cpu():
    """Explicit precisions stay; auto gives bf16 or fp32 on the CPU; unknown ones are refused."""
    cpu = torch.device("cpu")
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("fp16", cpu) == "fp16"
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8", cpu)
    assert autocast_dtype("fp32") is None and autocast_dtype("bf16") is torch.bfloat16
