"""Looking inside a trained CNN: feature maps, learned kernels, attributions, a map of features.

Everything here works on the PyTorch model of a run, as :func:`cnnkit.engines.evaluation.load_model`
returns it (an ``nn.Sequential`` built from an architecture spec, in eval mode), so that layer
``i`` of the spec is module ``i`` of the model and its output has the shape
:func:`cnnkit.arch.trace` gives.

- **Feature maps**: the output of every layer that keeps a ``(C, H, W)`` shape.
- **Attributions** (how much each input pixel matters for one class score), three methods:

  ``saliency``
      ``|∂ score / ∂ pixel|``, the largest over the colour channels (Simonyan et al., 2014).
  ``gradcam``
      Grad-CAM (Selvaraju et al., 2017) on one layer (default: the last convolution, after its
      activation): the layer's maps weighted by the spatial mean of the score's gradient,
      summed, rectified and resized bilinearly to the image.
  ``integrated-gradients``
      ``(x - x₀) · mean of ∂ score / ∂ x`` along the straight path from a baseline ``x₀`` to
      ``x`` (Sundararajan et al., 2017), summed over channels; signed, and the attributions
      add up to ``score(x) - score(x₀)`` (up to the error of the midpoint rule).

  The gradients are PyTorch's autograd; the NumPy engine has no attributions yet.
- **Nearest classic kernel**: each learned kernel compared with Sobel, Scharr and Prewitt in
  four directions, the Laplacian, Gaussians, the box and the identity kernel.
- **Feature map of a data set**: the penultimate layer's features projected on their first
  two principal components (NumPy's SVD).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument, InvalidType

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

__all__ = [
    "METHODS",
    "Explanation",
    "KernelMatch",
    "PreparedImage",
    "attribute",
    "attribute_numpy",
    "classic_kernels",
    "conv_weights",
    "default_gradcam_layer",
    "explain_images",
    "explanation_figure",
    "feature_maps",
    "layer_outputs",
    "layer_type",
    "layers_to_show",
    "nearest_classic_kernel",
    "pca_2d",
    "predict_with_features",
    "prepare_for_model",
    "shown_layers",
    "spatial_layers",
    "tile_maps",
    "weights_figure",
]

#: Attribution methods accepted by :func:`attribute`.
METHODS = ("saliency", "gradcam", "integrated-gradients")

_ACTIVATIONS = ("relu", "tanh", "sigmoid")


# --- Layers of a model -----------------------------------------------------------------------


def _layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise InvalidType(
            f"model must be an nn.Sequential built by cnnkit, got {type(model).__name__}"
        )
    return list(model)


def layer_type(module: torch.nn.Module) -> str:
    """The spec name of a module (``conv2d``, ``relu``, ...), as :mod:`cnnkit.arch` spells it."""
    from torch import nn

    names = {nn.Conv2d: "conv2d", nn.MaxPool2d: "max_pool2d", nn.AvgPool2d: "avg_pool2d",
             nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Flatten: "flatten",
             nn.Linear: "linear", nn.Dropout: "dropout"}
    return names.get(type(module), type(module).__name__.lower())


def spatial_layers(model: torch.nn.Module) -> list[int]:
    """Indices of the layers whose output is a stack of maps ``(C, H, W)`` (before flatten)."""
    return _spatial([layer_type(module) for module in _layers(model)])


def _spatial(kinds: list[str]) -> list[int]:
    indices = []
    for index, kind in enumerate(kinds):
        if kind in ("flatten", "linear"):
            break
        indices.append(index)
    return indices


def shown_layers(model: torch.nn.Module) -> list[int]:
    """The feature maps worth showing: after each activation and each pooling.

    A convolution directly followed by an activation is left out (its activation shows the same
    maps, rectified); one without an activation is shown itself.
    """
    return layers_to_show([layer_type(module) for module in _layers(model)])


def layers_to_show(kinds: Sequence[str], *, every: bool = False) -> list[int]:
    """:func:`shown_layers` for a model given by its layers' spec names (``conv2d``, ...), as
    :func:`cnnkit.arch.trace` lists them; needs neither engine. With ``every``, all the layers
    with feature maps (:func:`spatial_layers`).

    >>> layers_to_show(["conv2d", "relu", "max_pool2d", "conv2d", "flatten", "linear"])
    [1, 2, 3]
    >>> layers_to_show(["conv2d", "relu", "max_pool2d", "flatten", "linear"], every=True)
    [0, 1, 2]
    """
    kinds = list(kinds)
    if every:
        return _spatial(kinds)
    shown = []
    for index in _spatial(kinds):
        follower = kinds[index + 1] if index + 1 < len(kinds) else ""
        if kinds[index] == "conv2d" and follower in _ACTIVATIONS:
            continue
        shown.append(index)
    return shown


def default_gradcam_layer(model: torch.nn.Module) -> int:
    """The last convolution, or the activation right after it."""
    return _gradcam_layer([layer_type(module) for module in _layers(model)])


def _gradcam_layer(kinds: list[str]) -> int:
    convolutions = [index for index, kind in enumerate(kinds) if kind == "conv2d"]
    if not convolutions:
        raise InvalidArgument("Grad-CAM needs a convolution layer; this model has none")
    last = convolutions[-1]
    if last + 1 < len(kinds) and kinds[last + 1] in _ACTIVATIONS:
        return last + 1
    return last


def _check_layer(model: torch.nn.Module, layer: object) -> int:
    allowed = spatial_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer not in allowed:
        choices = ", ".join(map(str, allowed))
        raise InvalidArgument(
            f"layer must be the index of a layer with feature maps ({choices}), got {layer!r}"
        )
    return int(layer)


def layer_outputs(model: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The output of every layer for a batch ``(N, C, H, W)``, in order (no gradients).

    The batch is moved to the model's device; the outputs stay there.
    """
    import torch

    outputs = []
    with torch.inference_mode():
        value = inputs.to(next(model.parameters()).device)
        for module in _layers(model):
            value = module(value)
            outputs.append(value)
    return outputs


def feature_maps(model: torch.nn.Module, inputs: torch.Tensor) -> dict[int, np.ndarray]:
    """The feature maps of every spatial layer: ``{layer index: float32 (N, C, H, W)}``."""
    outputs = layer_outputs(model, inputs)
    return {index: outputs[index].float().cpu().numpy() for index in spatial_layers(model)}


def predict_with_features(
    model: torch.nn.Module, inputs: torch.Tensor, *, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and penultimate features (the input of the last layer) in one pass.

    Returns float32 arrays ``(N, classes)`` and ``(N, features)``. The pass is fastest with
    the model's weights in channels-last memory format (``model.to(memory_format=
    torch.channels_last)``), as :func:`cnnkit.report.build_report` does.
    """
    import torch

    layers = _layers(model)
    body, head = torch.nn.Sequential(*layers[:-1]), layers[-1]
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    probabilities, features = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            # Channels-last images take oneDNN's faster convolution path (same values).
            batch = inputs[start:start + batch_size].to(device)
            hidden = body(batch.contiguous(memory_format=torch.channels_last))
            probabilities.append(torch.softmax(head(hidden).float(), dim=1).cpu().numpy())
            features.append(hidden.float().flatten(1).cpu().numpy())
    return np.concatenate(probabilities), np.concatenate(features)


# --- Attributions ----------------------------------------------------------------------------


def _class_scores(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    """Sum over the batch of each input's score (logit) for its target class."""
    return model(inputs).gather(1, targets.view(-1, 1)).sum()


def attribute(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: Sequence[int] | np.ndarray,
    *,
    method: str = "saliency",
    layer: int | None = None,
    baseline: torch.Tensor | None = None,
    steps: int = 16,
) -> np.ndarray:
    """Attribution maps ``(N, H, W)`` of the score of class ``targets[n]`` for input ``n``.

    Parameters
    ----------
    model : torch.nn.Sequential
        In eval mode.
    inputs : torch.Tensor
        ``(N, C, H, W)``, normalised as the model expects.
    targets : sequence of int
        One class index per input.
    method : {'saliency', 'gradcam', 'integrated-gradients'}
        See the module's description.
    layer : int, optional
        Grad-CAM's layer (default :func:`default_gradcam_layer`); other methods ignore it.
    baseline : torch.Tensor, optional
        Integrated gradients' starting point, broadcastable to ``inputs`` (default: zeros).
    steps : int
        Integrated gradients' number of points on the path (midpoint rule).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W)``: non-negative for saliency and Grad-CAM, signed for integrated
        gradients.
    """
    import torch

    method = check_choice(method, "method", METHODS)
    steps = check_int(steps, "steps", minimum=1)
    device = next(model.parameters()).device
    inputs = inputs.detach().float().to(device)
    targets = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=device)
    if targets.shape != (len(inputs),):
        raise InvalidArgument(
            f"targets must hold one class per input ({len(inputs)}), got shape "
            f"{tuple(targets.shape)}"
        )
    with torch.enable_grad():
        if method == "saliency":
            inputs.requires_grad_(True)
            (gradient,) = torch.autograd.grad(_class_scores(model, inputs, targets), inputs)
            result = gradient.abs().amax(dim=1)
        elif method == "gradcam":
            result = _gradcam(model, inputs, targets,
                              default_gradcam_layer(model) if layer is None
                              else _check_layer(model, layer))
        else:
            result = _integrated_gradients(model, inputs, targets, baseline, steps)
    return result.detach().float().cpu().numpy()


def _gradcam(model, inputs, targets, layer: int):
    import torch
    import torch.nn.functional as functional

    layers = _layers(model)
    activation = torch.nn.Sequential(*layers[:layer + 1])(inputs)
    score = _class_scores(torch.nn.Sequential(*layers[layer + 1:]), activation, targets)
    (gradient,) = torch.autograd.grad(score, activation)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = functional.interpolate(cam, size=inputs.shape[2:], mode="bilinear",
                                 align_corners=False)
    return cam[:, 0]


def _integrated_gradients(model, inputs, targets, baseline, steps: int, chunk: int = 256):
    import torch

    if baseline is None:
        baseline = torch.zeros_like(inputs)
    baseline = torch.broadcast_to(baseline.to(inputs), inputs.shape)
    alphas = (torch.arange(steps, dtype=inputs.dtype, device=inputs.device) + 0.5) / steps
    # Every point of every path in one batch (points of one step lie together), taken in chunks
    # of `chunk` rows: a few large products cost less than many of one image each.
    points = (baseline + alphas.view(-1, 1, 1, 1, 1) * (inputs - baseline)).flatten(0, 1)
    repeated = targets.repeat(steps)
    gradients = []
    for start in range(0, len(points), chunk):
        point = points[start:start + chunk].detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(
            _class_scores(model, point, repeated[start:start + chunk]), point)
        gradients.append(gradient)
    mean_gradient = torch.cat(gradients).view(steps, *inputs.shape).mean(dim=0)
    return ((inputs - baseline) * mean_gradient).sum(dim=1)


# --- The same attributions with the NumPy engine's own backward pass -----------------------


def attribute_numpy(
    model,
    inputs: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    *,
    method: str = "saliency",
    layer: int | None = None,
    baseline: np.ndarray | None = None,
    steps: int = 16,
) -> np.ndarray:
    """:func:`attribute` for a :class:`cnnkit.nn.Sequential`, with its hand-written backward.

    The same three methods with the same definitions: the gradient of the target class's score
    comes from running the layers' ``backward`` from a one-hot gradient of the logits, so no
    PyTorch is involved. Grad-CAM's map is brought to the input size with bilinear
    interpolation as ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``
    does it.

    Parameters
    ----------
    model : cnnkit.nn.Sequential
        Put in eval mode for the computation.
    inputs : numpy.ndarray
        ``(N, C, H, W)``, normalised as the model expects.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W)``.
    """
    from cnnkit.nn import Sequential

    if not isinstance(model, Sequential):
        raise InvalidType(f"model must be a cnnkit.nn.Sequential, got {type(model).__name__}")
    method = check_choice(method, "method", METHODS)
    steps = check_int(steps, "steps", minimum=1)
    layers = [model[index] for index in range(len(model))]
    kinds = [type(module).__name__.lower() for module in layers]
    inputs = np.asarray(inputs, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape != (len(inputs),):
        raise InvalidArgument(
            f"targets must hold one class per input ({len(inputs)}), got shape {targets.shape}"
        )
    was_training = model.training
    model.eval()
    try:
        if method == "saliency":
            return np.abs(_input_gradient(model, inputs, targets)).max(axis=1)
        if method == "gradcam":
            spatial = _spatial(kinds)
            index = _gradcam_layer(kinds) if layer is None else layer
            if index not in spatial:
                choices = ", ".join(map(str, spatial))
                raise InvalidArgument(
                    f"layer must be the index of a layer with feature maps ({choices}), got "
                    f"{layer!r}"
                )
            return _gradcam_numpy(layers, inputs, targets, index)
        base = np.zeros_like(inputs) if baseline is None else np.broadcast_to(
            np.asarray(baseline, np.float32), inputs.shape)
        total = np.zeros_like(inputs)
        for step in range(steps):
            alpha = np.float32((step + 0.5) / steps)
            total += _input_gradient(model, base + alpha * (inputs - base), targets)
        return ((inputs - base) * (total / steps)).sum(axis=1)
    finally:
        model.train(was_training)


def _one_hot(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(logits)
    grad[np.arange(len(targets)), targets] = 1.0
    return grad


def _input_gradient(model, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d(score of each input's target class) / d(input), by the layers' backward passes."""
    logits = model(inputs)
    return model.backward(_one_hot(targets, logits))


def _gradcam_numpy(layers: list, inputs: np.ndarray, targets: np.ndarray,
                   index: int) -> np.ndarray:
    value = inputs
    for module in layers[:index + 1]:
        value = module.forward(value)
    activation = value
    for module in layers[index + 1:]:
        value = module.forward(value)
    grad = _one_hot(targets, value)
    for module in reversed(layers[index + 1:]):
        grad = module.backward(grad)
    weights = grad.mean(axis=(2, 3), keepdims=True)
    cam = np.maximum((weights * activation).sum(axis=1), 0.0)
    return _bilinear_resize(cam, inputs.shape[2:]).astype(np.float32)


def _bilinear_resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` to ``(N, H, W)`` as PyTorch's bilinear interpolation with
    ``align_corners=False``: sample points at ``(i + 0.5) * h / H - 0.5``, clamped at 0."""
    def weights(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.maximum((np.arange(target) + 0.5) * source / target - 0.5, 0.0)
        low = np.minimum(np.floor(position).astype(np.int64), source - 1)
        high = np.minimum(low + 1, source - 1)
        return low, high, (position - low).astype(maps.dtype)

    rows_low, rows_high, row_weight = weights(maps.shape[1], size[0])
    columns_low, columns_high, column_weight = weights(maps.shape[2], size[1])
    rows = (maps[:, rows_low] * (1 - row_weight)[:, None]
            + maps[:, rows_high] * row_weight[:, None])
    return rows[:, :, columns_low] * (1 - column_weight) + rows[:, :, columns_high] * column_weight


# --- Images brought to the model -------------------------------------------------------------


@dataclass
class PreparedImage:
    """An image file as the model sees it, with a note of each step taken to get there."""

    path: str
    pixels: np.ndarray  # uint8 (C, H, W), before normalisation
    notes: list[str] = field(default_factory=list)


_MODE_NAMES = {"1": "black-and-white", "L": "grayscale", "LA": "grayscale with alpha",
               "P": "palette colour", "RGB": "RGB", "RGBA": "RGBA", "CMYK": "CMYK",
               "I;16": "16-bit grayscale", "I": "32-bit grayscale", "F": "float grayscale"}


def prepare_for_model(
    path: str | os.PathLike, model_info: dict, *, invert: str = "auto"
) -> PreparedImage:
    """Read an image file and bring it to the model's input, noting every change.

    The steps are those of :func:`cnnkit.engines.evaluation.prepare_image`: conversion to
    grayscale or RGB, padding to the input's aspect ratio, resizing (bilinear), inversion for
    models trained on a dark background, then normalisation with the training split's mean and
    standard deviation.
    """
    from PIL import Image

    from cnnkit.engines.evaluation import prepare_image

    channels, height, width = (int(n) for n in model_info["input_shape"])
    prepared = prepare_image(path, (channels, height, width), invert=invert,
                             background=model_info.get("background"))
    with Image.open(path) as image:
        mode = image.mode
    notes = []
    wanted = "L" if channels == 1 else "RGB"
    if mode != wanted:
        notes.append(f"converted from {_MODE_NAMES.get(mode, mode)} to "
                     f"{_MODE_NAMES[wanted]}")
    if prepared.padded:
        notes.append("padded to the input's aspect ratio with its background colour")
    rows, columns = prepared.size
    if (rows, columns) != (height, width):
        notes.append(f"resized from {columns}×{rows} to {width}×{height}")
    if prepared.inverted:
        notes.append("inverted to light on dark, as the training images are")
    notes.append(f"normalised: (pixel/255 - {model_info['mean']:.3f}) / "
                 f"{model_info['std']:.3f}")
    return PreparedImage(prepared.path, prepared.pixels, notes)


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
    source: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    *,
    method: str = "gradcam",
    layer: int | None = None,
    top_k: int = 3,
    invert: str | None = None,
    device: str = "cpu",
) -> list[Explanation]:
    """Feature maps, top classes and an attribution map for each image file.

    Parameters
    ----------
    source : path-like
        A run folder or checkpoint file.
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
        As in :func:`cnnkit.engines.evaluation.predict`; by default
        :func:`cnnkit.engines.evaluation.default_invert` of the model's data set.
    """
    from cnnkit.engines.evaluation import default_invert, load_model, model_input

    method = check_choice(method, "method", METHODS)
    top_k = check_int(top_k, "top_k", minimum=1)
    if isinstance(images, (str, os.PathLike)) or not images:
        raise InvalidArgument("images must be a non-empty list of image files")
    model, state = load_model(source, engine="torch", device=device)
    info = state.model_info
    if invert is None:
        invert = default_invert(state.config.get("dataset", "synthetic-digits"))
    if layer is not None:
        layer = _check_layer(model, layer)
    prepared = [prepare_for_model(path, info, invert=invert) for path in images]
    inputs = model_input(np.stack([p.pixels for p in prepared]), info)
    probabilities, _ = predict_with_features(model, inputs)
    maps = feature_maps(model, inputs)
    targets = probabilities.argmax(axis=1)
    baseline = model_input(np.zeros((1, *prepared[0].pixels.shape), np.uint8), info)
    attributions = attribute(model, inputs, targets, method=method, baseline=baseline,
                             layer=layer if method == "gradcam" else None)
    layer_types = {index: layer_type(model[index]) for index in maps}
    k = min(top_k, len(info["class_names"]))
    results = []
    for n, image in enumerate(prepared):
        order = np.argsort(-probabilities[n], kind="stable")[:k]
        shown = {index: maps[index][n] for index in ([layer] if layer is not None
                                                    else shown_layers(model))}
        results.append(Explanation(
            image, list(info["class_names"]), order.tolist(),
            [float(probabilities[n, i]) for i in order], shown, layer_types, method,
            attributions[n]))
    return results


def tile_maps(maps: np.ndarray, *, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Maps ``(C, H, W)`` laid out in a grid with ``gap`` pixels between them (NaN there).

    >>> tile_maps(np.ones((3, 2, 2)), columns=2).shape
    (5, 5)
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise InvalidArgument(f"maps must be (C, H, W), got shape {maps.shape}")
    count, height, width = maps.shape
    columns = min(count, columns or 16)
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan,
                   np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top:top + height, left:left + width] = maps[index]
    return grid


def _layer_label(index: int, kind: str, maps: np.ndarray) -> str:
    count, height, width = maps.shape
    return f"layer {index} ({kind}): {count} maps of {height}×{width}"


def _display_image(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(C, H, W)`` as something imshow draws: ``(H, W)`` or ``(H, W, 3)``."""
    return pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)


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

    pixels = _display_image(explanation.image.pixels)
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


def conv_weights(model: torch.nn.Module) -> list[tuple[int, np.ndarray]]:
    """``(layer index, float64 weights (out, in, k, k))`` of every convolution, in order."""
    return [(index, module.weight.detach().double().cpu().numpy())
            for index, module in enumerate(_layers(model)) if layer_type(module) == "conv2d"]


def weights_figure(model: torch.nn.Module) -> Figure:
    """The first convolution's kernels, each labelled with its nearest classic kernel, then for
    each deeper convolution its kernels summed over input channels and their norms.

    Kernels of a layer with several input channels (RGB) are labelled by their sum over the
    channels. Each kernel has its own symmetric colour scale (red positive, blue negative).
    """
    from cnnkit.plots import new_figure

    layers = conv_weights(model)
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
