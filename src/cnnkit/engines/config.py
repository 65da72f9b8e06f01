"""The training configuration: one dataclass that is also the ``cnnkit train`` option list.

Every field carries its command-line option in its metadata (:func:`option`): the help text, the
group it is listed under, and where needed the flag, choices and value parser. ``cnnkit train``
builds its parser by looping over the fields, so adding a setting is one edit here. Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from cnnkit._validate import check_choice, check_int
from cnnkit.data import AUTO_DATASET, flips_allowed
from cnnkit.engines.augment import AUGMENT_POLICIES, Warp, check_erase
from cnnkit.errors import BadFile, InvalidArgument
from cnnkit.schedule import SCHEDULES
from cnnkit.shapes import parse_input_shape

__all__ = [
    "BASE_BATCH_SIZE",
    "ENGINES",
    "LOADER_MODES",
    "LR_SCALINGS",
    "PRECISIONS",
    "STREAM_MODES",
    "TrainConfig",
    "option",
    "validation_size",
]

#: ``auto`` is PyTorch where it imports, NumPy otherwise.
ENGINES = ("auto", "numpy", "torch")
LR_SCALINGS = ("none", "linear", "sqrt")
#: Accepted values of ``precision`` (PyTorch's autocast; the NumPy engine computes in fp32).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Accepted values of ``loader`` (PyTorch engine: data on the device, or streamed to it).
LOADER_MODES = ("auto", "resident", "stream")
#: Accepted values of ``stream``: read batches from the memory-mapped data instead of memory.
STREAM_MODES = ("auto", "always", "never")
#: The batch size the tutorial's learning rate was chosen for; ``lr_scaling`` is relative to it.
BASE_BATCH_SIZE = 64


def validation_size(text: str) -> int | float:
    """A count (``10000``) or a fraction (``0.1``), as ``--val-size`` takes it.

    >>> validation_size("0.1"), validation_size("500")
    (0.1, 500)
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(
            f"--val-size must be a count such as 10000 or a fraction such as 0.1, got {text!r}"
        ) from None


def option(
    help: str,
    *,
    group: str,
    flag: str | None = None,
    parse: Callable[[str], object] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
) -> dict:
    """The metadata of a :class:`TrainConfig` field: how ``cnnkit train`` offers it.

    ``flag`` defaults to the field's name with dashes (``--batch-size``); a boolean field whose
    default is true is offered as ``--no-...``. ``parse`` turns the text into the value
    (default: the field's type).
    """
    return {"help": help, "group": group, "flag": flag, "parse": parse, "choices": choices,
            "metavar": metavar}


_DATA, _MODEL, _SPEED = "data", "model and optimisation", "hardware and speed"
_AUGMENT = "augmentation"
_LOGGING = "logging"
_WARP = Warp()
#: The warp settings each kind of policy uses.
_AFFINE_SETTINGS = ("rotate", "scale", "shear", "translate")
_ELASTIC_SETTINGS = ("elastic_alpha", "elastic_sigma")
_CHECKPOINTS = "checkpoints"


@dataclass
class TrainConfig:
    """Everything that defines a training run; it travels inside every checkpoint.

    The defaults are the tutorial's: its data set (``dataset='auto'``: MNIST when it is on disk
    or can be downloaded, synthetic digits otherwise; training resolves it with
    :func:`cnnkit.data.choose_dataset`, logs the choice and its reason, and stores the name it
    chose), its CNN, 20 epochs, batch 64, Adam with learning rate 1e-3, a sixth of the training
    images (10,000 of MNIST's 60,000) held out for validation, drawn at random within each class
    (seeded). ``train_limit`` applies first and ``val_size`` to what it keeps
    (:func:`cnnkit.data.split_train_validation`).
    """

    recipe: str | None = field(default=None, metadata=option(
        "start from a named recipe's settings; the options given override them (default: "
        "none, the tutorial's settings; --list-recipes shows them)", group=_MODEL,
        metavar="NAME"))
    #: The settings of ``recipe`` that the command line changed: ``{field: {"recipe": value,
    #: "used": value}}`` (not an option; written by :func:`cnnkit.engines.recipes.apply_recipe`).
    recipe_overrides: dict | None = None
    dataset: str = field(default="auto", metadata=option(
        "mnist, fashion-mnist, cifar-10, synthetic-digits, imagefolder:PATH or auto (default: the "
        "tutorial's mnist when it is on disk or can be downloaded, synthetic-digits otherwise; "
        "the first line says which and why)", group=_DATA))
    data_dir: str | None = field(default=None, metadata=option(
        "a folder searched first for data files (default: none, only the standard places)",
        group=_DATA))
    input_shape: tuple[int, int, int] | None = field(default=None, metadata=option(
        "image folders: resize to this shape (default: 1x28x28)", group=_DATA, flag="--input",
        metavar="CxHxW", parse=parse_input_shape))
    val_size: int | float | None = field(default=None, metadata=option(
        "validation images held out of the training images in use (after --train-limit): a "
        "count, or a fraction of them (default: a sixth, 10000 of 60000)",
        group=_DATA, parse=validation_size))
    train_limit: int | None = field(default=None, metadata=option(
        "use at most this many of the training images, drawn per class; the validation "
        "images are held out of these (default: all)", group=_DATA, parse=int))
    on_error: str = field(default="skip", metadata=option(
        "image folders: skip (default) or refuse unreadable files", group=_DATA,
        choices=("skip", "raise")))
    split_file: str | None = field(default=None, metadata=option(
        "image folders: a split file (cnnkit data split) naming the exact training, validation "
        "and test images (default: none, a seeded split)", group=_DATA, metavar="SPLIT.json"))
    cache: bool = field(default=True, metadata=option(
        "image folders: decode every file again instead of using the decoded cache",
        group=_DATA))
    cache_dir: str | None = field(default=None, metadata=option(
        "image folders: where the decoded cache lives (default: the user cache)",
        group=_DATA))
    workers: int | None = field(default=None, metadata=option(
        "image folders: processes decoding the images (default: the available cores)",
        group=_DATA, parse=int))
    stream: str = field(default="auto", metadata=option(
        "read shuffled batches from the memory-mapped cache instead of holding the images in "
        "memory: auto (default: when they exceed the memory budget), always or never",
        group=_DATA, choices=STREAM_MODES))
    arch: str = field(default="tutorial", metadata=option(
        "'tutorial' (default) or a JSON spec file", group=_MODEL))
    epochs: int = field(default=20, metadata=option(
        "passes over the training set (default 20)", group=_MODEL, parse=int))
    batch_size: int = field(default=64, metadata=option(
        "global batch size, summed over processes (default 64)", group=_MODEL, parse=int))
    lr: float = field(default=1e-3, metadata=option(
        "Adam learning rate at batch 64 (default 1e-3)", group=_MODEL, parse=float))
    lr_scaling: str = field(default="none", metadata=option(
        "scale lr with batch-size/64 (default none)", group=_MODEL, choices=LR_SCALINGS))
    warmup_epochs: float = field(default=0.0, metadata=option(
        "linear learning-rate warm-up from lr/10, in epochs (default 0)", group=_MODEL,
        parse=float))
    schedule: str = field(default="constant", metadata=option(
        "learning rate after the warm-up: constant (default) or cosine decay to zero",
        group=_MODEL, choices=SCHEDULES))
    augment: str = field(default="none", metadata=option(
        "drawn per step for each training image: shifts by up to 2 pixels (shift), with "
        "left-right flips (shift-flip; not for digits), random affine maps (affine: rotation, "
        "zoom, shear, translation; affine-flip), elastic distortions (elastic), or both "
        "(affine-elastic) (default none)", group=_AUGMENT, choices=AUGMENT_POLICIES))
    erase: float = field(default=0.0, metadata=option(
        "random erasing: the probability that a training image has a random rectangle (2%% to "
        "40%% of it) set to the background, after any --augment (default 0)", group=_AUGMENT,
        parse=float, metavar="PROBABILITY"))
    rotate: float | None = field(default=None, metadata=option(
        f"affine policies: largest rotation in degrees (default {_WARP.rotate:g})",
        group=_AUGMENT, parse=float, metavar="DEGREES"))
    scale: float | None = field(default=None, metadata=option(
        f"affine policies: largest zoom in or out, as a fraction (default {_WARP.scale:g})",
        group=_AUGMENT, parse=float, metavar="FRACTION"))
    shear: float | None = field(default=None, metadata=option(
        f"affine policies: largest shear in degrees (default {_WARP.shear:g})",
        group=_AUGMENT, parse=float, metavar="DEGREES"))
    translate: float | None = field(default=None, metadata=option(
        f"affine policies: largest move along each axis in pixels (default "
        f"{_WARP.translate:g})", group=_AUGMENT, parse=float, metavar="PIXELS"))
    elastic_alpha: float | None = field(default=None, metadata=option(
        f"elastic policies: strength of the distortion in pixels (default "
        f"{_WARP.elastic_alpha:g})", group=_AUGMENT, parse=float, metavar="PIXELS"))
    elastic_sigma: float | None = field(default=None, metadata=option(
        f"elastic policies: smoothness of the distortion, the Gaussian's width in pixels "
        f"(default {_WARP.elastic_sigma:g})", group=_AUGMENT, parse=float, metavar="PIXELS"))
    label_smoothing: float = field(default=0.0, metadata=option(
        "training loss against targets with this weight spread over all classes, in [0, 1) "
        "(default 0)", group=_MODEL, parse=float))
    seed: int = field(default=1, metadata=option(
        "random seed of weights, split, shuffling and dropout (default 1)", group=_MODEL,
        parse=int))
    checkpoint_every: int | None = field(default=None, metadata=option(
        "also save a checkpoint every STEPS steps of an epoch, which a resumed or restarted run "
        "continues from (default: only at the end of each epoch)", group=_CHECKPOINTS,
        parse=int, metavar="STEPS"))
    tensorboard: str | None = field(default=None, metadata=option(
        "write TensorBoard logs to this folder: losses, learning rate, weight and gradient "
        "histograms, first-layer kernels, test-set features for the projector (needs "
        "cnnkit[tensorboard]; default: no logs)", group=_LOGGING, metavar="DIR"))
    engine: str = field(default="auto", metadata=option(
        "numpy or torch (default: torch where it imports, numpy otherwise)", group=_SPEED,
        choices=ENGINES))
    device: str = field(default="auto", metadata=option(
        "torch: auto (default: CUDA, MPS, then CPU), cpu, cuda, cuda:N", group=_SPEED))
    precision: str = field(default="auto", metadata=option(
        "torch: autocast precision (default auto: bf16 where the hardware has it)",
        group=_SPEED, choices=PRECISIONS))
    loader: str = field(default="auto", metadata=option(
        "torch: keep the data on the device or stream it (default auto)", group=_SPEED,
        choices=LOADER_MODES))
    channels_last: bool = field(default=True, metadata=option(
        "torch: keep the default NCHW memory format", group=_SPEED))
    fused_optimizer: bool = field(default=True, metadata=option(
        "torch: do not use the fused Adam", group=_SPEED, flag="--no-fused"))
    compile: bool = field(default=False, metadata=option(
        "torch: torch.compile the model (costs compile time; pays on long runs)",
        group=_SPEED))
    deterministic: bool = field(default=True, metadata=option(
        "torch: allow non-deterministic GPU kernels", group=_SPEED))

    def __post_init__(self) -> None:
        if self.recipe is not None:
            from cnnkit.engines.recipes import recipe

            recipe(self.recipe)
        if self.input_shape is not None:
            self.input_shape = parse_input_shape(self.input_shape)
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        if self.train_limit is not None:
            check_int(self.train_limit, "train_limit", minimum=1)
        if self.workers is not None:
            check_int(self.workers, "workers", minimum=1)
        if self.checkpoint_every is not None:
            check_int(self.checkpoint_every, "checkpoint_every", minimum=1)
        if self.split_file is not None and not self.dataset.startswith("imagefolder:"):
            raise InvalidArgument(
                f"split_file is for image folders (imagefolder:PATH), not {self.dataset!r}"
            )
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise InvalidArgument(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.warmup_epochs, (int, float)) or self.warmup_epochs < 0:
            raise InvalidArgument(
                "warmup_epochs must be a number "
                f">= 0, got {self.warmup_epochs!r}"
            )
        check_choice(self.lr_scaling, "lr_scaling", LR_SCALINGS)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_choice(self.precision, "precision", PRECISIONS)
        check_choice(self.loader, "loader", LOADER_MODES)
        check_choice(self.stream, "stream", STREAM_MODES)
        if self.stream == "always" and self.loader == "resident":
            raise InvalidArgument("--stream always cannot be combined with --loader resident "
                                  "(streamed data is not held on the device)")
        check_choice(self.on_error, "on_error", ("skip", "raise"))
        check_choice(self.engine, "engine", ENGINES)
        check_choice(self.augment, "augment", AUGMENT_POLICIES)
        if self.augment.endswith("flip") and not flips_allowed(self.dataset):
            data = ("the default data set's digits (MNIST or synthetic digits)"
                    if self.dataset == AUTO_DATASET else f"{self.dataset!r} (digits)")
            raise InvalidArgument(
                f"--augment {self.augment} mirrors images, which changes the class of {data}; "
                "use --augment shift"
            )
        self._check_warp()
        check_erase(self.erase)
        if (isinstance(self.label_smoothing, bool)
                or not isinstance(self.label_smoothing, (int, float))
                or not 0 <= self.label_smoothing < 1):
            raise InvalidArgument(
                f"label_smoothing must be a number in [0, 1), got {self.label_smoothing!r}"
            )
        if self.engine == "numpy":
            self.check_numpy()

    def _check_warp(self) -> None:
        """Refuse warp settings that the policy does not use (they would be ignored)."""
        used = (_AFFINE_SETTINGS if self.augment.startswith("affine") else ()) + (
            _ELASTIC_SETTINGS if self.augment.endswith("elastic") else ())
        unused = [name for name in _AFFINE_SETTINGS + _ELASTIC_SETTINGS
                  if getattr(self, name) is not None and name not in used]
        if unused:
            flags = ", ".join("--" + name.replace("_", "-") for name in unused)
            raise InvalidArgument(
                f"{flags} {'is' if len(unused) == 1 else 'are'} not used by --augment "
                f"{self.augment}; the affine settings need --augment affine, affine-flip or "
                "affine-elastic, the elastic ones elastic or affine-elastic"
            )
        self.warp  # noqa: B018 (validates the amounts)

    @property
    def warp(self) -> Warp:
        """The warp policies' amounts: those given, the defaults for the rest."""
        given = {name: getattr(self, name) for name in _AFFINE_SETTINGS + _ELASTIC_SETTINGS
                 if getattr(self, name) is not None}
        return Warp(**given)

    def check_numpy(self) -> None:
        """Refuse, in one line, the options that only the PyTorch engine has."""
        refused = []
        if self.precision not in ("auto", "fp32"):
            refused.append(f"--precision {self.precision} (it computes in fp32)")
        if self.compile:
            refused.append("--compile")
        if self.device not in ("auto", "cpu"):
            refused.append(f"--device {self.device} (it runs on the CPU)")
        if self.loader == "stream":
            refused.append("--loader stream")
        if refused:
            raise InvalidArgument(
                f"the numpy engine does not support {', '.join(refused)}; leave it out or use "
                "--engine torch"
            )

    @property
    def base_lr(self) -> float:
        """The learning rate after scaling for the batch size."""
        ratio = self.batch_size / BASE_BATCH_SIZE
        factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]
        return self.lr * factor

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A configuration from its saved form; unknown keys are refused by name."""
        if not isinstance(data, dict):
            raise BadFile(f"a training configuration must be an object, got {type(data).__name__}")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadFile(f"the saved training configuration has unknown keys {unknown}")
        return cls(**data)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if data["input_shape"] is not None:
            data["input_shape"] = list(data["input_shape"])
        return data
