"""Cross-entropy on logits, with its gradient.

``cross_entropy(logits, target)`` is ``torch.nn.functional.cross_entropy`` for class-index
targets: the log-softmax is taken after subtracting each row's maximum, so no exponential
overflows, and label smoothing mixes the one-hot target with the uniform distribution as PyTorch
does: ``q = (1 - label_smoothing) * one_hot + label_smoothing / K``.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validate import check_choice
from cnnkit.errors import InvalidArgument, InvalidType, ShapeError

__all__ = ["REDUCTIONS", "cross_entropy", "softmax"]

#: Accepted values of ``reduction``.
REDUCTIONS = ("mean", "sum")


def cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[float, np.ndarray]:
    """The cross-entropy of class scores against class indices, and its gradient.

    Parameters
    ----------
    logits : array of shape (N, K)
        Unnormalised class scores (float32 or float64; the gradient has the same dtype).
    target : integer array of shape (N,)
        The true class of each example, in ``0 .. K-1``.
    reduction : {'mean', 'sum'}
        Average or add the per-example losses.
    label_smoothing : float in [0, 1]
        Weight moved from the true class to the uniform distribution over the ``K`` classes.

    Returns
    -------
    loss : float
    grad : array of shape (N, K)
        dloss/dlogits: ``softmax(logits) - q``, divided by N for ``'mean'``.

    Examples
    --------
    >>> loss, grad = cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    >>> round(loss, 6), grad
    (0.693147, array([[ 0.5, -0.5]]))
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    if isinstance(label_smoothing, bool) or not 0 <= label_smoothing <= 1:
        raise InvalidArgument(
            f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}"
        )
    logits = np.asarray(logits)
    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float64)
    target = np.asarray(target)
    if logits.ndim != 2 or target.shape != (logits.shape[0],):
        raise ShapeError(
            f"cross_entropy expects logits of shape (N, K) and target of shape (N,), got "
            f"{logits.shape} and {target.shape}"
        )
    if target.dtype.kind not in "iu":
        raise InvalidType(f"target must hold integer class indices, got dtype {target.dtype}")
    count, classes = logits.shape
    if target.size and (target.min() < 0 or target.max() >= classes):
        raise InvalidArgument(
            f"target must hold class indices in 0..{classes - 1}, got values from "
            f"{target.min()} to {target.max()}"
        )
    # log_softmax = z - max - log(sum(exp(z - max))): every exponent is at most 0.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_probs = shifted - np.log(total)
    rows = np.arange(count)
    picked = log_probs[rows, target]
    losses = -(1 - label_smoothing) * picked
    if label_smoothing:
        losses -= label_smoothing / classes * log_probs.sum(axis=1)
    grad = exp / total
    grad[rows, target] -= 1 - label_smoothing
    if label_smoothing:
        grad -= label_smoothing / classes
    if reduction == "mean":
        grad /= count
        return float(losses.mean()), grad
    return float(losses.sum()), grad


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (float64) of logits ``(N, classes)``, computed after subtracting each
    row's maximum (no overflow).

    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probabilities / probabilities.sum(axis=1, keepdims=True)
