"""The NumPy engine: layers, losses and optimizers that train a CNN without PyTorch.

Everything here is NumPy, readable from input to update, and checked number for number against
PyTorch (``tests/nn``). The pieces have PyTorch's names, defaults and state-dict keys:

- :class:`Module`, :class:`Parameter`, :class:`Sequential`; the layers :class:`Conv2d`,
  :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`GlobalAvgPool2d`, :class:`BatchNorm2d`,
  :class:`ReLU`, :class:`Tanh`, :class:`Sigmoid`, :class:`Flatten`, :class:`Linear`,
  :class:`Dropout`, each with ``forward`` and ``backward``;
- :func:`cross_entropy` (loss and gradient in one call);
- the optimizers :class:`SGD`, :class:`Adam`, :class:`AdamW`;
- :func:`build_model`, the model of an architecture spec (:mod:`cnnkit.arch`);
- :func:`trace_batch` and :func:`gradcheck` for looking inside.

A training step:

>>> import numpy as np
>>> from cnnkit.arch import load_architecture
>>> model = build_model(load_architecture("tutorial"), (1, 28, 28), seed=0)
>>> optimizer = Adam(model.parameters(), lr=1e-3)
>>> images, labels = np.zeros((8, 1, 28, 28), np.float32), np.arange(8)
>>> optimizer.zero_grad()
>>> loss, grad = cross_entropy(model(images), labels)
>>> _ = model.backward(grad)
>>> optimizer.step()
>>> round(loss, 2)
2.3
"""

from cnnkit.nn.build import build_model
from cnnkit.nn.inspect import BatchTrace, gradcheck, trace_batch
from cnnkit.nn.layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnnkit.nn.loss import cross_entropy
from cnnkit.nn.module import Module, Parameter, Sequential
from cnnkit.nn.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    from_torch_optimizer_state,
    to_torch_optimizer_state,
)

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2d",
    "BatchNorm2d",
    "BatchTrace",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "Linear",
    "MaxPool2d",
    "Module",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "build_model",
    "cross_entropy",
    "from_torch_optimizer_state",
    "gradcheck",
    "to_torch_optimizer_state",
    "trace_batch",
]
