"""Data augmentation of training batches: shifts, flips, affine maps and elastic distortions,
drawn per step.

Two kinds of policy, and random erasing on top of either (``erase``: a rectangle of each chosen
image set to the background, :meth:`Augmentation.erased`):

- **Gathers** (``shift``, ``shift-flip``): a shift moves the image by up to ``padding`` pixels in
  each direction, the uncovered border filled with the background (a crop of the padded image,
  as ``RandomCrop(padding=...)``); a flip mirrors it left to right. Both are one exact gather:
  every output pixel ``(row, column)`` of image ``n`` is read from the padded image at
  ``(rows[n, row], columns[n, column])``.
- **Warps** (``affine``, ``affine-flip``, ``elastic``, ``affine-elastic``): every output pixel is
  read at a real-valued point of the input, by bilinear interpolation between its four
  neighbours, the outside of the image being the background. An affine map rotates, scales,
  shears and translates about the image's centre (as ``RandomAffine``); an elastic distortion
  (Simard, Steinkraus and Platt, 2003) adds to each point a displacement drawn uniformly in
  ``[-1, 1]`` per pixel, smoothed by a Gaussian of width ``elastic_sigma`` and scaled by
  ``elastic_alpha`` pixels. :func:`sample_points` gives the points, :func:`bilinear_taps` the four
  neighbours and their weights, and both engines read them with the same gather and the same
  float32 sums, so their batches are equal bit for bit.

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
    "WARP_POLICIES",
    "Augmentation",
    "Taps",
    "Warp",
    "apply_numpy",
    "bilinear_taps",
    "check_erase",
    "crop_indices",
    "gaussian_matrix",
    "sample_points",
    "warp_numpy",
]

#: Accepted values of ``augment``: nothing; random shifts, and shifts with horizontal flips (exact
#: gathers); random affine maps, with flips, elastic distortions, and both (bilinear warps).
AUGMENT_POLICIES = ("none", "shift", "shift-flip", "affine", "affine-flip", "elastic",
                    "affine-elastic")
#: The policies read by bilinear interpolation.
WARP_POLICIES = ("affine", "affine-flip", "elastic", "affine-elastic")
#: The largest shift, in pixels, in each direction.
SHIFT_PADDING = 2
#: Keeps the augmentation's random numbers apart from the other streams drawn from the seed.
_STREAM = 0xA09
_ERASE_STREAM = 0xE4A
#: Random erasing: the erased fraction of the image and the rectangle's aspect ratio are drawn
#: in these ranges (Zhong et al.'s defaults).
ERASE_AREA = (0.02, 0.4)
ERASE_ASPECT = (0.3, 1 / 0.3)


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
class Warp:
    """How far a warp may move an image; each amount is drawn uniformly per image.

    ``rotate`` and ``shear`` are in degrees (each drawn in ``[-amount, amount]``), ``scale`` a
    fraction (the zoom is drawn in ``[1 - scale, 1 + scale]``), ``translate`` in pixels along
    each axis. ``elastic_alpha`` (pixels) and ``elastic_sigma`` (pixels) shape the elastic
    displacement; they are used only by the elastic policies. The defaults are those commonly
    used for handwritten digits (``RandomAffine(10, translate≈0.07, scale=(0.9, 1.1),
    shear=10)``; Simard et al.'s alpha 34 and sigma 4).
    """

    rotate: float = 10.0
    scale: float = 0.1
    shear: float = 10.0
    translate: float = 2.0
    elastic_alpha: float = 34.0
    elastic_sigma: float = 4.0

    def __post_init__(self) -> None:
        limits = {"rotate": (0.0, 180.0), "scale": (0.0, 0.9), "shear": (0.0, 45.0),
                  "translate": (0.0, 1000.0), "elastic_alpha": (0.0, 1000.0),
                  "elastic_sigma": (0.5, 100.0)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not low <= value <= high):
                raise InvalidArgument(
                    f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """The ``(size, size)`` matrix that blurs a vector by a Gaussian of width ``sigma``.

    Row ``i`` holds the normalised kernel centred on ``i``, truncated at four standard
    deviations, with zeros beyond the ends: ``G @ v`` equals
    ``scipy.ndimage.gaussian_filter1d(v, sigma, mode='constant')``.

    >>> gaussian_matrix(3, 0.5).round(2)
    array([[0.79, 0.11, 0.  ],
           [0.11, 0.79, 0.11],
           [0.  , 0.11, 0.79]])
    """
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    distance = np.arange(size)[None, :] - np.arange(size)[:, None]
    inside = np.abs(distance) <= radius
    return np.where(inside, kernel[np.clip(distance + radius, 0, 2 * radius)], 0.0)


def sample_points(height: int, width: int, *, angles: np.ndarray, zooms: np.ndarray,
                  shears: np.ndarray, shifts: np.ndarray, flips: np.ndarray,
                  displacement: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of each image is read: ``(rows, columns)``, float64 ``(N, H, W)``.

    The output pixel ``p`` (mirrored left to right first where ``flips[n]``) is read at
    ``centre + R(angle) S(shear) (p - centre) / zoom + shift (+ displacement)``, with angles
    and shears in radians, ``shifts (N, 2)`` as (down, right) moves of the content (so read
    ``shift`` pixels up and left) and ``displacement (N, 2, H, W)`` the elastic field (rows,
    columns).

    >>> rows, cols = sample_points(1, 3, angles=np.zeros(1), zooms=np.ones(1),
    ...     shears=np.zeros(1), shifts=np.array([[0.0, 1.0]]), flips=np.array([False]))
    >>> cols[0, 0].tolist()
    [-1.0, 0.0, 1.0]
    """
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    y = np.arange(height, dtype=np.float64)[None, :, None] - centre_y
    x = np.arange(width, dtype=np.float64)[None, None, :] - centre_x
    x = np.where(np.asarray(flips, bool)[:, None, None], -x, x)
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    tan = np.tan(shears)[:, None, None]
    zoom = np.asarray(zooms, np.float64)[:, None, None]
    # S(shear) = [[1, tan], [0, 1]] on (x, y); then the rotation.
    sheared_x = x + tan * y
    columns = (cos * sheared_x - sin * y) / zoom + centre_x - shifts[:, 1, None, None]
    rows = (sin * sheared_x + cos * y) / zoom + centre_y - shifts[:, 0, None, None]
    if displacement is not None:
        rows = rows + displacement[:, 0]
        columns = columns + displacement[:, 1]
    return rows, columns


@dataclass(frozen=True)
class Taps:
    """The bilinear reading of a warp: for each output pixel, the flat indices of its four
    neighbours in the images padded by one pixel of background, stored channels-last
    (``(N * (H + 2) * (W + 2), C)``), and their float32 weights. ``indices (4, N, H, W)``,
    ``weights (4, N, H, W)``; the output is ``sum_k weights[k] * padded[indices[k]]``, summed
    in the order k = 0, 1, 2, 3."""

    indices: np.ndarray
    weights: np.ndarray


def bilinear_taps(rows: np.ndarray, columns: np.ndarray, height: int, width: int) -> Taps:
    """The four neighbours and weights of the points ``(rows, columns)`` (each ``(N, H, W)``).

    A point outside the image reads the background: the images are padded by one pixel and
    the points clipped to the padded frame, where the border is all background.
    """
    count = rows.shape[0]
    # Coordinates in the padded frame, clipped into it.
    y = np.clip(rows + 1.0, 0.0, height + 1.0)
    x = np.clip(columns + 1.0, 0.0, width + 1.0)
    top = np.minimum(np.floor(y), height).astype(np.int64)
    left = np.minimum(np.floor(x), width).astype(np.int64)
    down = (y - top).astype(np.float32)
    right = (x - left).astype(np.float32)
    one = np.float32(1.0)
    stride = width + 2
    base = (np.arange(count, dtype=np.int64) * (height + 2) * stride)[:, None, None]
    corner = base + top * stride + left
    indices = np.stack([corner, corner + 1, corner + stride, corner + stride + 1])
    weights = np.stack([(one - down) * (one - right), (one - down) * right,
                        down * (one - right), down * right])
    return Taps(indices, weights)


def warp_numpy(images: np.ndarray, taps: Taps, *, fill: float) -> np.ndarray:
    """The batch ``images (N, C, H, W)`` read through ``taps`` (:func:`bilinear_taps`)."""
    count, channels, height, width = images.shape
    padded = np.full((count, height + 2, width + 2, channels), fill, dtype=images.dtype)
    padded[:, 1:-1, 1:-1, :] = images.transpose(0, 2, 3, 1)
    flat = padded.reshape(-1, channels)
    weights = taps.weights[..., None].astype(images.dtype, copy=False)
    out = flat[taps.indices[0]] * weights[0]
    for k in (1, 2, 3):
        out = out + flat[taps.indices[k]] * weights[k]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class Augmentation:
    """A run's augmentation: the policy, the seed, and the fill value in the batch's units.

    ``fill`` is the background pixel after normalisation (``(0 - mean) / std`` for a dark
    background). ``rank`` and ``world`` pick this process's share of each global batch, the
    rows the loaders give it (``rank::world``). ``warp`` bounds the warp policies' draws.
    """

    policy: str
    seed: int
    fill: float
    padding: int = SHIFT_PADDING
    rank: int = 0
    world: int = 1
    warp: Warp = Warp()
    erase: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.policy, "augment", AUGMENT_POLICIES)
        check_int(self.padding, "padding", minimum=1)
        check_erase(self.erase)

    @property
    def active(self) -> bool:
        return self.policy != "none" or self.erase > 0

    def erased(self, epoch: int, step: int, global_size: int, height: int,
               width: int) -> np.ndarray:
        """Which pixels of this process's images the step erases: ``(N, H, W)`` booleans.

        Each image is erased with probability ``erase``: one rectangle covering a fraction of
        the image drawn in [0.02, 0.4], of aspect ratio (height / width) drawn log-uniformly in
        [0.3, 3.3], at a uniformly drawn place where it fits (Zhong et al., 2020, "Random
        Erasing Data Augmentation"), is set to the background.
        """
        generator = np.random.default_rng([self.seed, epoch, step, _ERASE_STREAM])
        size = global_size
        chosen = generator.random(size) < self.erase
        areas = generator.uniform(*ERASE_AREA, size) * height * width
        aspects = np.exp(generator.uniform(*np.log(ERASE_ASPECT), size))
        tall = np.clip(np.round(np.sqrt(areas * aspects)), 1, height).astype(np.int64)
        wide = np.clip(np.round(np.sqrt(areas / aspects)), 1, width).astype(np.int64)
        top = np.floor(generator.random(size) * (height - tall + 1)).astype(np.int64)
        left = np.floor(generator.random(size) * (width - wide + 1)).astype(np.int64)
        rows = np.arange(height)[None, :, None]
        columns = np.arange(width)[None, None, :]
        mask = ((rows >= top[:, None, None]) & (rows < (top + tall)[:, None, None])
                & (columns >= left[:, None, None]) & (columns < (left + wide)[:, None, None]))
        mask &= chosen[:, None, None]
        return mask[self.rank::self.world]

    @property
    def warps(self) -> bool:
        """Whether the policy reads by bilinear interpolation (:meth:`taps`), not by a gather
        (:meth:`draws`)."""
        return self.policy in WARP_POLICIES

    def draws(self, epoch: int, step: int, global_size: int, height: int,
              width: int) -> tuple[np.ndarray, np.ndarray]:
        """The gather indices of this process's images in step ``step`` of epoch ``epoch``."""
        if self.warps:
            raise InvalidArgument(f"augment {self.policy!r} warps images; use taps()")
        generator = np.random.default_rng([self.seed, epoch, step, _STREAM])
        down, right = generator.integers(-self.padding, self.padding + 1, (2, global_size))
        flips = generator.random(global_size) < 0.5
        if self.policy != "shift-flip":
            flips[:] = False
        mine = slice(self.rank, None, self.world)
        return crop_indices(down[mine], right[mine], flips[mine], height, width,
                            padding=self.padding)

    def points(self, epoch: int, step: int, global_size: int, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
        """Where this process's output pixels are read in step ``step`` of epoch ``epoch`` (see
        :func:`sample_points`). Every amount is drawn for the whole global batch, in one order,
        whatever the policy, so ``affine`` and ``affine-elastic`` share their affine maps."""
        generator = np.random.default_rng([self.seed, epoch, step, _STREAM])
        warp, size = self.warp, global_size
        affine = self.policy in ("affine", "affine-flip", "affine-elastic")
        angles = np.deg2rad(generator.uniform(-warp.rotate, warp.rotate, size))
        zooms = generator.uniform(1.0 - warp.scale, 1.0 + warp.scale, size)
        shears = np.deg2rad(generator.uniform(-warp.shear, warp.shear, size))
        shifts = generator.uniform(-warp.translate, warp.translate, (size, 2))
        flips = generator.random(size) < 0.5
        if not affine:
            angles[:], zooms[:], shears[:], shifts[:] = 0.0, 1.0, 0.0, 0.0
        if self.policy != "affine-flip":
            flips[:] = False
        mine = slice(self.rank, None, self.world)
        displacement = None
        if self.policy in ("elastic", "affine-elastic"):
            field = generator.uniform(-1.0, 1.0, (size, 2, height, width))[mine]
            blur_rows = gaussian_matrix(height, warp.elastic_sigma)
            blur_columns = gaussian_matrix(width, warp.elastic_sigma)
            displacement = warp.elastic_alpha * (blur_rows @ field @ blur_columns.T)
        return sample_points(height, width, angles=angles[mine], zooms=zooms[mine],
                             shears=shears[mine], shifts=shifts[mine], flips=flips[mine],
                             displacement=displacement)

    def taps(self, epoch: int, step: int, global_size: int, height: int, width: int) -> Taps:
        """The bilinear taps of this process's images in step ``step`` of epoch ``epoch``."""
        rows, columns = self.points(epoch, step, global_size, height, width)
        return bilinear_taps(rows, columns, height, width)

    def apply_numpy(self, images: np.ndarray, epoch: int, step: int,
                    global_size: int) -> np.ndarray:
        """This process's batch ``images (N, C, H, W)`` as drawn for the step, in NumPy."""
        height, width = images.shape[2:]
        fill = images.dtype.type(self.fill)
        if self.warps:
            images = warp_numpy(images, self.taps(epoch, step, global_size, height, width),
                                fill=fill)
        elif self.policy != "none":
            rows, columns = self.draws(epoch, step, global_size, height, width)
            images = apply_numpy(images, rows, columns, padding=self.padding, fill=fill)
        if self.erase > 0:
            mask = self.erased(epoch, step, global_size, height, width)
            images = np.where(mask[:, None], fill, images)
        return images


def check_erase(erase: object) -> float:
    """``erase`` as a probability in [0, 1], or an error naming it."""
    if isinstance(erase, bool) or not isinstance(erase, (int, float)) or not 0 <= erase <= 1:
        raise InvalidArgument(f"erase must be a probability in [0, 1], got {erase!r}")
    return float(erase)
