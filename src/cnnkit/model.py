"""A trained model, whichever engine computes it: the one object every consumer of a run shares.

:class:`TrainedModel` is loaded once from a run folder or checkpoint. It holds the checkpoint,
the typed :class:`~cnnkit.modelinfo.ModelInfo`, and the network on one engine: NumPy
(:mod:`cnnkit.nn`, no PyTorch needed) or PyTorch, chosen by name or, with ``'auto'``, PyTorch
where it imports. ``cnnkit evaluate``, ``predict``, ``explain``, ``weights``, ``report``,
``serve`` and ``export`` all go through it.

An engine lends the model a :class:`Network`, an interface of three methods:

``run(inputs, start, stop)``
    the layers ``start`` to ``stop - 1`` applied to a float32 batch (evaluation mode);
``pullback(inputs, start, stop, grad_output)``
    the gradient with respect to ``inputs`` of ``sum(grad_output * run(inputs, start, stop))``
    (a vector-Jacobian product: PyTorch's autograd, or the NumPy layers' own backward passes);
``weights()``
    the parameters by PyTorch's state-dict names.

On these three, per-layer outputs, probabilities, penultimate features and the attributions are
written once, in NumPy:

``saliency``
    ``|∂ score / ∂ pixel|``, the largest over the colour channels (Simonyan et al., 2014).
``gradcam``
    Grad-CAM (Selvaraju et al., 2017) on one layer (default: the last convolution, after its
    activation): the layer's maps weighted by the spatial mean of the score's gradient, summed,
    rectified and resized bilinearly to the image (as ``torch.nn.functional.interpolate`` with
    ``align_corners=False``).
``integrated-gradients``
    ``(x - x₀) · mean of ∂ score / ∂ x`` along the straight path from a baseline ``x₀`` to ``x``
    (Sundararajan et al., 2017, midpoint rule), summed over channels; signed, and the
    attributions add up to about ``score(x) - score(x₀)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.arch import Architecture, load_architecture, parse_input_shape
from cnnkit.engines.base import engine_class
from cnnkit.engines.checkpoint import Checkpoint, load_checkpoint
from cnnkit.engines.config import TrainConfig
from cnnkit.errors import InvalidArgument
from cnnkit.modelinfo import ModelInfo, Normalisation, background_of
from cnnkit.nn.loss import softmax

__all__ = [
    "INVERT_MODES",
    "METHODS",
    "UNLIKE_TRAINING_STDS",
    "Network",
    "PreparedImage",
    "TrainedModel",
    "bilinear_resize",
    "border_brightness",
    "inverts",
    "softmax",
    "top_classes",
]

#: Attribution methods.
METHODS = ("saliency", "gradcam", "integrated-gradients")

#: Accepted values of ``invert``: judge by the picture's border (the default), always, never.
INVERT_MODES = ("auto", "always", "never")

#: A prepared picture whose mean brightness lies further than this many pixel standard
#: deviations of the training images from their mean gets a warning: the model has seen few
#: pictures like it (an MNIST digit's mean is 0.13 with a pixel spread of 0.31, so a picture
#: brighter than 0.44 on average is flagged).
UNLIKE_TRAINING_STDS = 1.0

#: The normalisation that only scales pixels to [0, 1] (mean 0, std 1).
ZERO_ONE = Normalisation(0.0, 1.0)

#: Rows per pass through the network (bounded memory for any number of images).
BATCH_ROWS = 500
#: Rows per backward pass of integrated gradients (every point of every path, in chunks).
PATH_ROWS = 256


class Network(Protocol):
    """What an engine lends a :class:`TrainedModel` (see the module's notes)."""

    def run(self, inputs: np.ndarray, start: int, stop: int) -> np.ndarray: ...

    def pullback(self, inputs: np.ndarray, start: int, stop: int,
                 grad_output: np.ndarray) -> np.ndarray: ...

    def weights(self) -> dict[str, np.ndarray]: ...


def top_classes(probabilities: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ``top_k`` most probable classes of each row, most probable first
    (ties to the lower index), and their probabilities.

    >>> top_classes(np.array([[0.2, 0.5, 0.3]]), 2)[0].tolist()
    [[1, 2]]
    """
    k = min(check_int(top_k, "top_k", minimum=1), probabilities.shape[1])
    indices = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return indices, np.take_along_axis(probabilities, indices, axis=1)


def bilinear_resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` to ``(N, H, W)`` as PyTorch's bilinear interpolation with
    ``align_corners=False``: sample points at ``(i + 0.5) * h / H - 0.5``, clamped at 0.

    >>> bilinear_resize(np.array([[[0.0, 1.0]]]), (1, 4)).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
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


def border_brightness(pixels: np.ndarray) -> float:
    """The mean brightness, 0 (black) to 1 (white), of the outermost rows and columns of uint8
    pixels ``(C, H, W)``, over every channel (corners count twice, as in training's
    :func:`~cnnkit.engines.training.image_statistics`).

    >>> border_brightness(np.pad(np.zeros((1, 2, 2), np.uint8), ((0, 0), (1, 1), (1, 1)),
    ...                          constant_values=255))
    1.0
    """
    edges = (pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1])
    total = sum(float(edge.sum(dtype=np.int64)) for edge in edges)
    return total / sum(edge.size for edge in edges) / 255.0


def inverts(invert: str, border: float, background: str | None) -> bool:
    """Whether :meth:`TrainedModel.prepare` inverts a picture whose border has brightness
    ``border`` (0 to 1), for a model whose training images have ``background``.

    ``'always'`` and ``'never'`` say it; ``'auto'`` inverts when the border and the training
    background lie on two sides of one half (:func:`cnnkit.modelinfo.background_of`, the rule
    training used to name the background). Without a recorded background (checkpoints older
    than that entry) ``'auto'`` does not invert.

    >>> [inverts("auto", 0.9, background) for background in ("dark", "light", None)]
    [True, False, False]
    >>> inverts("auto", 0.2, "light"), inverts("never", 0.9, "dark")
    (True, False)
    """
    invert = check_choice(invert, "invert", INVERT_MODES)
    if invert != "auto":
        return invert == "always"
    return background is not None and background_of(border) != background


_MODE_NAMES = {"1": "black-and-white", "L": "grayscale", "LA": "grayscale with alpha",
               "P": "palette colour", "RGB": "RGB", "RGBA": "RGBA", "CMYK": "CMYK",
               "I;16": "16-bit grayscale", "I": "32-bit grayscale", "F": "float grayscale"}


@dataclass
class PreparedImage:
    """An image file brought to a model's input, with a note on each step taken."""

    path: str
    pixels: np.ndarray  # uint8 (C, H, W), before normalisation
    size: tuple[int, int]  # the file's (rows, columns)
    padded: bool  # another aspect ratio than the model's: padded with its background
    inverted: bool  # its brightness inverted (255 - pixel), to match the training background
    notes: list[str] = field(default_factory=list)  # each step taken, in order
    #: Ways the prepared picture looks unlike the training images (empty when it does not).
    warnings: list[str] = field(default_factory=list)


class TrainedModel:
    """A checkpoint's network on one engine, and everything the views ask of it.

    Parameters
    ----------
    checkpoint : Checkpoint
        Already read (see :meth:`load` to read one from a run folder or file).
    where : str
        How messages name the checkpoint.
    engine : {'auto', 'numpy', 'torch'}, optional
        Which engine computes (default: PyTorch where it imports, NumPy otherwise).
    device : str
        The PyTorch engine's device.
    """

    def __init__(self, checkpoint: Checkpoint, *, where: str, engine: str | None = None,
                 device: str = "cpu") -> None:
        self.checkpoint = checkpoint
        self.where = where
        #: The run folder or checkpoint file it was loaded from (None: built in memory).
        self.source: Path | None = None
        self.info = ModelInfo.from_dict(checkpoint.model_info,
                                        checkpoint.config.get("dataset", "synthetic-digits"))
        config = TrainConfig(device=device, precision="fp32", channels_last=False,
                             fused_optimizer=False)
        self.runner = engine_class(engine)(config)
        self.runner.build(self.info.arch, self.info.input_shape, self.info.num_classes,
                          seed=0, lr=None)
        self.runner.load_weights(checkpoint.model, where)
        self.network: Network = self.runner.network()

    @classmethod
    def load(cls, source: str | os.PathLike, *, engine: str | None = None,
             device: str = "cpu", best: bool = False) -> TrainedModel:
        """The model of a checkpoint file or run folder (its last, or best with ``best``)."""
        model = cls(load_checkpoint(source, best=best), where=str(source), engine=engine,
                    device=device)
        model.source = Path(source)
        return model

    @classmethod
    def from_weights(
        cls,
        arch: str | os.PathLike | Mapping | Architecture,
        input_shape: Sequence[int],
        weights: Mapping[str, np.ndarray],
        *,
        class_names: Sequence[str] | None = None,
        normalisation: Normalisation = ZERO_ONE,
        background: str | None = None,
        dataset: str = "synthetic-digits",
        engine: str | None = None,
        device: str = "cpu",
    ) -> TrainedModel:
        """A model from an architecture and weights under PyTorch's state-dict names, without a
        training run (its checkpoint exists in memory only). The number of classes is the size
        of the last layer's bias or weight.

        >>> model = TrainedModel.from_weights(
        ...     {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}]},
        ...     (1, 1, 2), {"1.weight": np.eye(2, dtype=np.float32),
        ...                 "1.bias": np.zeros(2, np.float32)}, engine="numpy")
        >>> model.logits(np.array([[[[3.0, 4.0]]]])).tolist()
        [[3.0, 4.0]]
        """
        arch = arch if isinstance(arch, Architecture) else load_architecture(arch)
        input_shape = parse_input_shape(input_shape)
        last = len(arch.layers) - 1
        head = weights.get(f"{last}.bias", weights.get(f"{last}.weight"))
        if head is None:
            raise InvalidArgument(f"weights must hold the last layer's ({last}) weight or bias")
        num_classes = len(head)
        names = [str(n) for n in range(num_classes)] if class_names is None else list(class_names)
        info = {"arch": arch.to_dict(), "input_shape": list(input_shape),
                "num_classes": num_classes, "class_names": names,
                "mean": normalisation.mean, "std": normalisation.std, "background": background}
        checkpoint = Checkpoint(model={k: np.asarray(v, np.float32) for k, v in weights.items()},
                                epoch=0, config={"dataset": dataset}, model_info=info)
        checkpoint.check("the weights given")
        return cls(checkpoint, where="the weights given", engine=engine, device=device)

    def __repr__(self) -> str:
        return (f"TrainedModel({self.where!r}, engine={self.engine!r}, "
                f"arch={self.info.arch.name!r})")

    @property
    def engine(self) -> str:
        """``'numpy'`` or ``'torch'``."""
        return self.runner.name

    # -- images in --------------------------------------------------------------------------
    def prepare(self, path: str | os.PathLike, *, invert: str | None = "auto") -> PreparedImage:
        """An image file brought to the model's input, noting every change; read once.

        The image is converted to grayscale or RGB, padded to the input's aspect ratio with its
        background colour (the median of its border, so nothing is squashed), resized, and
        inverted when :func:`inverts` says so: with ``invert='auto'`` (the default; None means
        the same) when its border's brightness lies on the other side of one half from the
        training images' background (:attr:`ModelInfo.background
        <cnnkit.modelinfo.ModelInfo.background>`), so that a dark drawing on white meets a
        model of light-on-dark images (MNIST, Fashion-MNIST) as light on dark. ``'always'``
        always inverts and ``'never'`` never does.

        The returned :class:`PreparedImage` notes each step and warns, in ``warnings``, where
        the prepared picture looks unlike the training images: its border on the other side
        of one half from their background, its mean brightness further than
        :data:`UNLIKE_TRAINING_STDS` pixel standard deviations from their mean, or no
        background recorded in the checkpoint (older checkpoints), so that ``'auto'`` could
        not decide.
        """
        from cnnkit.data.imagefolder import load_image

        invert = check_choice("auto" if invert is None else invert, "invert", INVERT_MODES)
        channels, height, width = self.info.input_shape
        image, header = load_image(path, self.info.input_shape, fit="pad", with_header=True)
        flip = inverts(invert, border_brightness(image), self.info.background)
        pixels = 255 - image if flip else image
        rows, columns = header.rows, header.columns
        padded = rows * width != columns * height
        notes = []
        wanted = "L" if channels == 1 else "RGB"
        if header.mode != wanted:
            notes.append(f"converted from {_MODE_NAMES.get(header.mode, header.mode)} to "
                         f"{_MODE_NAMES[wanted]}")
        if padded:
            notes.append("padded to the input's aspect ratio with its background colour")
        if (rows, columns) != (height, width):
            notes.append(f"resized from {columns}×{rows} to {width}×{height}")
        if flip:
            now = background_of(border_brightness(pixels))
            match = ", as the training images are" if now == self.info.background else ""
            notes.append(f"inverted to {'light on dark' if now == 'dark' else 'dark on light'}"
                         f"{match}")
        notes.append(f"normalised: {self.info.normalisation.describe()}")
        return PreparedImage(str(Path(path)), pixels, (rows, columns), padded, bool(flip), notes,
                             self._unlike_training(pixels, invert))

    def _unlike_training(self, pixels: np.ndarray, invert: str) -> list[str]:
        """The warnings of :meth:`prepare` about prepared uint8 ``pixels``."""
        warnings = []
        background = self.info.background
        border = border_brightness(pixels)
        if background is None:
            if invert == "auto":
                warnings.append("the checkpoint does not record its training images' "
                                "background, so the picture was not inverted; invert it "
                                "yourself if its background differs from theirs")
        elif background_of(border) != background:
            warnings.append(f"its border is {background_of(border)} (brightness {border:.2f}) "
                            f"but the training images' background is {background}; inverting "
                            "it would match them")
        norm = self.info.normalisation
        mean = float(pixels.mean()) / 255.0
        if abs(mean - norm.mean) > UNLIKE_TRAINING_STDS * norm.std:
            warnings.append(f"its mean brightness {mean:.2f} is far from the training images' "
                            f"{norm.mean:.2f} (pixel spread {norm.std:.2f}); the model has "
                            "seen few pictures like it")
        return warnings

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 images ``(N, C, H, W)`` as the float32 input of the network."""
        return self.info.normalisation.apply(pixels)

    # -- outputs ----------------------------------------------------------------------------
    def layer_outputs(self, inputs: np.ndarray,
                      keep: Iterable[int] = ()) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """The outputs of the layers ``keep`` and the logits of normalised inputs, in one pass.

        Returns ``({layer index: float32 output}, float32 logits (N, classes))``.
        """
        inputs = _float_batch(inputs, self.info.input_shape)
        wanted = sorted(set(int(k) for k in keep))
        bad = [k for k in wanted if not 0 <= k < len(self.info.layers)]
        if bad:
            raise InvalidArgument(f"layer {bad[0]} does not exist; the model has layers 0 to "
                                  f"{len(self.info.layers) - 1}")
        outputs, value, start = {}, inputs, 0
        for index in wanted:
            value = self.network.run(value, start, index + 1)
            outputs[index], start = value, index + 1
        return outputs, self.network.run(value, start, len(self.info.layers))

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """float32 class scores of normalised inputs ``(N, C, H, W)``."""
        inputs = _float_batch(inputs, self.info.input_shape)
        if not len(inputs):
            return np.zeros((0, self.info.num_classes), np.float32)
        layers = len(self.info.layers)
        return np.concatenate([self.network.run(inputs[start:start + BATCH_ROWS], 0, layers)
                               for start in range(0, len(inputs), BATCH_ROWS)])

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """float64 class probabilities of normalised inputs."""
        return softmax(self.logits(inputs))

    def evaluate(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 1000,
                 outputs: bool = False) -> dict:
        """Loss, accuracy, count, predictions and labels over uint8 images and their labels, in
        one pass in batches; with ``outputs`` also the float64 ``probabilities`` and the
        float32 penultimate ``features`` (the input of the last layer) of every image."""
        norm = self.info.normalisation
        loader = self.runner.loader(images, labels, batch_size=batch_size, mean=norm.mean,
                                    std=norm.std)
        return self.runner.evaluate(loader, collect=True, outputs=outputs)

    def conv_weights(self) -> list[tuple[int, np.ndarray]]:
        """``(layer index, float64 weights (out, in, k, k))`` of every convolution, in order."""
        weights = self.network.weights()
        return [(index, np.asarray(weights[f"{index}.weight"], np.float64))
                for index in self.info.conv_layers]

    # -- attributions -----------------------------------------------------------------------
    def attribute(
        self,
        inputs: np.ndarray,
        targets: Sequence[int] | np.ndarray,
        *,
        method: str = "saliency",
        layer: int | None = None,
        baseline: np.ndarray | None = None,
        steps: int = 16,
    ) -> np.ndarray:
        """Attribution maps ``(N, H, W)`` of the score of class ``targets[n]`` for input ``n``.

        Parameters
        ----------
        inputs : numpy.ndarray
            ``(N, C, H, W)``, normalised (:meth:`normalise`).
        targets : sequence of int
            One class index per input.
        method : {'saliency', 'gradcam', 'integrated-gradients'}
            See the module's notes.
        layer : int, optional
            Grad-CAM's layer (default :attr:`ModelInfo.gradcam_layer`); other methods ignore it.
        baseline : numpy.ndarray, optional
            Integrated gradients' starting point, broadcastable to ``inputs`` (default zeros).
        steps : int
            Integrated gradients' number of points on the path.

        Returns
        -------
        numpy.ndarray
            float32 ``(N, H, W)``: non-negative for saliency and Grad-CAM, signed for
            integrated gradients.
        """
        method = check_choice(method, "method", METHODS)
        steps = check_int(steps, "steps", minimum=1)
        inputs = _float_batch(inputs, self.info.input_shape)
        targets = np.asarray(targets)
        if targets.shape != (len(inputs),) or not np.issubdtype(targets.dtype, np.integer) or (
            len(targets) and not (0 <= targets.min() and targets.max() < self.info.num_classes)
        ):
            raise InvalidArgument(
                f"targets must hold one class index (0 to {self.info.num_classes - 1}) per "
                f"input ({len(inputs)}), got {targets!r}"
            )
        if method == "saliency":
            return np.abs(self._score_gradient(inputs, targets, 0)).max(axis=1)
        if method == "gradcam":
            index = self.info.gradcam_layer if layer is None else self.info.check_map_layer(layer)
            activation = self.network.run(inputs, 0, index + 1)
            gradient = self._score_gradient(activation, targets, index + 1)
            weights = gradient.mean(axis=(2, 3), keepdims=True)
            cam = np.maximum((weights * activation).sum(axis=1), 0.0)
            return bilinear_resize(cam, inputs.shape[2:]).astype(np.float32)
        start = np.zeros_like(inputs) if baseline is None else np.broadcast_to(
            np.asarray(baseline, np.float32), inputs.shape)
        alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32)
        # Every point of every path, those of one step together, taken PATH_ROWS at a time.
        points = (start + alphas[:, None, None, None, None] * (inputs - start)).reshape(
            -1, *inputs.shape[1:])
        repeated = np.tile(targets, steps)
        gradients = np.concatenate([
            self._score_gradient(points[row:row + PATH_ROWS], repeated[row:row + PATH_ROWS], 0)
            for row in range(0, len(points), PATH_ROWS)])
        mean_gradient = gradients.reshape(steps, *inputs.shape).mean(axis=0)
        return ((inputs - start) * mean_gradient).sum(axis=1).astype(np.float32)

    def _score_gradient(self, value: np.ndarray, targets: np.ndarray, start: int) -> np.ndarray:
        """∂(each row's target score) / ∂value, where ``value`` enters layer ``start``."""
        one_hot = np.zeros((len(value), self.info.num_classes), np.float32)
        one_hot[np.arange(len(value)), targets] = 1.0
        return self.network.pullback(value, start, len(self.info.layers), one_hot)


def _float_batch(inputs: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Normalised inputs as a float32 ``(N, C, H, W)`` batch of the model's input shape."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 4 or tuple(inputs.shape[1:]) != tuple(input_shape):
        raise InvalidArgument(
            f"inputs must be a batch (N, {', '.join(map(str, input_shape))}) of normalised "
            f"images, got shape {inputs.shape}"
        )
    return np.ascontiguousarray(inputs, np.float32)
