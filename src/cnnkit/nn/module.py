"""``Parameter``, ``Module`` and ``Sequential``: the frame every NumPy layer hangs on.

A module holds its parameters (:class:`Parameter`: a value and its gradient), its buffers (state
that is saved but not trained, such as batch norm's running statistics) and its sub-modules, as
attributes. The order in which they are assigned is the order of :meth:`Module.named_parameters`
and :meth:`Module.state_dict`, which follows PyTorch: a module's own parameters, then its buffers,
then its sub-modules, with names joined by dots (``"0.weight"``, ``"3.running_mean"``).

Each layer has ``forward(x)``, which keeps what its gradient needs, and ``backward(grad)``, which
takes dL/d(output), adds dL/d(parameter) to every parameter's ``grad`` and returns dL/d(input).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from cnnkit.errors import InvalidType, ShapeError, StateDictError

__all__ = ["Module", "Parameter", "Sequential"]


class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``grad`` is None until a backward pass reaches the parameter, and again after
    :meth:`Module.zero_grad` (PyTorch's ``set_to_none=True``).

    >>> p = Parameter(np.zeros(3, dtype=np.float32))
    >>> p
    Parameter(shape=(3,), dtype=float32)
    >>> p.accumulate(np.ones(3)); p.accumulate(np.ones(3)); p.grad
    array([2., 2., 2.], dtype=float32)
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``self.grad`` (a parameter used twice gets both contributions)."""
        if self.grad is None:
            self.grad = np.array(grad, dtype=self.data.dtype, copy=True)
        else:
            self.grad += grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of the NumPy layers and of :class:`Sequential`.

    Subclasses assign their parameters (:class:`Parameter`, or None for an absent bias) and
    sub-modules as attributes, and list the names of their buffers in ``_buffer_names``.
    """

    _buffer_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.training = True

    # --- the computation -----------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def backward_parameters(self, grad: np.ndarray) -> None:
        """Accumulate the parameters' gradients only, for a layer whose input needs none.

        Layers whose input gradient costs real work (a convolution) skip it.
        """
        self.backward(grad)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # --- parameters, buffers and sub-modules ---------------------------------------------------

    def _own(self, kind: type) -> Iterator[tuple[str, object]]:
        for name, value in vars(self).items():
            if isinstance(value, kind):
                yield name, value

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._own(Module)

    def modules(self) -> Iterator[Module]:
        """This module and every module below it, depth first."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs in PyTorch's order, such as ``("0.weight", ...)``."""
        for name, parameter in self._own(Parameter):
            yield prefix + name, parameter
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name in self._buffer_names:
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed and shaped as in PyTorch's state dict."""
        state: dict[str, np.ndarray] = {}
        self._collect_state("", state)
        return state

    def _collect_state(self, prefix: str, state: dict) -> None:
        # PyTorch's order: a module's parameters, then its buffers, then its children.
        for name, parameter in self._own(Parameter):
            state[prefix + name] = parameter.data.copy()
        for name in self._buffer_names:
            state[prefix + name] = np.array(getattr(self, name), copy=True)
        for name, child in self.named_children():
            child._collect_state(f"{prefix}{name}.", state)

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copy values into the parameters and buffers, keeping their dtypes.

        Arrays and PyTorch tensors (anything ``numpy.asarray`` takes) are accepted. Every key must
        be present with its shape, and no other key may be: otherwise
        :class:`~cnnkit.errors.StateDictError` names the key.
        """
        if not isinstance(state, Mapping):
            raise InvalidType(f"state must be a mapping of names to arrays, got {type(state)}")
        targets = self.state_dict()
        missing = [key for key in targets if key not in state]
        unexpected = [key for key in state if key not in targets]
        if missing or unexpected:
            raise StateDictError(
                f"state dict does not fit {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        values = {}
        for key, target in targets.items():
            value = np.asarray(_to_numpy(state[key]))
            if value.shape != target.shape:
                raise StateDictError(
                    f"state dict key {key!r} has shape {value.shape}, the model needs "
                    f"{target.shape}"
                )
            values[key] = value
        for key, value in values.items():
            owner, name = self._owner_of(key)
            current = getattr(owner, name)
            if isinstance(current, Parameter):
                current.data[...] = value
            else:
                current[...] = value

    def _owner_of(self, key: str) -> tuple[Module, str]:
        owner: Module = self
        *path, name = key.split(".")
        for part in path:
            owner = getattr(owner, part)
        return owner, name

    # --- modes, gradients, dtype ---------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout drops, batch norm uses batch statistics) here and below."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None, as PyTorch does by default)."""
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, dtype: object) -> Module:
        """Convert every floating parameter and buffer to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise InvalidType(f"dtype must be float32 or float64, got {dtype}")
        for module in self.modules():
            for _, parameter in module._own(Parameter):
                parameter.data = parameter.data.astype(dtype)
                parameter.grad = None
            for name in module._buffer_names:
                buffer = getattr(module, name)
                if buffer.dtype.kind == "f":
                    setattr(module, name, buffer.astype(dtype))
        return self

    # --- repr ----------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join([*lines, ")"])


def _to_numpy(value: object) -> object:
    """A PyTorch tensor as a NumPy array (without importing PyTorch); other values unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


class Sequential(Module):
    """Layers applied one after another; ``backward`` runs them in reverse.

    Sub-modules are named ``"0"``, ``"1"``, ... as in ``torch.nn.Sequential``. An input that does
    not fit a layer is refused with a :class:`~cnnkit.errors.ShapeError` that names the layer's
    index and type.

    >>> from cnnkit.nn import Flatten, ReLU
    >>> model = Sequential(Flatten(), ReLU())
    >>> model(np.array([[[-1.0, 2.0]]]))
    array([[0., 2.]])
    >>> model
    Sequential(
      (0): Flatten()
      (1): ReLU()
    )
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise InvalidType(f"layer {index} must be a cnnkit.nn Module, got {type(layer)}")
            setattr(self, str(index), layer)
        self._layers = list(layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> Module:
        return self._layers[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for index in range(len(self._layers)):
            x = self.forward_layer(index, x)
        return x

    def forward_layer(self, index: int, x: np.ndarray) -> np.ndarray:
        """Layer ``index``'s forward pass, naming the layer if the input does not fit it."""
        layer = self._layers[index]
        try:
            return layer.forward(x)
        except ShapeError as exc:
            raise ShapeError(f"layer {index} ({type(layer).__name__}): {exc}") from None

    def backward(self, grad: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """The layers' backward passes, last to first: the input's gradient.

        With ``input_grad=False`` (training, where the input is data) the first layer only
        accumulates its parameters' gradients (:meth:`Module.backward_parameters`) and None is
        returned.
        """
        for layer in reversed(self._layers[1:]):
            grad = layer.backward(grad)
        if not input_grad:
            self._layers[0].backward_parameters(grad)
            return None
        return self._layers[0].backward(grad)
