"""Looking inside a trained CNN: feature maps, attributions, learned kernels, a map of features.

Everything here is a view of a :class:`cnnkit.model.TrainedModel`, so it works the same on the
NumPy engine (no PyTorch needed) and on PyTorch's:

- **Explanations** of image files (:func:`explain_images`, :func:`explanation_figure`): the
  image as the model sees it, the top classes, an attribution map (saliency, Grad-CAM or
  integrated gradients: see :mod:`cnnkit.model`) and the feature maps of the layers worth
  showing (:meth:`cnnkit.modelinfo.ModelInfo.shown_layers`).
- **Nearest classic kernel**: each learned kernel compared with Sobel, Scharr and Prewitt in
  four directions, the Laplacian, Gaussians, the box and the identity kernel.
- **Feature map of a data set**: the penultimate layer's features projected on their first
  two principal components (NumPy's SVD).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument
from cnnkit.model import METHODS, PreparedImage, TrainedModel, softmax, top_classes
from cnnkit.pictures import as_picture, tile_maps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Explanation",
    "KernelMatch",
    "classic_kernels",
    "explain_images",
    "explanation_figure",
    "nearest_classic_kernel",
    "pca_2d",
    "weights_figure",
]


# --- Explaining predictions ------------------------------------------------------------------


@dataclass
class Explanation:
    """What the model sees in one image, what it predicts, and why."""

    image: PreparedImage
    class_names: list[str]
    top_indices: list[int]
    top_probabilities: list[float]
    maps: dict[int, np.ndarray]  # layer index -> (C, H, W)
    layer_types: dict[int, str]
    method: str
    attribution: np.ndarray  # (H, W)

    @property
    def top_classes(self) -> list[str]:
        return [self.class_names[i] for i in self.top_indices]


def explain_images(
    source: str | os.PathLike | TrainedModel,
    images: Sequence[str | os.PathLike],
    *,
    method: str = "gradcam",
    layer: int | None = None,
    top_k: int = 3,
    invert: str | None = None,
    engine: str | None = None,
    device: str = "cpu",
) -> list[Explanation]:
    """Feature maps, top classes and an attribution map for each image file.

    Parameters
    ----------
    source : path-like or TrainedModel
        A run folder or checkpoint file, or a model already loaded.
    images : sequence of path-like
        Image files; each is read (and a non-image refused, by name) before any work.
    method : {'saliency', 'gradcam', 'integrated-gradients'}
        The attribution, for the most probable class. Integrated gradients start from a black
        image.
    layer : int, optional
        A layer with feature maps: Grad-CAM's layer, and the one a figure shows large.
    top_k : int
        Classes listed per image.
    invert : {'auto', 'always', 'never'}, optional
        As in :meth:`cnnkit.model.TrainedModel.prepare`.
    engine : {'auto', 'numpy', 'torch'}, optional
        Which engine computes, when ``source`` is a path.
    """
    method = check_choice(method, "method", METHODS)
    top_k = check_int(top_k, "top_k", minimum=1)
    if isinstance(images, (str, os.PathLike)) or not images:
        raise InvalidArgument("images must be a non-empty list of image files")
    model = source if isinstance(source, TrainedModel) else TrainedModel.load(
        source, engine=engine, device=device)
    info = model.info
    if layer is not None:
        layer = info.check_map_layer(layer)
    prepared = [model.prepare(path, invert=invert) for path in images]
    pixels = np.stack([p.pixels for p in prepared])
    inputs = model.normalise(pixels)
    shown = [layer] if layer is not None else info.shown_layers()
    maps, logits = model.layer_outputs(inputs, shown)
    probabilities = softmax(logits)
    indices, values = top_classes(probabilities, top_k)
    baseline = model.normalise(np.zeros((1, *info.input_shape), np.uint8))
    attributions = model.attribute(inputs, indices[:, 0], method=method, baseline=baseline,
                                   layer=layer if method == "gradcam" else None)
    layer_types = {index: info.layers[index].type for index in shown}
    return [
        Explanation(image, list(info.class_names), indices[n].tolist(), values[n].tolist(),
                    {index: maps[index][n] for index in shown}, layer_types, method,
                    attributions[n])
        for n, image in enumerate(prepared)
    ]


def _layer_label(index: int, kind: str, maps: np.ndarray) -> str:
    count, height, width = maps.shape
    return f"layer {index} ({kind}): {count} maps of {height}×{width}"


def explanation_figure(explanation: Explanation) -> Figure:
    """One figure: the image as the model sees it (with the steps taken), the top classes, the
    attribution over the image, and the feature maps of each shown layer (one colour scale per
    layer)."""
    from cnnkit.plots import new_figure

    layers = sorted(explanation.maps)
    large = len(layers) == 1
    tiles = {index: tile_maps(maps, columns=math.ceil(math.sqrt(len(maps))) if large else None)
             for index, maps in explanation.maps.items()}
    heights = [3.0] + [(7.0 if large else 1.0 + 10.0 * tiles[i].shape[0] / tiles[i].shape[1])
                       for i in layers]
    figure = new_figure(10.0, sum(heights))
    grid = figure.add_gridspec(1 + len(layers), 3, height_ratios=heights)

    pixels = as_picture(explanation.image.pixels)
    gray = "gray" if pixels.ndim == 2 else None
    axes = figure.add_subplot(grid[0, 0])
    axes.imshow(pixels, cmap=gray, vmin=0, vmax=255)
    axes.set_title("as the model sees it", fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel("\n".join(explanation.image.notes), fontsize=7)

    axes = figure.add_subplot(grid[0, 1])
    names = explanation.top_classes[::-1]
    values = [100 * p for p in explanation.top_probabilities[::-1]]
    axes.barh(range(len(names)), values, color="tab:blue")
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_xlim(0, 100)
    axes.set_xlabel("probability (%)", fontsize=8)
    axes.set_title(f"top {len(names)}", fontsize=9)
    for row, value in enumerate(values):
        axes.text(min(value + 2, 70), row, f"{value:.1f}%", va="center", fontsize=8)

    axes = figure.add_subplot(grid[0, 2])
    attribution = explanation.attribution
    axes.imshow(pixels, cmap=gray, vmin=0, vmax=255)
    if explanation.method == "integrated-gradients":
        extent = float(np.abs(attribution).max()) or 1.0
        shown = axes.imshow(attribution, cmap="RdBu_r", vmin=-extent, vmax=extent, alpha=0.7)
    else:
        shown = axes.imshow(attribution, cmap="inferno", alpha=0.6)
    figure.colorbar(shown, ax=axes, shrink=0.8)
    axes.set_title(f"{explanation.method} for {explanation.top_classes[0]}", fontsize=9)
    axes.set_axis_off()

    for row, index in enumerate(layers, start=1):
        maps = explanation.maps[index]
        axes = figure.add_subplot(grid[row, :])
        shown = axes.imshow(tiles[index], cmap="viridis", vmin=float(maps.min()),
                            vmax=float(maps.max()) or 1.0)
        figure.colorbar(shown, ax=axes, shrink=0.9, pad=0.01)
        axes.set_title(_layer_label(index, explanation.layer_types[index], maps), fontsize=9)
        axes.set_axis_off()
    figure.suptitle(Path(explanation.image.path).name, fontsize=10)
    return figure


# --- Learned kernels and the classic ones ----------------------------------------------------


def _diagonal(kernel: np.ndarray) -> np.ndarray:
    """A 3×3 row-derivative kernel turned 45°: rising towards the bottom right."""
    (a, b, _), _, _ = kernel  # the first row of the y kernel: -1 -2 -1 (Sobel)
    return np.array([[b, a, 0.0], [a, 0.0, -a], [0.0, -a, -b]])


def classic_kernels(size: int) -> dict[str, np.ndarray]:
    """The classic kernels of side ``size`` (or smaller, zero-padded around the centre).

    Sobel, Scharr and Prewitt along the columns (``-x``: vertical edges), the rows (``-y``),
    and the two diagonals (``-diag``: rising to the bottom right, ``-antidiag``: to the top
    right); the 4- and 8-neighbour Laplacian; Gaussians of σ 0.5, 1 and 2; the box; the
    identity. Kernels larger than ``size`` are left out; a smaller one is placed with its centre
    where PyTorch's 'same' padding puts it (``(size - k) // 2`` rows and columns before).

    >>> sorted(classic_kernels(3))[:4]
    ['box', 'gaussian σ=0.5', 'gaussian σ=1', 'gaussian σ=2']
    """
    from cnnkit.filters.kernels import (
        box_kernel,
        gaussian_kernel,
        identity_kernel,
        laplacian_kernel,
        prewitt_kernel,
        scharr_kernel,
        sobel_kernel,
    )

    size = check_int(size, "size", minimum=1)
    small = {"identity": identity_kernel(1)}
    if size >= 3:
        for name, make in (("sobel", sobel_kernel), ("scharr", scharr_kernel),
                           ("prewitt", prewitt_kernel)):
            rows = make(0)
            small[f"{name}-x"] = make(1)
            small[f"{name}-y"] = rows
            small[f"{name}-diag"] = _diagonal(rows)
            small[f"{name}-antidiag"] = _diagonal(rows)[::-1].copy()
        small["laplacian-4"] = laplacian_kernel(4)
        small["laplacian-8"] = laplacian_kernel(8)
    odd = size if size % 2 else size - 1
    for sigma in (0.5, 1, 2):
        small[f"gaussian σ={sigma}"] = gaussian_kernel(float(sigma), size=odd)
    if size >= 5 and size % 2:
        small[f"sobel-x {size}×{size}"] = sobel_kernel(1, size)
        small[f"sobel-y {size}×{size}"] = sobel_kernel(0, size)
    kernels = {}
    for name, kernel in small.items():
        before = (size - kernel.shape[0]) // 2
        padded = np.zeros((size, size))
        padded[before:before + kernel.shape[0], before:before + kernel.shape[1]] = kernel
        kernels[name] = padded
    kernels["box"] = box_kernel(size)
    return kernels


@dataclass(frozen=True)
class KernelMatch:
    """The classic kernel a learned one resembles most.

    ``similarity`` is the absolute cosine similarity (0 to 1) and ``sign`` its sign: -1 means
    the kernel resembles the negated classic one (for an edge kernel: the opposite direction).
    """

    name: str
    similarity: float
    sign: int

    @property
    def label(self) -> str:
        return f"{'−' if self.sign < 0 else ''}{self.name} {self.similarity:.2f}"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.sum(a * b) / norm) if norm > 1e-12 else 0.0


def nearest_classic_kernel(kernel: object) -> KernelMatch:
    """Label a 2-D kernel with the classic kernel of its size it resembles most.

    The similarity is the cosine between the two kernels after removing each one's mean, so
    that a kernel's brightness offset does not count and edge detectors compare by shape;
    a negated match counts as well (``sign`` -1). The box kernel is all mean, so it is
    compared without removing the mean: its similarity is the share of the kernel that is its
    mean. Ties (the identity and the 8-neighbour Laplacian are equal after removing the mean)
    go to the kernel that is also closer before the mean is removed.

    Examples
    --------
    >>> nearest_classic_kernel([[1, 0, -1], [2, 0, -2], [1, 0, -1]]).label
    '−sobel-x 1.00'
    """
    from cnnkit._validate import as_float_array

    weights = as_float_array(kernel, "kernel", ndims=(2,)).astype(np.float64)
    if weights.shape[0] != weights.shape[1]:
        raise InvalidArgument(f"kernel must be square, got shape {weights.shape}")
    centred = weights - weights.mean()
    best = None
    for name, template in classic_kernels(weights.shape[0]).items():
        shape = template - template.mean()
        if np.linalg.norm(shape) < 1e-12:  # the box: compared as it is
            similarity = _cosine(weights, template)
        else:
            similarity = _cosine(centred, shape)
        key = (round(abs(similarity), 9), abs(_cosine(weights, template)))
        if best is None or key > best[0]:
            best = (key, name, similarity)
    _, name, similarity = best
    return KernelMatch(name, abs(similarity), -1 if similarity < 0 else 1)


def weights_figure(model: TrainedModel) -> Figure:
    """The first convolution's kernels, each labelled with its nearest classic kernel, then for
    each deeper convolution its kernels summed over input channels and their norms.

    Kernels of a layer with several input channels (RGB) are labelled by their sum over the
    channels. Each kernel has its own symmetric colour scale (red positive, blue negative).
    """
    from cnnkit.plots import new_figure

    layers = model.conv_weights()
    if not layers:
        raise InvalidArgument("the model has no convolution layer")
    first_index, first = layers[0]
    columns = min(8, len(first))
    first_rows = math.ceil(len(first) / columns)
    heights = [1.4 * first_rows + 0.4] + [2.4] * (len(layers) - 1)
    figure = new_figure(11.0, sum(heights))
    panels = figure.subfigures(len(layers), 1, height_ratios=heights, squeeze=False)[:, 0]
    panels[0].suptitle(f"layer {first_index} (conv2d): {len(first)} kernels of "
                       f"{first.shape[2]}×{first.shape[3]}, each with its nearest classic kernel "
                       "and the cosine similarity", fontsize=9)
    grid = panels[0].subplots(first_rows, columns, squeeze=False)
    for axes in grid.ravel()[len(first):]:
        axes.set_axis_off()
    for axes, (index, kernel) in zip(grid.ravel(), enumerate(first.sum(axis=1))):
        extent = float(np.abs(kernel).max()) or 1.0
        axes.imshow(kernel, cmap="RdBu_r", vmin=-extent, vmax=extent)
        axes.set_title(f"{index}: {nearest_classic_kernel(kernel).label}", fontsize=7)
        axes.set_xticks([])
        axes.set_yticks([])
    for panel, (index, weights) in zip(panels[1:], layers[1:]):
        panel.suptitle(f"layer {index} (conv2d): {len(weights)} kernels summed over "
                       f"{weights.shape[1]} input channels, and the norm of each", fontsize=9)
        left, right = panel.subplots(1, 2, width_ratios=[3, 1])
        kernels = weights.sum(axis=1)
        extent = float(np.abs(kernels).max()) or 1.0
        left.imshow(tile_maps(kernels, columns=16), cmap="RdBu_r", vmin=-extent, vmax=extent)
        left.set_axis_off()
        norms = np.linalg.norm(weights.reshape(len(weights), -1), axis=1)
        right.bar(range(len(norms)), norms, color="tab:gray")
        right.set_xlabel("kernel", fontsize=8)
    return figure


# --- A map of the features -------------------------------------------------------------------


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``features`` on their first two principal components.

    Computed with NumPy's SVD of the centred features. Each component's sign is fixed so that
    its largest loading is positive, so the same data give the same picture.

    Returns
    -------
    coordinates : numpy.ndarray
        ``(N, 2)``.
    explained : numpy.ndarray
        The share of the variance each component explains.

    Examples
    --------
    >>> points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    >>> coordinates, explained = pca_2d(points)
    >>> np.round(coordinates[:, 0], 3).tolist(), np.round(explained, 3).tolist()
    ([-1.414, 0.0, 1.414], [1.0, 0.0])
    """
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or len(data) < 2:
        raise InvalidArgument(f"features must be (N, D) with N >= 2, got shape {data.shape}")
    centred = data - data.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    if len(components) < 2:  # one feature: the second coordinate is 0
        components = np.vstack([components, np.zeros_like(components)])
        singular = np.append(singular, 0.0)
    largest = np.abs(components).argmax(axis=1)
    signs = np.sign(components[np.arange(2), largest])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return centred @ components.T, explained
