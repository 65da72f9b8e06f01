"""Running a cnnkit.nn layer and its torch.nn twin on the same numbers."""

from __future__ import annotations

import numpy as np
import torch


def torch_twin(layer, twin: torch.nn.Module) -> torch.nn.Module:
    """``twin`` in float64 holding ``layer``'s state dict."""
    twin = twin.double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return twin


def max_relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| (0 when both are zero)."""
    scale = float(np.abs(expected).max()) if np.size(expected) else 0.0
    difference = float(np.abs(actual - expected).max()) if np.size(expected) else 0.0
    return 0.0 if scale == 0 else difference / scale


def against_autograd(layer, twin: torch.nn.Module, x: np.ndarray, seed: int = 0) -> dict:
    """Relative errors of output, input gradient and parameter gradients against torch.autograd.

    Both run in float64 on ``x`` with the same random output gradient; ``twin`` must be in the
    same mode (train or eval) as ``layer``.
    """
    x = np.asarray(x, dtype=np.float64)
    output = layer.forward(x)
    grad = np.random.default_rng(seed).standard_normal(output.shape)
    layer.zero_grad()
    grad_input = layer.backward(grad)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    output_t = twin(x_t)
    output_t.backward(torch.from_numpy(grad))
    errors = {
        "output": max_relative_error(output, output_t.detach().numpy()),
        "input": max_relative_error(grad_input, x_t.grad.numpy()),
    }
    twin_parameters = dict(twin.named_parameters())
    for name, parameter in layer.named_parameters():
        errors[name] = max_relative_error(parameter.grad, twin_parameters[name].grad.numpy())
    return errors
