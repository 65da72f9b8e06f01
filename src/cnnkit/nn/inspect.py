"""Looking inside the NumPy engine: every layer's numbers for one batch, and gradient checks."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from cnnkit.errors import InvalidType
from cnnkit.nn.layers import Dropout
from cnnkit.nn.loss import cross_entropy
from cnnkit.nn.module import Module, Sequential

__all__ = ["BatchTrace", "gradcheck", "trace_batch"]


@dataclass(frozen=True)
class BatchTrace:
    """One batch through a model and back.

    ``outputs[name]`` is the output of the layer ``name`` (``"0"``, ``"1"``, ... as in the state
    dict; ``"input"`` is the batch itself) and ``gradients[name]`` is dL/d(that output).
    ``parameter_gradients`` holds dL/d(parameter) under the state-dict names, ``types`` each
    layer's class name.
    """

    loss: float
    outputs: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]
    parameter_gradients: dict[str, np.ndarray]
    types: dict[str, str]

    def __str__(self) -> str:
        lines = [f"{'layer':<18} {'output':<16} {'mean |output|':>14} {'mean |grad|':>12}"]
        for name, output in self.outputs.items():
            label = name if name == "input" else f"{name} {self.types[name]}"
            shape = "x".join(str(n) for n in output.shape)
            grad = np.abs(self.gradients[name]).mean()
            lines.append(f"{label:<18} {shape:<16} {np.abs(output).mean():>14.4g} {grad:>12.4g}")
        return "\n".join([*lines, f"loss {self.loss:.6g}"])


def trace_batch(
    model: Sequential, images: np.ndarray, labels: np.ndarray, *, label_smoothing: float = 0.0
) -> BatchTrace:
    """Run one batch forward, take the mean cross-entropy, and run it back, keeping everything.

    The model's gradients are replaced by this batch's (it does not take an optimizer step).

    Examples
    --------
    >>> from cnnkit.arch import Architecture
    >>> from cnnkit.nn import build_model
    >>> arch = Architecture("tiny", [
    ...     {"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "relu"},
    ...     {"type": "flatten"}, {"type": "linear", "out_features": "num_classes"}])
    >>> model = build_model(arch, (1, 5, 5), 3, dtype=np.float64)
    >>> result = trace_batch(model, np.ones((4, 1, 5, 5)), np.array([0, 1, 2, 0]))
    >>> result.outputs["2"].shape, result.gradients["0"].shape, sorted(result.parameter_gradients)
    ((4, 18), (4, 2, 3, 3), ['0.bias', '0.weight', '3.bias', '3.weight'])
    """
    if not isinstance(model, Sequential):
        raise InvalidType(f"model must be a cnnkit.nn.Sequential, got {type(model).__name__}")
    model.zero_grad()
    outputs = {"input": np.asarray(images)}
    types = {}
    x = outputs["input"]
    for name, layer in model.named_children():
        x = model.forward_layer(int(name), x)
        outputs[name], types[name] = x, type(layer).__name__
    loss, grad = cross_entropy(x, labels, label_smoothing=label_smoothing)
    gradients = {}
    for name, layer in reversed(list(model.named_children())):
        gradients[name] = grad
        grad = layer.backward(grad)
    gradients["input"] = grad
    return BatchTrace(
        loss,
        outputs,
        {name: gradients[name] for name in outputs},
        {name: p.grad for name, p in model.named_parameters() if p.grad is not None},
        types,
    )


def _relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    # At least 1 in the denominator: a gradient that is exactly zero (a bias before batch norm)
    # meets finite differences that are rounding noise, which must not count as 100% off.
    scale = max(1.0, np.abs(analytic).max(), np.abs(numeric).max())
    return float(np.abs(analytic - numeric).max() / scale)


def gradcheck(
    module: Module,
    x: np.ndarray,
    *,
    step: float = 1e-6,
    samples: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The worst relative error of ``module``'s backward pass against central differences.

    A float64 copy of ``module`` computes ``L = sum(forward(x) * R)`` for a fixed random ``R``;
    its ``backward(R)`` gives dL/dx and dL/d(parameter), and each element ``e`` is compared with
    ``(L(e + step) - L(e - step)) / (2 * step)``. The error of an array is
    ``max |analytic - numeric| / max(1, |analytic|, |numeric|)`` (maxima over its elements), so
    about 1e-8 or less means the backward pass is right. Dropout replays the same mask in every
    evaluation; the module itself is left untouched.

    Parameters
    ----------
    module : Module
        A layer or a model, in the mode (train or eval) to check.
    x : array
        An input batch (use small shapes: each element costs two forward passes).
    step : float
        The finite-difference step.
    samples : int, optional
        Check only this many randomly chosen elements of each array (all by default).
    seed : int
        Seeds ``R`` and the choice of samples.

    Returns
    -------
    dict
        ``{"input": error, "<parameter name>": error, ...}``.

    Examples
    --------
    >>> from cnnkit.nn import Conv2d
    >>> layer = Conv2d(2, 3, 3, stride=2, padding=1, generator=np.random.default_rng(0))
    >>> errors = gradcheck(layer, np.random.default_rng(1).standard_normal((2, 2, 5, 5)))
    >>> sorted(errors), max(errors.values()) < 1e-8
    (['bias', 'input', 'weight'], True)
    """
    rng = np.random.default_rng(seed)
    module = copy.deepcopy(module).to(np.float64)
    x = np.array(x, dtype=np.float64)
    dropouts = [m for m in module.modules() if isinstance(m, Dropout)]
    saved = [m.generator.bit_generator.state for m in dropouts]

    def forward() -> np.ndarray:
        for layer, state in zip(dropouts, saved):
            layer.generator.bit_generator.state = state
        return module.forward(x)

    weights = rng.standard_normal(forward().shape)

    def loss() -> float:
        return float(np.sum(forward() * weights))

    module.zero_grad()
    forward()
    analytic = {"input": module.backward(weights)}
    analytic.update({name: p.grad for name, p in module.named_parameters()})
    arrays = {"input": x, **{name: p.data for name, p in module.named_parameters()}}
    errors = {}
    for name, array in arrays.items():
        flat = array.reshape(-1)
        chosen = np.arange(flat.size)
        if samples is not None and samples < flat.size:
            chosen = rng.choice(flat.size, size=samples, replace=False)
        numeric = np.empty(len(chosen))
        for position, element in enumerate(chosen):
            saved_value = flat[element]
            flat[element] = saved_value + step
            plus = loss()
            flat[element] = saved_value - step
            minus = loss()
            flat[element] = saved_value
            numeric[position] = (plus - minus) / (2 * step)
        errors[name] = _relative_error(analytic[name].reshape(-1)[chosen], numeric)
    return errors
