"""What a trained network is, without its weights: the typed description every checkpoint holds.

:class:`ModelInfo` is the one reading of a checkpoint's ``model_info`` entry (a JSON object on
disk): the architecture traced on the input shape (so each layer's kind, output shape and
module arguments are typed fields, never looked up by string key), the class names, the data
set it was trained on, the background of its images and the pixel :class:`Normalisation`.

:class:`Normalisation` is the one formula that turns uint8 pixels into what a network takes,
``(pixel / 255 - mean) / std``, computed in float32 as ``pixel * scale - shift``. Both engines'
loaders, training's augmentation fill, prediction, explanation and the ONNX export use it, so the
numbers are identical everywhere.

Which layers have feature maps, which of them are worth showing and which one Grad-CAM looks at
are decided here, from the traced kinds, for every view and engine alike.

Nothing here imports an engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cnnkit._files import display_name
from cnnkit.arch import Architecture, LayerTrace, load_architecture, parse_input_shape, trace
from cnnkit.errors import InvalidArgument

__all__ = ["ACTIVATIONS", "BACKGROUNDS", "ModelInfo", "Normalisation", "ReceptiveField",
           "background_of", "layer_names", "layers_to_show"]

#: Layer kinds that rectify or squash a map (a convolution followed by one is shown after it).
ACTIVATIONS = ("relu", "tanh", "sigmoid")

#: The two kinds of background a checkpoint records for its training images.
BACKGROUNDS = ("dark", "light")


def background_of(brightness: float) -> str:
    """``'dark'`` when a border's mean brightness (0 black to 1 white) is below one half,
    ``'light'`` otherwise.

    The one rule for both sides: training calls the training images' background this way
    (:func:`cnnkit.engines.training.image_statistics`), and
    :meth:`cnnkit.model.TrainedModel.prepare` calls a picture's border this way to decide
    whether to invert it.

    >>> background_of(0.1), background_of(0.5), background_of(0.9)
    ('dark', 'light', 'light')
    """
    return "dark" if brightness < 0.5 else "light"


@dataclass(frozen=True)
class Normalisation:
    """Pixel statistics of the training split in [0, 1] units, and the formula that uses them.

    >>> norm = Normalisation(0.5, 0.25)
    >>> norm.apply(np.array([0, 255], np.uint8)).tolist()
    [-2.0, 2.0]
    >>> norm.describe()
    '(pixel/255 - 0.500) / 0.250'
    """

    mean: float
    std: float

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value
            ):
                raise InvalidArgument(f"the pixel {name} must be a finite number, got {value!r}")
        if not self.std > 0:
            raise InvalidArgument(f"the pixel std must be positive, got {self.std!r}")

    @property
    def scale(self) -> np.float32:
        """The factor of a uint8 pixel: ``1 / (255 std)``."""
        return np.float32(1.0 / (255.0 * self.std))

    @property
    def shift(self) -> np.float32:
        """What is subtracted after scaling: ``mean / std``."""
        return np.float32(self.mean / self.std)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (or any real) pixels as float32 ``pixel * scale - shift``, a new array."""
        return np.asarray(pixels, np.float32) * self.scale - self.shift

    def value_of(self, intensity: float) -> float:
        """What a pixel of ``intensity`` in [0, 1] becomes (a dark background is 0)."""
        return float((intensity - self.mean) / self.std)

    def describe(self, digits: int = 3) -> str:
        """The formula with the numbers put in."""
        return f"(pixel/255 - {self.mean:.{digits}f}) / {self.std:.{digits}f}"


def layers_to_show(kinds: Sequence[str], *, every: bool = False) -> list[int]:
    """The layers whose feature maps are worth showing, from the layers' kinds in order.

    Every layer before the first ``flatten`` or ``linear`` has maps ``(C, H, W)``; with
    ``every`` all of them are listed. Otherwise a convolution directly followed by an activation
    is left out (its activation shows the same maps, rectified).

    >>> layers_to_show(["conv2d", "relu", "max_pool2d", "conv2d", "flatten", "linear"])
    [1, 2, 3]
    >>> layers_to_show(["conv2d", "relu", "max_pool2d", "flatten", "linear"], every=True)
    [0, 1, 2]
    """
    kinds = list(kinds)
    spatial = []
    for index, kind in enumerate(kinds):
        if kind in ("flatten", "linear"):
            break
        spatial.append(index)
    if every:
        return spatial
    return [index for index in spatial
            if not (kinds[index] == "conv2d" and index + 1 < len(kinds)
                    and kinds[index + 1] in ACTIVATIONS)]


#: The short name of each layer kind, numbered in order of appearance (conv1, pool1, fc1, ...).
_SHORT_NAMES = {"conv2d": "conv", "max_pool2d": "pool", "avg_pool2d": "avgpool",
                "global_avg_pool2d": "gap", "batch_norm2d": "bn", "linear": "fc"}


def layer_names(kinds: Sequence[str]) -> list[str]:
    """Readable layer names: each kind's short name numbered in order of appearance.

    >>> layer_names(["conv2d", "relu", "max_pool2d", "conv2d", "relu", "flatten", "linear"])
    ['conv1', 'relu1', 'pool1', 'conv2', 'relu2', 'flatten1', 'fc1']
    """
    counts: dict[str, int] = {}
    names = []
    for kind in kinds:
        short = _SHORT_NAMES.get(kind, kind)
        counts[short] = counts.get(short, 0) + 1
        names.append(f"{short}{counts[short]}")
    return names


@dataclass(frozen=True)
class ReceptiveField:
    """Where an output pixel of a layer looks in the input image, along one axis.

    Output position ``i`` of the layer sees input positions ``start + i * jump`` up to
    ``start + i * jump + size - 1`` (positions below 0 or past the image are padding).
    """

    size: int
    jump: int
    start: int

    def window(self, index: int) -> tuple[int, int]:
        """The first and one-past-last input position that output ``index`` sees."""
        first = self.start + index * self.jump
        return first, first + self.size


@dataclass(frozen=True)
class ModelInfo:
    """A trained network's description: architecture, input, classes, data and normalisation.

    ``layers`` is the architecture traced on ``input_shape`` (one
    :class:`~cnnkit.arch.LayerTrace` per layer: kind, output shape, parameters, module
    arguments). ``background`` is ``'dark'`` or ``'light'``, the training images' border as
    :func:`background_of` names it, or None in checkpoints older than that entry.

    >>> info = ModelInfo.from_dict({"arch": "tutorial", "input_shape": [1, 28, 28],
    ...     "num_classes": 10, "class_names": list("0123456789"), "mean": 0.13, "std": 0.31})
    >>> info.kinds[:3], info.spatial_layers, info.gradcam_layer
    (['conv2d', 'relu', 'max_pool2d'], [0, 1, 2, 3, 4, 5], 4)
    """

    arch: Architecture
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    normalisation: Normalisation
    layers: tuple[LayerTrace, ...]
    background: str | None = None
    dataset: str = "synthetic-digits"

    def __post_init__(self) -> None:
        if self.background is not None and self.background not in BACKGROUNDS:
            raise InvalidArgument(f"the model's background must be 'dark', 'light' or absent "
                                  f"(None), got {self.background!r}")

    @classmethod
    def from_dict(cls, info: Mapping, dataset: str = "synthetic-digits") -> ModelInfo:
        """The description from a checkpoint's ``model_info`` object (already checked by
        :class:`~cnnkit.engines.checkpoint.Checkpoint`), and the data set of its config."""
        arch = load_architecture(info["arch"])
        input_shape = parse_input_shape(info["input_shape"])
        num_classes = int(info["num_classes"])
        return cls(arch, input_shape, num_classes,
                   tuple(display_name(str(name)) for name in info["class_names"]),
                   Normalisation(info["mean"], info["std"]),
                   tuple(trace(arch, input_shape, num_classes)), info.get("background"),
                   str(dataset))

    def to_dict(self) -> dict:
        """The JSON form stored in a checkpoint."""
        return {"arch": self.arch.to_dict(), "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "class_names": list(self.class_names),
                "mean": self.normalisation.mean, "std": self.normalisation.std,
                "background": self.background}

    @property
    def kinds(self) -> list[str]:
        """Each layer's kind (``conv2d``, ``relu``, ...), in order."""
        return [row.type for row in self.layers]

    @property
    def spatial_layers(self) -> list[int]:
        """The layers whose output is a stack of maps ``(C, H, W)``."""
        return layers_to_show(self.kinds, every=True)

    def shown_layers(self, *, every: bool = False) -> list[int]:
        """See :func:`layers_to_show`."""
        return layers_to_show(self.kinds, every=every)

    @property
    def conv_layers(self) -> list[int]:
        """The indices of the convolutions."""
        return [row.index for row in self.layers if row.type == "conv2d"]

    @property
    def gradcam_layer(self) -> int:
        """Grad-CAM's default layer: the last convolution, or the activation right after it."""
        convolutions = self.conv_layers
        if not convolutions:
            raise InvalidArgument("Grad-CAM needs a convolution layer; this model has none")
        last = convolutions[-1]
        kinds = self.kinds
        return last + 1 if last + 1 < len(kinds) and kinds[last + 1] in ACTIVATIONS else last

    def check_map_layer(self, layer: object) -> int:
        """``layer`` if it is the index of a layer with feature maps, else a clear refusal."""
        allowed = self.spatial_layers
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or int(
            layer
        ) not in allowed:
            choices = ", ".join(map(str, allowed))
            raise InvalidArgument(
                f"layer must be the index of a layer with feature maps ({choices}), got {layer!r}"
            )
        return int(layer)

    @property
    def names(self) -> list[str]:
        """Readable layer names (:func:`layer_names`): conv1, relu1, pool1, ..."""
        return layer_names(self.kinds)

    def layer_label(self, index: int) -> str:
        """``conv2 (layer 3)``."""
        return f"{self.names[index]} (layer {index})"

    def receptive_fields(self) -> list[tuple[ReceptiveField, ReceptiveField]]:
        """The receptive field (rows, columns) of each layer with feature maps, in the image.

        A convolution or pooling of kernel ``k``, stride ``s``, padding ``p`` and dilation
        ``d`` turns a field (size ``r``, jump ``j``, start ``t``) into
        (``r + d (k - 1) j``, ``j s``, ``t - p j``); other layers keep it.

        >>> info = ModelInfo.from_dict({"arch": "tutorial", "input_shape": [1, 28, 28],
        ...     "num_classes": 10, "class_names": list("0123456789"), "mean": 0, "std": 1})
        >>> [rows for rows, _ in info.receptive_fields()][3]
        ReceptiveField(size=14, jump=2, start=-6)
        """
        field = (ReceptiveField(1, 1, 0), ReceptiveField(1, 1, 0))
        fields = []
        for index in self.spatial_layers:
            arguments = self.layers[index].arguments
            if "kernel_size" in arguments:
                kernel = arguments["kernel_size"]
                stride = arguments.get("stride") or kernel
                dilation = arguments.get("dilation", 1)
                padding = arguments.get("padding", 0)
                field = tuple(ReceptiveField(f.size + dilation * (kernel - 1) * f.jump,
                                             f.jump * stride, f.start - padding * f.jump)
                              for f in field)
            elif self.layers[index].type == "global_avg_pool2d":
                field = tuple(ReceptiveField(n, n, 0) for n in self.input_shape[1:])
            fields.append(field)
        return fields
