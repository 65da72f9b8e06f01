"""The NumPy model of an architecture spec, built from the layer registry's description."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnkit.arch import Architecture, trace
from cnnkit.layers import LAYER_TYPES, LayerType
from cnnkit.nn import layers
from cnnkit.nn.module import Module, Sequential

__all__ = ["build_layer", "build_model"]


def build_layer(
    layer_type: LayerType, arguments: dict, *, generator: np.random.Generator, dtype: object
) -> Module:
    """The :mod:`cnnkit.nn` layer that ``layer_type`` describes, initialised from ``generator``
    in ``dtype`` (each layer takes the keywords its ``factory`` names).

    >>> from cnnkit.layers import LAYER_TYPES
    >>> build_layer(LAYER_TYPES["dropout"], {"p": 0.25},
    ...             generator=np.random.default_rng(0), dtype=np.float32)
    Dropout(p=0.25)
    """
    factory = {"generator": generator, "dtype": dtype}
    keywords = {name: factory[name] for name in layer_type.factory}
    return getattr(layers, layer_type.module)(**arguments, **keywords)


def build_model(
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int = 10,
    *,
    seed: int | np.random.Generator | None = 0,
    dtype: object = np.float32,
) -> Sequential:
    """The :mod:`cnnkit.nn` model of ``arch`` for inputs of ``input_shape`` (C, H, W).

    The counterpart of :func:`cnnkit.engines.model.build_model`: the same layers with the same
    parameter names and shapes, so state dicts move between the two. Every layer is built by
    :func:`build_layer` from its entry in :data:`cnnkit.layers.LAYER_TYPES`. Weights get
    PyTorch's default initialisation drawn from ``numpy.random.default_rng(seed)``, which also
    draws the dropout masks.

    Examples
    --------
    >>> from cnnkit.arch import load_architecture
    >>> model = build_model(load_architecture("tutorial"), (1, 28, 28))
    >>> sum(p.data.size for p in model.parameters())
    3274634
    >>> list(model.state_dict())[:3]
    ['0.weight', '0.bias', '3.weight']
    """
    generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rows = trace(arch, input_shape, num_classes)
    return Sequential(
        *(
            build_layer(LAYER_TYPES[row.type], row.arguments, generator=generator, dtype=dtype)
            for row in rows
        )
    )
