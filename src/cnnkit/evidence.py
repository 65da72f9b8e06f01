"""Evidence for what a trained CNN learned, each number beside the baseline that gives it meaning.

The tutorial claims that early layers learn edge detectors and later layers shapes. Pictures of
kernels and feature maps suggest it; these functions test it:

- **Learned kernels against random ones** (:func:`compare_kernels`): every kernel of a layer gets
  its nearest classic kernel (:func:`cnnkit.explain.nearest_classic_kernels`) *and* its rank
  among kernels drawn as the layer is initialised (:func:`kernel_baseline`: PyTorch's
  ``kaiming_uniform_`` with ``a = sqrt(5)``, many draws). A kernel below the baseline's
  :data:`CLOSE_PERCENTILE` th percentile has "no close match": random kernels resemble a classic
  one as much.
- **What a filter responds to** (:func:`top_patches`): for every channel of a layer, the image
  patches of the test split that excite it most, each the channel's receptive field around its
  strongest position (Zeiler and Fergus, 2014).
- **Sanity checks of attributions** (Adebayo et al., 2018): :func:`cascading_randomisation`
  re-initialises the layers from the top down, one more each step, and measures how much each
  attribution map still resembles the trained model's (Spearman rank correlation). A method
  whose maps do not change when the weights do explains the input, not the model.
  :func:`label_randomisation` does the same against a model trained on shuffled labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.errors import InvalidArgument
from cnnkit.model import METHODS, TrainedModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CLOSE_PERCENTILE",
    "SANITY_THRESHOLD",
    "KernelBaseline",
    "KernelComparison",
    "KernelMatch",
    "KernelSummary",
    "Patch",
    "RandomisationStep",
    "beating",
    "cascading_randomisation",
    "classic_kernels",
    "compare_kernels",
    "initial_kernels",
    "kernel_baseline",
    "label_randomisation",
    "mosaic_columns",
    "nearest_classic_kernel",
    "nearest_classic_kernels",
    "patch_mosaic",
    "patches_figure",
    "rank_correlation",
    "summarise_kernels",
    "top_patches",
    "weights_figure",
]

#: A learned kernel resembles a classic one only when its similarity beats this percentile of
#: the similarities of randomly initialised kernels.
CLOSE_PERCENTILE = 95.0

#: An attribution method passes a randomisation check when the absolute rank correlation of
#: its maps with the trained model's falls below this (a map that turns into its mirror image
#: still follows the input, not the weights).
SANITY_THRESHOLD = 0.5

#: Random kernels drawn for a baseline (the percentiles then move by about 0.01 between seeds).
BASELINE_DRAWS = 2000


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


def _cosines(kernels: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The cosine between each kernel ``(N, k, k)`` and ``template`` (0 where one is zero)."""
    norms = np.linalg.norm(kernels.reshape(len(kernels), -1), axis=1) * np.linalg.norm(template)
    dots = np.tensordot(kernels, template, axes=([1, 2], [0, 1]))
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 1e-12)


def nearest_classic_kernels(kernels: object) -> list[KernelMatch]:
    """:func:`nearest_classic_kernel` of each square kernel of a stack ``(N, k, k)``, computed
    for all of them at once."""
    from cnnkit._validate import as_float_array

    stack = as_float_array(kernels, "kernels", ndims=(3,)).astype(np.float64)
    if stack.shape[1] != stack.shape[2]:
        raise InvalidArgument(f"kernels must be square, got shape {stack.shape[1:]}")
    centred = stack - stack.mean(axis=(1, 2), keepdims=True)
    names, similarities, raw = [], [], []
    for name, template in classic_kernels(stack.shape[1]).items():
        shape = template - template.mean()
        names.append(name)
        plain = _cosines(stack, template)
        # The box is all mean: it is compared as it is.
        similarities.append(plain if np.linalg.norm(shape) < 1e-12 else _cosines(centred, shape))
        raw.append(np.abs(plain))
    similarity = np.stack(similarities, axis=1)
    order = -np.broadcast_to(np.arange(len(names)), similarity.shape)  # ties: the first name
    best = np.lexsort((order, np.stack(raw, axis=1), np.round(np.abs(similarity), 9)),
                      axis=-1)[:, -1]
    chosen = similarity[np.arange(len(stack)), best]
    return [KernelMatch(names[b], float(abs(c)), -1 if c < 0 else 1)
            for b, c in zip(best, chosen, strict=True)]


def nearest_classic_kernel(kernel: object) -> KernelMatch:
    """Label a 2-D kernel with the classic kernel of its size it resembles most.

    The similarity is the cosine between the two kernels after removing each one's mean, so
    that a kernel's brightness offset does not count and edge detectors compare by shape;
    a negated match counts as well (``sign`` -1). The box kernel is all mean, so it is
    compared without removing the mean: its similarity is the share of the kernel that is its
    mean. Ties (the identity and the 8-neighbour Laplacian are equal after removing the mean)
    go to the kernel that is also closer before the mean is removed.

    A similarity means little on its own: random kernels score well above 0
    (:func:`cnnkit.evidence.kernel_baseline` measures how far).

    Examples
    --------
    >>> nearest_classic_kernel([[1, 0, -1], [2, 0, -2], [1, 0, -1]]).label
    '−sobel-x 1.00'
    """
    from cnnkit._validate import as_float_array

    weights = as_float_array(kernel, "kernel", ndims=(2,))
    return nearest_classic_kernels(weights[np.newaxis])[0]


@dataclass(frozen=True)
class KernelBaseline:
    """The nearest-classic-kernel similarity of kernels drawn as one layer is initialised.

    ``scores`` are sorted; the kernels are summed over their input channels, as the learned
    ones are when they are compared.
    """

    layer: int
    kernel_size: int
    channels: int  # input channels summed per kernel
    scores: np.ndarray

    def percentile(self, q: float) -> float:
        """The ``q`` th percentile of the random similarities."""
        return float(np.percentile(self.scores, q))

    def rank(self, similarity: float) -> float:
        """The share (0 to 100) of random kernels whose similarity is below ``similarity``."""
        return 100.0 * np.searchsorted(self.scores, similarity, side="left") / len(self.scores)

    def describe(self) -> str:
        return (f"{len(self.scores):,} kernels drawn as the layer is initialised: median "
                f"{self.percentile(50):.2f}, 95th percentile {self.percentile(95):.2f}, 99th "
                f"{self.percentile(99):.2f}")


def _random_kernels(in_channels: int, kernel_size: int, count: int,
                    seed: int) -> np.ndarray:
    """``count`` kernels ``(in_channels, k, k)`` drawn by the NumPy engine's initialiser."""
    from cnnkit.nn import Conv2d

    layer = Conv2d(in_channels, count, kernel_size, generator=np.random.default_rng(seed),
                   dtype=np.float64)
    return layer.weight.data


def kernel_baseline(model: TrainedModel, layer: int, *, draws: int = BASELINE_DRAWS,
                    seed: int = 0) -> KernelBaseline:
    """The similarities of ``draws`` random kernels of convolution ``layer`` (see the module's
    notes): the baseline a learned kernel's similarity is read against.

    Cosine similarity does not depend on the kernels' scale, so only the initialiser's shape
    (uniform), the kernel size and the number of input channels summed matter.
    """
    draws = check_int(draws, "draws", minimum=10)
    if layer not in model.info.conv_layers:
        raise InvalidArgument(f"layer must be a convolution ({model.info.conv_layers}), got "
                              f"{layer!r}")
    arguments = model.info.layers[layer].arguments
    channels = arguments["in_channels"] // arguments["groups"]
    size = arguments["kernel_size"]
    kernels = _random_kernels(channels, size, draws, seed).sum(axis=1)
    scores = np.sort([match.similarity for match in nearest_classic_kernels(kernels)])
    return KernelBaseline(layer, size, channels, scores)


@dataclass(frozen=True)
class KernelComparison:
    """One learned kernel: its nearest classic kernel and where it ranks among random ones."""

    index: int
    match: KernelMatch
    rank: float  # share of random kernels less similar to any classic kernel, in percent

    @property
    def close(self) -> bool:
        """Whether the kernel beats the random baseline's :data:`CLOSE_PERCENTILE`."""
        return self.rank >= CLOSE_PERCENTILE

    @property
    def short_label(self) -> str:
        if self.close:
            return f"{self.match.label} ({self.rank:.0f}%)"
        return f"no close match ({self.rank:.0f}%)"

    @property
    def label(self) -> str:
        if self.close:
            return f"{self.match.label} (beats {self.rank:.0f}% of random)"
        return f"no close match ({self.match.label}, beats {self.rank:.0f}% of random)"


def compare_kernels(model: TrainedModel, layer: int, *, baseline: KernelBaseline | None = None,
                    weights: np.ndarray | None = None) -> list[KernelComparison]:
    """Every kernel of convolution ``layer`` (summed over its input channels) against the
    classic kernels and against the random baseline. ``weights`` (``(out, in, k, k)``) are
    compared instead of the model's, e.g. the run's weights at initialisation."""
    baseline = baseline or kernel_baseline(model, layer)
    if weights is None:
        weights = dict(model.conv_weights())[layer]
    matches = nearest_classic_kernels(np.asarray(weights, np.float64).sum(axis=1))
    return [KernelComparison(index, match, baseline.rank(match.similarity))
            for index, match in enumerate(matches)]


@dataclass(frozen=True)
class KernelSummary:
    """One convolution's kernels against the classic ones and the random baseline, trained and
    (when the run kept them) at initialisation."""

    layer: int
    name: str
    kernels: np.ndarray  # (out, in, k, k) trained
    baseline: KernelBaseline
    trained: list[KernelComparison]
    initial_kernels: np.ndarray | None
    initial: list[KernelComparison] | None

    def counts(self, q: float) -> tuple[int, int | None]:
        """Kernels beating the baseline's ``q`` th percentile: trained, at initialisation."""
        before = None if self.initial is None else beating(self.initial, self.baseline, q)
        return beating(self.trained, self.baseline, q), before

    def lines(self) -> list[str]:
        """The summary as text, one kernel a line (``cnnkit weights``)."""
        out, channels, size = self.kernels.shape[:3]
        summed = f" (summed over {channels} input channels)" if channels > 1 else ""
        lines = [f"{self.name} (layer {self.layer}): {out} kernels of {size}x{size}{summed}",
                 f"random baseline: {self.baseline.describe()}"]
        lines += [f"  kernel {c.index:>3}: {c.label}" for c in self.trained]
        for q in (95, 99):
            trained, before = self.counts(q)
            then = "" if before is None else f", at initialisation {before}"
            lines.append(f"beat the random {q}th percentile: {trained} of {out}{then} (by "
                         f"chance about {out * (100 - q) / 100:.1f})")
        if self.initial is None:
            lines.append("(the run did not keep its initial weights: trained before cnnkit "
                         "kept them, or a lone checkpoint file)")
        return lines


def summarise_kernels(model: TrainedModel, layer: int | None = None) -> KernelSummary:
    """:class:`KernelSummary` of convolution ``layer`` (default: the first)."""
    layers = dict(model.conv_weights())
    if not layers:
        raise InvalidArgument("the model has no convolution layer")
    layer = min(layers) if layer is None else layer
    if layer not in layers:
        raise InvalidArgument(f"layer must be a convolution ({sorted(layers)}), got {layer!r}")
    baseline = kernel_baseline(model, layer)
    initial = initial_kernels(model, layer)
    return KernelSummary(
        layer, model.info.names[layer], layers[layer], baseline,
        compare_kernels(model, layer, baseline=baseline, weights=layers[layer]), initial,
        None if initial is None else compare_kernels(model, layer, baseline=baseline,
                                                     weights=initial))


def _kernel_grid(panel, kernels: np.ndarray, labels: Sequence[str], columns: int) -> None:
    """Kernels ``(N, k, k)`` in a grid, each on its own symmetric scale, titled by its label."""
    rows = math.ceil(len(kernels) / columns)
    grid = panel.subplots(rows, columns, squeeze=False)
    for axes in grid.ravel()[len(kernels):]:
        axes.set_axis_off()
    for axes, kernel, label in zip(grid.ravel(), kernels, labels):
        extent = float(np.abs(kernel).max()) or 1.0
        axes.imshow(kernel, cmap="RdBu_r", vmin=-extent, vmax=extent)
        axes.set_title(label, fontsize=6)
        axes.set_xticks([])
        axes.set_yticks([])


def weights_figure(model: TrainedModel, summary: KernelSummary | None = None) -> Figure:
    """The first convolution's kernels, each labelled with its nearest classic kernel and its
    rank among random kernels (:func:`compare_kernels`), beside the same kernels at
    initialisation when the run kept them; then each deeper convolution's kernels summed over
    their input channels, with the norm of each.

    Each kernel has its own symmetric colour scale (red positive, blue negative).
    """
    from cnnkit.pictures import tile_maps
    from cnnkit.plots import new_figure

    summary = summary or summarise_kernels(model)
    layers = [(i, w) for i, w in model.conv_weights() if i != summary.layer]
    first = summary.kernels
    columns = min(8, len(first))
    rows = math.ceil(len(first) / columns)
    first_height = 1.3 * rows + 0.6
    panels_first = 1 if summary.initial is None else 2
    heights = [first_height] * panels_first + [2.4] * len(layers)
    figure = new_figure(11.0, sum(heights))
    panels = list(figure.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0])
    size = f"{first.shape[2]}×{first.shape[3]}"
    summed = f", summed over {first.shape[1]} input channels" if first.shape[1] > 1 else ""
    (trained95, before95), (trained99, before99) = summary.counts(95), summary.counts(99)
    panels[0].suptitle(
        f"{summary.name}: {len(first)} trained kernels of {size}{summed}: nearest classic "
        f"kernel, cosine, share of random kernels it beats ({trained95} beat the random 95th "
        f"percentile, {trained99} the 99th; by chance {0.05 * len(first):.1f} and "
        f"{0.01 * len(first):.1f})", fontsize=8)
    _kernel_grid(panels[0], first.sum(axis=1),
                 [f"{c.index}: {c.short_label}" for c in summary.trained], columns)
    if summary.initial is not None:
        panels[1].suptitle(f"the same kernels at initialisation ({before95} beat the random "
                           f"95th percentile, {before99} the 99th)", fontsize=8)
        _kernel_grid(panels[1], summary.initial_kernels.sum(axis=1),
                     [f"{c.index}: {c.short_label}" for c in summary.initial], columns)
    for panel, (index, weights) in zip(panels[panels_first:], layers):
        panel.suptitle(f"{model.info.names[index]}: {len(weights)} kernels summed over "
                       f"{weights.shape[1]} input channels, and the norm of each (what each "
                       "responds to: the patches figure)", fontsize=8)
        left, right = panel.subplots(1, 2, width_ratios=[3, 1])
        kernels = weights.sum(axis=1)
        extent = float(np.abs(kernels).max()) or 1.0
        left.imshow(tile_maps(kernels, columns=16), cmap="RdBu_r", vmin=-extent, vmax=extent)
        left.set_axis_off()
        norms = np.linalg.norm(weights.reshape(len(weights), -1), axis=1)
        right.bar(range(len(norms)), norms, color="tab:gray")
        right.set_xlabel("kernel", fontsize=8)
    return figure


def patch_mosaic(channels: list[list[Patch]], *, columns: int, gap: int = 2) -> np.ndarray:
    """The patches of every channel as one uint8 picture ``(H, W, 3)``: each channel a row of
    its patches (strongest first), the channels in ``columns`` columns, white between."""
    height, width = channels[0][0].pixels.shape[1:]
    count = max(len(found) for found in channels)
    strip_width = count * (width + gap) + 3 * gap
    rows = math.ceil(len(channels) / columns)
    picture = np.full((rows * (height + gap), columns * strip_width, 3), 255, np.uint8)
    for channel, found in enumerate(channels):
        row, column = divmod(channel, columns)
        top, left = row * (height + gap), column * strip_width
        for number, patch in enumerate(found):
            start = left + number * (width + gap)
            pixels = np.repeat(patch.pixels, 3, axis=0) if len(patch.pixels) == 1 else patch.pixels
            picture[top:top + height, start:start + width] = pixels.transpose(1, 2, 0)
    return picture


def mosaic_columns(count: int) -> int:
    """Columns of channels in a patch mosaic: one for a few channels, up to four for many."""
    return 1 if count <= 8 else 2 if count <= 32 else 4


def patches_figure(model: TrainedModel, patches: dict[int, list[list[Patch]]]) -> Figure:
    """For each layer of ``patches`` (:func:`top_patches` by layer), every channel's patches
    in a row, strongest first, labelled with the channel's index."""
    from cnnkit.plots import new_figure

    if not patches:
        raise InvalidArgument("patches must hold at least one layer")
    mosaics = {layer: (patch_mosaic(channels, columns=mosaic_columns(len(channels))),
                       mosaic_columns(len(channels))) for layer, channels in patches.items()}
    heights = [0.6 + 9.0 * picture.shape[0] / picture.shape[1] for picture, _ in
               mosaics.values()]
    figure = new_figure(10.0, sum(heights))
    panels = figure.subfigures(len(patches), 1, height_ratios=heights, squeeze=False)[:, 0]
    for panel, (layer, channels) in zip(panels, patches.items()):
        picture, columns = mosaics[layer]
        rows_field, columns_field = model.info.receptive_fields()[layer]
        axes = panel.subplots()
        axes.imshow(picture, interpolation="nearest")
        axes.set_axis_off()
        axes.set_title(f"{model.info.names[layer]}: for each channel (number at the left), the "
                       f"test patches that excite it most ({rows_field.size}×"
                       f"{columns_field.size} pixels, its receptive field), strongest first",
                       fontsize=8)
        per_row = math.ceil(len(channels) / columns)
        height = picture.shape[0] / per_row
        for channel in range(len(channels)):
            row, column = divmod(channel, columns)
            axes.text(column * picture.shape[1] / columns - 1, (row + 0.45) * height,
                      str(channel), fontsize=5, ha="right", va="center")
    return figure


def beating(comparisons: Sequence[KernelComparison], baseline: KernelBaseline,
            q: float) -> int:
    """How many of the kernels beat the baseline's ``q`` th percentile."""
    threshold = baseline.percentile(q)
    return sum(c.match.similarity > threshold for c in comparisons)


def initial_kernels(model: TrainedModel, layer: int) -> np.ndarray | None:
    """The weights ``(out, in, k, k)`` of convolution ``layer`` when the run started, or None
    when the run did not keep them (runs of earlier cnnkit versions; a lone checkpoint file)."""
    from cnnkit.engines.checkpoint import Checkpoint
    from cnnkit.runfolder import RunFolder

    source = model.source
    if source is None:
        return None
    path = RunFolder.of(source).initial
    if not path.is_file():
        return None
    return np.asarray(Checkpoint.load(path).model[f"{layer}.weight"], np.float64)


# --- What each filter responds to -----------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    """The part of a test image that one channel responds to most (its receptive field around
    the strongest position), as uint8 ``(C, h, w)``, with what lies outside the image (the
    layer's padding) at the training background's value."""

    image: int  # index in the images given
    row: int  # the strongest position in the layer's output
    column: int
    value: float
    box: tuple[int, int, int, int]  # top, left, bottom, right in the image (may pass its edges)
    pixels: np.ndarray


def top_patches(model: TrainedModel, images: np.ndarray, layer: int, *, per_channel: int = 9,
                batch_size: int = 250) -> list[list[Patch]]:
    """For every channel of ``layer``, the ``per_channel`` images that excite it most, each as
    the patch around its strongest position, strongest first (one patch per image).

    The images (uint8 ``(N, C, H, W)``) run through the model in batches, so memory stays
    bounded for any number.
    """
    info = model.info
    layer = info.check_map_layer(layer)
    per_channel = check_int(per_channel, "per_channel", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != info.input_shape or images.dtype != np.uint8:
        raise InvalidArgument(f"images must be uint8 (N, {', '.join(map(str, info.input_shape))})"
                              f", got {images.dtype} {images.shape}")
    channels = info.layers[layer].output_shape[0]
    best_value = np.full((channels, 0), -np.inf)
    best_where = np.zeros((channels, 0, 3), np.int64)  # image, row, column
    for start in range(0, len(images), batch_size):
        maps = model.layer_outputs(model.normalise(images[start:start + batch_size]),
                                   [layer])[0][layer]
        count, _, _, width = maps.shape
        flat = maps.reshape(count, channels, -1)
        position = flat.argmax(axis=2)  # (count, channels)
        value = np.take_along_axis(flat, position[..., None], axis=2)[..., 0].T
        where = np.stack([np.broadcast_to(np.arange(start, start + count), (channels, count)),
                          position.T // width, position.T % width], axis=2)
        best_value = np.concatenate([best_value, value], axis=1)
        best_where = np.concatenate([best_where, where], axis=1)
        keep = np.argsort(-best_value, axis=1, kind="stable")[:, :per_channel]
        best_value = np.take_along_axis(best_value, keep, axis=1)
        best_where = np.take_along_axis(best_where, keep[..., None], axis=1)
    rows_field, columns_field = info.receptive_fields()[layer]
    fill = 0 if info.background != "light" else 255
    patches = []
    for channel in range(channels):
        found = []
        for value, (image, row, column) in zip(best_value[channel], best_where[channel],
                                               strict=True):
            top, bottom = rows_field.window(int(row))
            left, right = columns_field.window(int(column))
            found.append(Patch(int(image), int(row), int(column), float(value),
                               (top, left, bottom, right),
                               _cut(images[image], top, left, bottom, right, fill)))
        patches.append(found)
    return patches


def _cut(image: np.ndarray, top: int, left: int, bottom: int, right: int,
         fill: int) -> np.ndarray:
    """``image[:, top:bottom, left:right]`` with what lies outside the image set to ``fill``."""
    channels, height, width = image.shape
    patch = np.full((channels, bottom - top, right - left), fill, np.uint8)
    rows = slice(max(top, 0), min(bottom, height))
    columns = slice(max(left, 0), min(right, width))
    patch[:, rows.start - top:rows.stop - top, columns.start - left:columns.stop - left] = (
        image[:, rows, columns])
    return patch


# --- Sanity checks of attributions ----------------------------------------------------------


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (average ranks for ties); 0 when either map is
    constant (a flat map has no order to agree with).

    >>> rank_correlation(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
    """
    def ranks(values: np.ndarray) -> np.ndarray:
        values = values.ravel()
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        # ties share the mean of their ranks
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=ranked)
        return (sums / counts)[inverse]

    a, b = ranks(np.asarray(first, np.float64)), ranks(np.asarray(second, np.float64))
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 0.0


@dataclass(frozen=True)
class RandomisationStep:
    """One step of a randomisation check: what was randomised, and per method the mean
    Spearman correlation (over the images) between the randomised and the trained maps."""

    randomised: str
    correlations: dict[str, float]

    def passed(self, method: str) -> bool:
        """Whether ``method``'s maps changed enough (absolute correlation below
        :data:`SANITY_THRESHOLD`)."""
        return abs(self.correlations[method]) < SANITY_THRESHOLD


def _randomised_weights(model: TrainedModel, layers: Sequence[int], seed: int) -> dict:
    """The model's weights with the parameters of ``layers`` drawn again as at initialisation
    (the NumPy engine's initialiser, seeded)."""
    from cnnkit.nn import build_model

    fresh = build_model(model.info.arch, model.info.input_shape, model.info.num_classes,
                        seed=seed, dtype=np.float32).state_dict()
    weights = dict(model.network.weights())
    for layer in layers:
        for name in list(weights):
            if name.startswith(f"{layer}."):
                weights[name] = fresh[name]
    return weights


def _maps_of(weights: dict, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray,
             methods: Sequence[str]) -> dict[str, np.ndarray]:
    other = TrainedModel.from_weights(
        model.info.arch, model.info.input_shape, weights, class_names=model.info.class_names,
        normalisation=model.info.normalisation, background=model.info.background,
        dataset=model.info.dataset, engine=model.engine)
    return {method: other.attribute(inputs, targets, method=method) for method in methods}


def _correlations(maps: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict:
    return {method: float(np.mean([rank_correlation(a, b) for a, b in
                                   zip(maps[method], reference[method], strict=True)]))
            for method in maps}


def cascading_randomisation(model: TrainedModel, pixels: np.ndarray, *,
                            methods: Sequence[str] = METHODS,
                            seed: int = 0) -> list[RandomisationStep]:
    """Adebayo et al.'s cascading model-parameter randomisation for uint8 images ``pixels``.

    The layers with parameters are re-initialised from the last one down, one more each step;
    at each step every method's maps for the trained model's predicted classes are compared
    with the trained model's maps. A method that explains the model gives correlations that
    fall towards 0; one near 1 to the end ignores the weights.
    """
    methods = [check_choice(m, "method", METHODS) for m in methods]
    inputs = model.normalise(pixels)
    targets = model.logits(inputs).argmax(axis=1)
    reference = {m: model.attribute(inputs, targets, method=m) for m in methods}
    parameterised = [index for index in reversed(range(len(model.info.layers)))
                     if model.info.layers[index].parameters]
    steps = []
    for count in range(1, len(parameterised) + 1):
        layers = parameterised[:count]
        maps = _maps_of(_randomised_weights(model, layers, seed), model, inputs, targets,
                        methods)
        steps.append(RandomisationStep(f"{model.info.names[layers[-1]]} and above",
                                       _correlations(maps, reference)))
    return steps


def label_randomisation(model: TrainedModel, pixels: np.ndarray, images: np.ndarray,
                        labels: np.ndarray, *, steps: int = 200, batch_size: int = 64,
                        lr: float = 1e-3, methods: Sequence[str] = METHODS,
                        seed: int = 0) -> RandomisationStep:
    """Adebayo et al.'s data randomisation test: the same architecture trained for ``steps``
    Adam steps on ``images`` with their labels shuffled, then every method's maps of
    ``pixels`` compared with the trained model's (mean Spearman correlation). The randomised
    model learns no class, so maps that still agree explain the input, not what was learned.
    """
    from cnnkit.engines.base import engine_class
    from cnnkit.engines.config import TrainConfig

    methods = [check_choice(m, "method", METHODS) for m in methods]
    steps = check_int(steps, "steps", minimum=1)
    info, norm = model.info, model.info.normalisation
    shuffled = np.random.default_rng(seed).permutation(np.asarray(labels, np.int64))
    runner = engine_class(model.engine)(TrainConfig(device="cpu", precision="fp32",
                                                    channels_last=False,
                                                    fused_optimizer=False))
    runner.build(info.arch, info.input_shape, info.num_classes, seed=seed, lr=lr)
    loader = runner.loader(images, shuffled, batch_size=batch_size, mean=norm.mean,
                           std=norm.std)
    runner.seed_epoch(seed, 0)
    runner.start_epoch()
    done, epoch = 0, 0
    while done < steps:
        for batch in loader.batches(seed, epoch):
            runner.train_step(batch, lr)
            done += 1
            if done == steps:
                break
        epoch += 1
    weights = {name: np.asarray(value, np.float32) for name, value in runner.state()[0].items()}
    inputs = model.normalise(pixels)
    targets = model.logits(inputs).argmax(axis=1)
    reference = {m: model.attribute(inputs, targets, method=m) for m in methods}
    maps = _maps_of(weights, model, inputs, targets, methods)
    return RandomisationStep(f"trained {steps} steps on shuffled labels",
                             _correlations(maps, reference))
