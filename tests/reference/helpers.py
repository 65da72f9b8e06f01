"""Independent references for the primitives: padding through torch or numpy, then torch/scipy."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# cnnkit padding_mode -> torch.nn.functional.pad mode ('symmetric' has no torch twin).
TORCH_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}


def reference_pad(x: np.ndarray, pads, mode: str) -> np.ndarray:
    """Pad the last len(pads) axes with torch.nn.functional.pad, or numpy for 'symmetric'."""
    if mode == "symmetric":
        widths = [(0, 0)] * (x.ndim - len(pads)) + list(pads)
        return np.pad(x, widths, mode="symmetric")
    flat = [w for before_after in reversed(pads) for w in before_after]
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    lead = x.ndim - len(pads)
    # torch pads non-constant modes only on (N, C, *spatial) tensors.
    while tensor.ndim < len(pads) + 2:
        tensor = tensor.unsqueeze(0)
    padded = F.pad(tensor, flat, mode=TORCH_PAD_MODE[mode])
    return padded.reshape(*x.shape[:lead], *padded.shape[-len(pads) :]).numpy()


def max_pad(size: int, mode: str) -> int:
    """The widest padding a mode allows on an axis of ``size`` elements."""
    return {"reflect": size - 1, "symmetric": size, "circular": size}.get(mode, 10**6)
