"""PyTorch models from architecture specs, and the choice of device and precision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit._validate import check_choice
from cnnkit.arch import Architecture, trace
from cnnkit.engines.config import PRECISIONS
from cnnkit.errors import InvalidArgument, InvalidType
from cnnkit.layers import LAYER_TYPES, LayerType

__all__ = [
    "PRECISIONS",
    "autocast_dtype",
    "build_layer",
    "build_model",
    "choose_device",
    "resolve_precision",
]


def build_layer(layer_type: LayerType, arguments: dict) -> nn.Module:
    """The ``torch.nn`` module that ``layer_type`` describes (PyTorch's default initialisation,
    from its global RNG).

    ``torch.nn`` has no global average pool; the adaptive one with output size 1 computes it.

    >>> from cnnkit.layers import LAYER_TYPES
    >>> build_layer(LAYER_TYPES["global_avg_pool2d"], {})
    AdaptiveAvgPool2d(output_size=1)
    """
    if layer_type.module == "GlobalAvgPool2d":
        return nn.AdaptiveAvgPool2d(1)
    return getattr(nn, layer_type.module)(**arguments)


def build_model(
    arch: Architecture, input_shape: Sequence[int], num_classes: int = 10
) -> nn.Sequential:
    """The PyTorch model of ``arch`` for inputs of ``input_shape`` (C, H, W).

    Every layer is built by :func:`build_layer` from its entry in
    :data:`cnnkit.layers.LAYER_TYPES`; input channels and the input size of every linear layer
    are derived by tracing the shapes (:func:`cnnkit.arch.trace`), which also refuses a spec
    whose shapes do not fit. Weights are PyTorch's default initialisation drawn from the global
    RNG (seed it first).

    Examples
    --------
    >>> from cnnkit.arch import load_architecture
    >>> model = build_model(load_architecture("tutorial"), (1, 28, 28))
    >>> sum(p.numel() for p in model.parameters())
    3274634
    """
    rows = trace(arch, input_shape, num_classes)
    return nn.Sequential(*(build_layer(LAYER_TYPES[row.type], row.arguments) for row in rows))


def choose_device(name: str = "auto") -> torch.device:
    """``'auto'`` picks CUDA, then Apple MPS, then the CPU; otherwise the device named.

    A device that is not available is refused with a clear message.

    >>> choose_device("cpu")
    device(type='cpu')
    """
    if not isinstance(name, str):
        raise InvalidType(f"device must be a string, got {type(name).__name__}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidArgument(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument(
            f"device {name!r} was asked for but this machine has no usable CUDA GPU"
        )
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise InvalidArgument(
                f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InvalidArgument("device 'mps' was asked for but Apple MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InvalidArgument(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}"
        )
    return device


def _cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), so autocast pays."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used: ``'auto'`` becomes bf16 where the hardware computes it
    natively (CUDA with bf16 support, CPUs with AVX-512 BF16 or AMX), fp16 on other CUDA GPUs
    (with a gradient scaler), and fp32 elsewhere. An explicit choice is kept (fp16 runs on the
    CPU too, slowly, which lets the GPU's gradient-scaler path be tested anywhere).

    >>> resolve_precision("fp32", torch.device("cpu"))
    'fp32'
    """
    check_choice(precision, "precision", PRECISIONS)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and _cpu_has_bf16():
        return "bf16"
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: no autocast)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
