"""Data augmentation of training batches: random shifts and horizontal flips, drawn per step.

A shift moves the image by up to ``padding`` pixels in each direction, the uncovered border
filled with the background (a crop of the padded image, as ``RandomCrop(padding=...)``); a flip
mirrors it left to right. Both are one gather: every output pixel ``(row, column)`` of image
``n`` is read from the padded image at ``(rows[n, row], columns[n, column])``.

The draws of step ``step`` of epoch ``epoch`` come from ``(seed, epoch, step)`` alone, by NumPy,
for both engines: the NumPy engine and the PyTorch engine (on whatever device the batch is) see
the same augmented batches, and a run resumed after epoch ``e`` draws exactly what an
uninterrupted run draws. Torch-free.

Examples
--------
>>> image = np.arange(9.0).reshape(1, 1, 3, 3)
>>> rows, columns = crop_indices([1], [0], [False], 3, 3, padding=1)
>>> apply_numpy(image, rows, columns, padding=1, fill=-1.0)[0, 0]
array([[-1., -1., -1.],
       [ 0.,  1.,  2.],
       [ 3.,  4.,  5.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument

__all__ = [
    "AUGMENT_POLICIES",
    "SHIFT_PADDING",
    "Augmentation",
    "apply_numpy",
    "crop_indices",
]

#: Accepted values of ``augment``: nothing, random shifts, random shifts and horizontal flips.
AUGMENT_POLICIES = ("none", "shift", "shift-flip")
#: The largest shift, in pixels, in each direction.
SHIFT_PADDING = 2
#: Keeps the augmentation's random numbers apart from the other streams drawn from the seed.
_STREAM = 0xA09


def crop_indices(
    down: Sequence[int], right: Sequence[int], flips: Sequence[bool], height: int, width: int,
    *, padding: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel is read in the padded images: ``rows (N, H)``, ``columns (N, W)``.

    Image ``n`` is moved ``down[n]`` rows down and ``right[n]`` columns to the right (negative:
    up, left; at most ``padding`` either way), then mirrored left to right where ``flips[n]``.
    """
    down, right = np.asarray(down, np.int64), np.asarray(right, np.int64)
    flips = np.asarray(flips, bool)
    if np.abs(down).max(initial=0) > padding or np.abs(right).max(initial=0) > padding:
        raise InvalidArgument(f"shifts must be at most padding={padding} pixels")
    rows = padding - down[:, None] + np.arange(height)
    columns = np.where(flips[:, None], np.arange(width)[::-1], np.arange(width))
    return rows, padding - right[:, None] + columns


def apply_numpy(images: np.ndarray, rows: np.ndarray, columns: np.ndarray, *, padding: int,
                fill: float) -> np.ndarray:
    """The batch ``images (N, C, H, W)`` read through :func:`crop_indices`' indices."""
    count, channels, height, width = images.shape
    padded = np.full((count, channels, height + 2 * padding, width + 2 * padding), fill,
                     dtype=images.dtype)
    padded[:, :, padding:padding + height, padding:padding + width] = images
    # Advanced indices around a slice put their axes first: (N, H, W, C).
    gathered = padded[np.arange(count)[:, None, None], :, rows[:, :, None], columns[:, None, :]]
    return np.ascontiguousarray(gathered.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class Augmentation:
    """A run's augmentation: the policy, the seed, and the fill value in the batch's units.

    ``fill`` is the background pixel after normalisation (``(0 - mean) / std`` for a dark
    background). ``rank`` and ``world`` pick this process's share of each global batch, the
    rows the loaders give it (``rank::world``).
    """

    policy: str
    seed: int
    fill: float
    padding: int = SHIFT_PADDING
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        check_choice(self.policy, "augment", AUGMENT_POLICIES)
        check_int(self.padding, "padding", minimum=1)

    @property
    def active(self) -> bool:
        return self.policy != "none"

    def draws(self, epoch: int, step: int, global_size: int, height: int,
              width: int) -> tuple[np.ndarray, np.ndarray]:
        """The gather indices of this process's images in step ``step`` of epoch ``epoch``."""
        generator = np.random.default_rng([self.seed, epoch, step, _STREAM])
        down, right = generator.integers(-self.padding, self.padding + 1, (2, global_size))
        flips = generator.random(global_size) < 0.5
        if self.policy != "shift-flip":
            flips[:] = False
        mine = slice(self.rank, None, self.world)
        return crop_indices(down[mine], right[mine], flips[mine], height, width,
                            padding=self.padding)
