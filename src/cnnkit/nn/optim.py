"""Optimizers ``SGD``, ``Adam`` and ``AdamW``, step for step those of ``torch.optim``.

Each update is written as in PyTorch's reference (single-tensor) implementation, operation by
operation, so that float32 results agree to rounding. The learning rate of a run that follows a
schedule is set between steps through ``optimizer.param_groups[0]["lr"]``, as in PyTorch.

State dicts have PyTorch's layout with NumPy arrays in place of tensors::

    {"state": {0: {"step": array(3., dtype=float32), "exp_avg": ..., "exp_avg_sq": ...}, ...},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1, ...]}]}

``state`` is keyed by the parameter's position in ``parameters()``; a parameter that has not
been stepped yet has no entry. SGD keeps ``momentum_buffer`` (only with momentum), Adam and AdamW
``step`` (a float32 scalar), ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``,
``max_exp_avg_sq``. :func:`to_torch_optimizer_state` and :func:`from_torch_optimizer_state`
convert to and from ``torch.optim``'s state dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from cnnkit.errors import InvalidArgument, InvalidType, StateDictError
from cnnkit.nn.module import Parameter, _to_numpy

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "from_torch_optimizer_state",
    "to_torch_optimizer_state",
]


def _check_number(value: object, name: str, *, below_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or (
        below_one and not value < 1
    ):
        allowed = "a number in [0, 1)" if below_one else "a number >= 0"
        raise InvalidArgument(f"{name} must be {allowed}, got {value!r}")
    return float(value)


class Optimizer:
    """What every optimizer shares: parameter groups, per-parameter state, state dicts."""

    #: Per-parameter state entries, in the order PyTorch lists them.
    _state_keys: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Parameter], defaults: dict) -> None:
        params = list(params)
        if not params:
            raise InvalidArgument("optimizer got an empty parameter list")
        for index, parameter in enumerate(params):
            if not isinstance(parameter, Parameter):
                raise InvalidType(
                    f"parameter {index} must be a cnnkit.nn.Parameter, got {type(parameter)}"
                )
        self.param_groups = [{**defaults, "params": params}]
        self.state: dict[int, dict[str, np.ndarray]] = {}

    def _parameters(self) -> list[Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None)."""
        for parameter in self._parameters():
            parameter.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        index = 0
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    self._update(parameter, self.state.setdefault(index, {}), group)
                index += 1

    def _update(self, parameter: Parameter, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define its update")

    def state_dict(self) -> dict:
        """Copies of the state, in PyTorch's layout with NumPy arrays (see the module's notes)."""
        state = {
            index: {key: np.array(value, copy=True) for key, value in entries.items()}
            for index, entries in self.state.items()
        }
        groups, start = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append(
                {**{k: v for k, v in group.items() if k != "params"},
                 "params": list(range(start, start + count))}
            )
            start += count
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Take over a state saved by :meth:`state_dict` (or converted from PyTorch's).

        Hyper-parameters come from the saved groups; every array must have its parameter's shape,
        or :class:`~cnnkit.errors.StateDictError` names the entry.
        """
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise StateDictError("an optimizer state dict has exactly the keys 'state' and "
                                 f"'param_groups', got {list(state_dict)}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
            len(saved["params"]) != len(group["params"])
            for saved, group in zip(saved_groups, self.param_groups)
        ):
            raise StateDictError(
                "the saved optimizer has parameter groups of sizes "
                f"{[len(g['params']) for g in saved_groups]}, this one "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        parameters = self._parameters()
        state: dict[int, dict[str, np.ndarray]] = {}
        for index, entries in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(parameters):
                raise StateDictError(f"optimizer state for parameter {index}, which is not there")
            unknown = sorted(set(entries) - set(self._state_keys))
            if unknown:
                raise StateDictError(
                    f"optimizer state for parameter {index} has unexpected keys {unknown}; "
                    f"{type(self).__name__} keeps {list(self._state_keys)}"
                )
            state[index] = {}
            for key, value in entries.items():
                array = np.asarray(_to_numpy(value))
                if key == "step":
                    state[index][key] = array.astype(np.float32)
                    continue
                if array.shape != parameters[index].shape:
                    raise StateDictError(
                        f"optimizer state {key!r} of parameter {index} has shape {array.shape}, "
                        f"the parameter {parameters[index].shape}"
                    )
                state[index][key] = array.astype(parameters[index].data.dtype)
        for saved, group in zip(saved_groups, self.param_groups):
            for key in group:
                if key != "params" and key in saved:
                    value = saved[key]
                    group[key] = tuple(value) if isinstance(value, (list, tuple)) else value
        self.state = state


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    As ``torch.optim.SGD``: ``g = grad + weight_decay * p``; with momentum the buffer starts as
    ``g`` and then becomes ``momentum * buf + (1 - dampening) * g``, and the step uses
    ``g + momentum * buf`` (Nesterov) or ``buf``; ``p -= lr * step``.

    >>> p = Parameter(np.array([1.0]))
    >>> p.grad = np.array([2.0])
    >>> SGD([p], lr=0.1).step()
    >>> p.data
    array([0.8])
    """

    _state_keys = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = {
            "lr": _check_number(lr, "lr"),
            "momentum": _check_number(momentum, "momentum"),
            "dampening": _check_number(dampening, "dampening"),
            "weight_decay": _check_number(weight_decay, "weight_decay"),
            "nesterov": bool(nesterov),
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InvalidArgument(
                f"nesterov needs momentum > 0 and dampening 0, got momentum={momentum!r} and "
                f"dampening={dampening!r}"
            )
        super().__init__(params, defaults)

    def _update(self, parameter: Parameter, state: dict, group: dict) -> None:
        grad = parameter.grad
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * parameter.data
        momentum = group["momentum"]
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        parameter.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (``weight_decay`` adds ``weight_decay * p`` to the gradient).

    Per step ``t``: ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g*g``, then
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``; ``amsgrad`` uses the
    running maximum of ``v``.

    >>> p = Parameter(np.array([1.0]))
    >>> p.grad = np.array([5.0])
    >>> Adam([p], lr=0.1).step()
    >>> p.data.round(6)
    array([0.9])
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InvalidArgument(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        defaults = {
            "lr": _check_number(lr, "lr"),
            "betas": tuple(_check_number(b, "betas", below_one=True) for b in betas),
            "eps": _check_number(eps, "eps"),
            "weight_decay": _check_number(weight_decay, "weight_decay"),
            "amsgrad": bool(amsgrad),
        }
        super().__init__(params, defaults)

    def _update(self, parameter: Parameter, state: dict, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, data, grad = group["weight_decay"], parameter.data, parameter.grad
        if not state:
            state["step"] = np.array(0.0, dtype=np.float32)
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(data)
        state["step"] += 1
        step = float(state["step"])
        if weight_decay and self._decoupled:
            data *= 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # One scratch array holds every intermediate in turn (a fresh array per operation costs
        # more than the arithmetic for the large layers); the operations are unchanged.
        scratch = np.subtract(grad, exp_avg)
        scratch *= 1 - beta1
        exp_avg += scratch  # torch's lerp
        exp_avg_sq *= beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq += scratch
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            denom = np.sqrt(state["max_exp_avg_sq"], out=scratch)
        else:
            denom = np.sqrt(exp_avg_sq, out=scratch)
        denom /= bias_correction2_sqrt
        denom += eps
        np.divide(exp_avg, denom, out=denom)
        denom *= step_size
        data -= denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: ``p *= 1 - lr * weight_decay``
    before the Adam step (default ``weight_decay=0.01``).

    >>> p = Parameter(np.array([1.0]))
    >>> p.grad = np.array([0.0])
    >>> AdamW([p], lr=0.1, weight_decay=0.5).step()
    >>> p.data
    array([0.95])
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


#: Group keys of torch.optim that cnnkit's optimizers do not have, with the only value they take.
_TORCH_ONLY_GROUP_KEYS = {
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": None,
}


def to_torch_optimizer_state(state_dict: Mapping, optimizer: Optimizer | None = None) -> dict:
    """A cnnkit optimizer state dict as one ``torch.optim``'s ``load_state_dict`` takes.

    Arrays become tensors and the group keys PyTorch has but cnnkit does not get their default
    values. Pass the cnnkit ``optimizer`` that the state came from to mark AdamW's decoupled
    weight decay (``decoupled_weight_decay``), which PyTorch records in the group. PyTorch is
    imported here.
    """
    import torch

    state = {
        index: {key: torch.from_numpy(np.array(value, copy=True)) for key, value in entries.items()}
        for index, entries in state_dict["state"].items()
    }
    groups = []
    for group in state_dict["param_groups"]:
        converted = {**_TORCH_ONLY_GROUP_KEYS, **group, "params": list(group["params"])}
        if "betas" in converted:
            converted["betas"] = tuple(converted["betas"])
            converted["decoupled_weight_decay"] = isinstance(optimizer, AdamW)
        groups.append(converted)
    return {"state": state, "param_groups": groups}


def from_torch_optimizer_state(state_dict: Mapping) -> dict:
    """A ``torch.optim`` SGD/Adam/AdamW state dict in cnnkit's layout (tensors as arrays).

    Group keys that only PyTorch has are dropped; a value that cnnkit's optimizers cannot follow
    (``maximize=True``) is refused. PyTorch itself is not imported.
    """
    state = {
        int(index): {key: np.array(_to_numpy(value)) for key, value in entries.items()}
        for index, entries in state_dict["state"].items()
    }
    groups = []
    for group in state_dict["param_groups"]:
        if group.get("maximize", False):
            raise StateDictError("the saved optimizer maximizes (maximize=True); cnnkit's do not")
        groups.append({
            key: value for key, value in group.items()
            if key not in _TORCH_ONLY_GROUP_KEYS and key != "decoupled_weight_decay"
        })
    return {"state": state, "param_groups": groups}
