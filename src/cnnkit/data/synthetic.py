"""Synthetic digits: an MNIST-like data set drawn offline, deterministically, from a seed.

Each digit is a few pen strokes (polylines) in a small coordinate frame. For every sample the
stroke points are jittered, the whole glyph is rotated, sheared, scaled and shifted, and then
drawn with Pillow at four times the final size with a random pen width and averaged down, which
anti-aliases the strokes. Brightness varies and Gaussian noise is added last. The result is
28×28 uint8, white on black like MNIST, with exactly balanced classes when the count is a
multiple of ten; ten thousand images take about a second.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validate import check_int

__all__ = ["DIGIT_STROKES", "make_digits"]


def _arc(
    center_x: float, center_y: float, radius_x: float, radius_y: float,
    start: float, stop: float, points: int,
) -> list[tuple[float, float]]:
    """Points along an elliptical arc; angles in degrees, 0 = right, 90 = down (image rows)."""
    angles = np.radians(np.linspace(start, stop, points))
    return [
        (center_x + radius_x * np.cos(a), center_y + radius_y * np.sin(a)) for a in angles
    ]


#: The strokes of each digit: polylines in a frame where x runs over [-1, 1] (left to right)
#: and y over [-1.4, 1.4] (top to bottom).
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.0, 0.0, 0.75, 1.3, 0, 360, 13)],
    1: [[(-0.35, -0.9), (0.1, -1.35), (0.1, 1.35)]],
    2: [[*_arc(0.0, -0.6, 0.65, 0.7, 190, 385, 7), (-0.75, 1.3), (0.8, 1.3)]],
    3: [_arc(0.0, -0.65, 0.6, 0.65, 200, 450, 7), _arc(0.0, 0.65, 0.7, 0.65, 270, 520, 7)],
    4: [[(0.35, 1.35), (0.35, -1.35), (-0.8, 0.45), (0.85, 0.45)]],
    5: [[(0.7, -1.3), (-0.5, -1.3), (-0.6, -0.15), *_arc(0.0, 0.5, 0.7, 0.75, 225, 510, 7)]],
    6: [
        [(0.55, -1.25), (0.0, -1.1), (-0.5, -0.5), (-0.68, 0.5)],
        _arc(0.0, 0.6, 0.65, 0.7, 0, 360, 11),
    ],
    7: [[(-0.8, -1.3), (0.8, -1.3), (-0.15, 1.35)]],
    8: [_arc(0.0, -0.7, 0.55, 0.6, 0, 360, 11), _arc(0.0, 0.65, 0.7, 0.7, 0, 360, 11)],
    9: [_arc(0.0, -0.6, 0.65, 0.7, 0, 360, 11), [(0.65, -0.6), (0.55, 0.5), (0.2, 1.35)]],
}

_SIZE = 28
_SCALE = 6.5  # pixels per frame unit: the glyph's height is about 18 of 28 pixels, as in MNIST
_SUPERSAMPLE = 4  # drawn at 4x the size and averaged down, which anti-aliases the strokes


def make_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` synthetic digits from ``seed``.

    Parameters
    ----------
    count : int
        Number of images; the ten classes get ``count // 10`` or one more each.
    seed : int
        The same seed gives the same images and labels.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape ``(count, 28, 28)``, white digits on black.
    labels : numpy.ndarray
        uint8, shape ``(count,)``, in 0..9, shuffled.

    Examples
    --------
    >>> images, labels = make_digits(20, seed=1)
    >>> images.shape, images.dtype, np.bincount(labels).tolist()
    ((20, 28, 28), dtype('uint8'), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    """
    from PIL import Image, ImageDraw

    count = check_int(count, "count", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)

    # Every random number is drawn up front, in one fixed order, so the result depends only on
    # the seed and the count.
    angle = np.radians(rng.uniform(-15, 15, count))
    shear = rng.uniform(-0.25, 0.25, count)
    scale = rng.uniform(0.7, 1.1, count)
    aspect = rng.uniform(0.8, 1.2, count)
    shift = rng.uniform(-3.0, 3.0, size=(count, 2)) + _SIZE / 2
    width = rng.integers(4, 14, count)  # stroke width in supersampled pixels (1 to 3.5 pixels)
    brightness = rng.uniform(0.7, 1.0, count)
    noise_level = rng.uniform(0.0, 0.15, count)
    cos, sin = np.cos(angle), np.sin(angle)
    matrices = np.empty((count, 2, 2))
    matrices[:, 0, 0] = scale * aspect * cos
    matrices[:, 0, 1] = scale * (shear * cos - sin)
    matrices[:, 1, 0] = scale * aspect * sin
    matrices[:, 1, 1] = scale * (shear * sin + cos)
    matrices *= _SCALE * _SUPERSAMPLE
    shift *= _SUPERSAMPLE

    big = _SIZE * _SUPERSAMPLE
    canvas = np.empty((count, _SIZE, _SIZE), dtype=np.float64)
    strokes = [[np.asarray(line) for line in DIGIT_STROKES[digit]] for digit in range(10)]
    for index, digit in enumerate(labels):
        image = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(image)
        for line in strokes[digit]:
            # Wobble: move every stroke point a little, so no two samples share a shape.
            points = line + rng.normal(0.0, 0.07, size=line.shape)
            points = points @ matrices[index].T + shift[index]
            draw.line([tuple(p) for p in points], fill=255, width=int(width[index]), joint="curve")
        small = image.reduce(_SUPERSAMPLE)
        canvas[index] = np.asarray(small, dtype=np.float64) / 255.0

    canvas *= brightness[:, None, None]
    canvas += noise_level[:, None, None] * rng.standard_normal(canvas.shape)
    images = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
    return images, labels
