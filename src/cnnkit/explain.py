"""Looking inside a trained CNN: feature maps, attributions, learned kernels, a map of features.

Everything here is a view of a :class:`cnnkit.model.TrainedModel`, so it works the same on the
NumPy engine (no PyTorch needed) and on PyTorch's:

- **Explanations** of image files (:func:`explain_images`, :func:`explanation_figure`): the
  image as the model sees it, the top classes, an attribution map (saliency, Grad-CAM or
  integrated gradients: see :mod:`cnnkit.model`) and the feature maps of the layers worth
  showing (:meth:`cnnkit.modelinfo.ModelInfo.shown_layers`).
- Learned kernels, the patches each filter responds to and sanity checks of the attributions
  are in :mod:`cnnkit.evidence`.
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
from cnnkit.pictures import as_picture, flat_map, tile_maps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Explanation",
    "explain_images",
    "explanation_figure",
    "pca_2d",
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
    flat = flat_map(attribution)
    if flat:  # nothing to colour: a colour scale would paint one strong colour
        axes.text(0.5, 0.5, flat.replace(" (", "\n("), transform=axes.transAxes, ha="center",
                  va="center", fontsize=8, bbox={"facecolor": "white", "alpha": 0.85})
    elif explanation.method == "integrated-gradients":
        extent = float(np.abs(attribution).max()) or 1.0
        shown = axes.imshow(attribution, cmap="RdBu_r", vmin=-extent, vmax=extent, alpha=0.7)
        figure.colorbar(shown, ax=axes, shrink=0.8)
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
