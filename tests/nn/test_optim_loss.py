"""Optimizers, loss and schedule against torch.optim, torch.nn.functional and the PyTorch engine.

Tolerances: optimizer trajectories over 50 steps to 1e-12 relative in float64 and 1e-5 in
float32; cross-entropy loss and gradient to 1e-12 relative (float64); the schedule exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit import nn
from cnnkit.errors import StateDictError
from cnnkit.schedule import lr_at

OPTIMIZERS = [
    ("sgd", nn.SGD, torch.optim.SGD, {"lr": 0.1}),
    ("sgd-momentum-dampening", nn.SGD, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("sgd-nesterov", nn.SGD, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("adam", nn.Adam, torch.optim.Adam, {"lr": 0.01}),
    ("adam-decay-amsgrad", nn.Adam, torch.optim.Adam,
     {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", nn.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    ("adamw-amsgrad", nn.AdamW, torch.optim.AdamW,
     {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
]


def _pair(numpy_class, torch_class, options, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(dtype) for shape in [(3, 4), (5,), (2, 1, 3)]]
    ours = [nn.Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    return ours, numpy_class(ours, **options), theirs, torch_class(theirs, **options)


def _set_gradients(ours, theirs, rng, dtype):
    for mine, their in zip(ours, theirs):
        grad = rng.standard_normal(mine.shape).astype(dtype)
        mine.grad = grad.copy()
        their.grad = torch.from_numpy(grad.copy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "numpy_class", "torch_class", "options"), OPTIMIZERS,
                         ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_follows_torch_for_50_steps(name, numpy_class, torch_class, options, dtype):
    """Each optimizer's parameters equal torch.optim's after every one of 50 steps."""
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    ours, optimizer, theirs, reference = _pair(numpy_class, torch_class, options, dtype)
    rng = np.random.default_rng(1)
    for step in range(50):
        if step == 25:  # a schedule changes the rate between steps
            optimizer.param_groups[0]["lr"] /= 2
            reference.param_groups[0]["lr"] /= 2
        _set_gradients(ours, theirs, rng, dtype)
        optimizer.step()
        reference.step()
        for mine, their in zip(ours, theirs):
            np.testing.assert_allclose(mine.data, their.detach().numpy(), rtol=tolerance,
                                       atol=tolerance)


@pytest.mark.parametrize(("name", "numpy_class", "torch_class", "options"), OPTIMIZERS,
                         ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_state_moves_to_torch_and_back(name, numpy_class, torch_class, options):
    """A state dict converted to torch (and one converted back) continues the same trajectory."""
    ours, optimizer, theirs, reference = _pair(numpy_class, torch_class, options, np.float64)
    rng = np.random.default_rng(2)
    for _ in range(5):
        _set_gradients(ours, theirs, rng, np.float64)
        optimizer.step()
    for mine, their in zip(ours, theirs):
        their.data.copy_(torch.from_numpy(mine.data))
    reference.load_state_dict(nn.to_torch_optimizer_state(optimizer.state_dict(), optimizer))
    assert reference.state_dict()["param_groups"][0]["lr"] == options["lr"]
    restored = numpy_class([nn.Parameter(p.data.copy()) for p in ours], lr=1.0)
    restored.load_state_dict(nn.from_torch_optimizer_state(reference.state_dict()))
    restored_parameters = restored.param_groups[0]["params"]
    for _ in range(5):
        _set_gradients(ours, theirs, rng, np.float64)
        for mine, copy in zip(ours, restored_parameters):
            copy.grad = mine.grad.copy()
        optimizer.step()
        reference.step()
        restored.step()
    for mine, their, copy in zip(ours, theirs, restored_parameters):
        np.testing.assert_allclose(their.detach().numpy(), mine.data, rtol=1e-12)
        np.testing.assert_allclose(copy.data, mine.data, rtol=1e-12)


def test_optimizer_state_dict_is_plain_arrays_and_refuses_misfits():
    """The state holds NumPy arrays only; a misshapen or unknown entry is refused by name."""
    parameter = nn.Parameter(np.zeros((2, 3)))
    parameter.grad = np.ones((2, 3))
    optimizer = nn.Adam([parameter])
    optimizer.step()
    state = optimizer.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state["state"][0].values())
    assert state["state"][0]["step"] == 1 and state["param_groups"][0]["params"] == [0]
    state["state"][0]["exp_avg"] = np.zeros(4)
    with pytest.raises(StateDictError, match="'exp_avg' of parameter 0 has shape"):
        optimizer.load_state_dict(state)
    state["state"][0] = {"velocity": np.zeros((2, 3))}
    with pytest.raises(StateDictError, match="velocity"):
        optimizer.load_state_dict(state)


@pytest.mark.parametrize(("options", "message"), [
    ({"lr": -1.0}, "lr must be a number >= 0"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov needs momentum > 0"),
])
def test_bad_optimizer_arguments_are_refused(options, message):
    """Invalid hyper-parameters are refused with the argument named."""
    with pytest.raises(ValueError, match=message):
        nn.SGD([nn.Parameter(np.zeros(1))], **options)
    with pytest.raises(ValueError, match="betas"):
        nn.Adam([nn.Parameter(np.zeros(1))], betas=(0.9, 1.0))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_torch(reduction, label_smoothing):
    """Loss and gradient equal torch's cross_entropy, label smoothing and reductions included."""
    rng = np.random.default_rng(3)
    logits, target = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    loss, grad = nn.cross_entropy(logits, target, reduction=reduction,
                                  label_smoothing=label_smoothing)
    logits_t = torch.from_numpy(logits).requires_grad_(True)
    expected = F.cross_entropy(logits_t, torch.from_numpy(target), reduction=reduction,
                               label_smoothing=label_smoothing)
    expected.backward()
    assert math.isclose(loss, expected.item(), rel_tol=1e-12)
    np.testing.assert_allclose(grad, logits_t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    """Logits of ±1e4 in float32 give torch's finite loss and gradient, without overflow."""
    logits = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]], dtype=np.float32)
    target = np.array([1, 2])
    loss, grad = nn.cross_entropy(logits, target, label_smoothing=0.2)
    logits_t = torch.from_numpy(logits).requires_grad_(True)
    expected = F.cross_entropy(logits_t, torch.from_numpy(target), label_smoothing=0.2)
    expected.backward()
    assert math.isclose(loss, expected.item(), rel_tol=1e-6)
    np.testing.assert_allclose(grad, logits_t.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert grad.dtype == np.float32


def test_cross_entropy_refuses_bad_targets():
    """Targets out of range, of the wrong dtype or shape are refused with what was expected."""
    with pytest.raises(ValueError, match=r"class indices in 0..2"):
        nn.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        nn.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"logits of shape \(N, K\)"):
        nn.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_lr_at_follows_the_formula_step_by_step():
    """lr_at rises linearly from lr/10 over the warm-up, then stays or follows half a cosine."""
    import math

    for schedule in ("constant", "cosine"):
        for warmup in (0.0, 0.5, 2.0):
            warm = round(warmup * 7)
            for step in range(0, 4 * 7 + 1):
                if step < warm:
                    expected = 3e-3 * (0.1 + 0.9 * step / warm)
                elif schedule == "cosine":
                    progress = (step - warm) / (4 * 7 - warm)
                    expected = 3e-3 * 0.5 * (1 + math.cos(math.pi * progress))
                else:
                    expected = 3e-3
                assert lr_at(step, 7, base_lr=3e-3, epochs=4, warmup_epochs=warmup,
                             schedule=schedule) == pytest.approx(expected, rel=1e-12, abs=1e-15)
