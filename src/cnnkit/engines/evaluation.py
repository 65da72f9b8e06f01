"""Using a trained model: evaluation on a data set, and prediction for image files.

Either engine runs a checkpoint of either engine (``engine='numpy'`` needs no PyTorch).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.arch import load_architecture
from cnnkit.data import is_digits, load_dataset
from cnnkit.data.imagefolder import IMAGE_SUFFIXES, load_image
from cnnkit.engines.base import engine_class
from cnnkit.engines.checkpoint import Checkpoint, check_compatible, load_checkpoint
from cnnkit.engines.config import TrainConfig
from cnnkit.errors import BadFile, CnnkitError, InvalidArgument, NotFound

__all__ = [
    "INVERT_MODES",
    "Evaluation",
    "ModelImage",
    "Prediction",
    "class_names_warning",
    "confusion_matrix",
    "default_invert",
    "evaluate",
    "find_images",
    "load_model",
    "load_split",
    "model_input",
    "normalise",
    "open_model",
    "predict",
    "prepare_image",
    "softmax",
    "top_classes",
]

#: Accepted values of ``invert``: judge by the picture's border, always, never.
INVERT_MODES = ("auto", "always", "never")


def open_model(
    source: str | os.PathLike, *, engine: str | None = None, device: str = "cpu",
    best: bool = False,
):
    """An engine holding the model of a checkpoint (or run folder), and the checkpoint.

    ``engine`` is ``'numpy'``, ``'torch'`` or None/``'auto'`` (PyTorch where it imports); either
    reads a checkpoint written by either. The model is in evaluation mode, computing in fp32.
    """
    checkpoint = load_checkpoint(source, best=best)
    config = TrainConfig(device=device, precision="fp32", channels_last=False,
                         fused_optimizer=False)
    runner = engine_class(engine)(config)
    info = checkpoint.model_info
    runner.build(load_architecture(info["arch"]), info["input_shape"], info["num_classes"],
                 seed=0, lr=None)
    runner.load_weights(checkpoint.model, str(source))
    return runner, checkpoint


def load_model(
    source: str | os.PathLike, *, engine: str | None = None, device: str = "cpu",
    best: bool = False,
) -> tuple[object, Checkpoint]:
    """The model of a checkpoint (or run folder) in eval mode, and the checkpoint.

    The model is a ``torch.nn.Module`` with ``engine='torch'`` and a :class:`cnnkit.nn.Module`
    with ``engine='numpy'``.
    """
    runner, checkpoint = open_model(source, engine=engine, device=device, best=best)
    return runner.model.eval(), checkpoint


def load_split(
    checkpoint: Checkpoint,
    where: str,
    dataset: str | None = None,
    *,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[str, str, np.ndarray, np.ndarray]:
    """The images a checkpoint is evaluated on: ``(dataset, split, images, labels)``.

    ``dataset`` defaults to the one the model was trained on; a data set without a test split
    (an image folder) gives all of its images, with ``split`` saying so. A data set whose input
    shape or class count differs from the model's is refused, naming ``where``.
    """
    return _open_split(checkpoint, where, dataset, split=split, data_dir=data_dir,
                       download=download)[:4]


def _open_split(
    checkpoint: Checkpoint,
    where: str,
    dataset: str | None,
    *,
    split: str,
    data_dir: str | os.PathLike | None,
    download: bool = True,
) -> tuple[str, str, np.ndarray, np.ndarray, list[str]]:
    """:func:`load_split` and the data set's class names."""
    check_choice(split, "split", ("test", "train"))
    info = checkpoint.model_info
    name = dataset or checkpoint.config.get("dataset", "synthetic-digits")
    input_shape = tuple(info["input_shape"]) if name.startswith("imagefolder:") else None
    data = load_dataset(name, data_dir=data_dir, input_shape=input_shape, download=download)
    expected = {"input_shape": data.input_shape, "num_classes": data.num_classes}
    check_compatible(info, expected, where)
    classes = list(data.class_names)
    if split == "test" and data.test_images is not None:
        return name, split, data.test_images, data.test_labels, classes
    split = "all images" if data.test_images is None else "train"
    return name, split, data.train_images, data.train_labels, classes


def class_names_warning(model_classes: Sequence[str], data_classes: Sequence[str]) -> str | None:
    """A warning when a model's classes and a data set's have other names (same count), else
    None: label k then means another thing to each, and the accuracy measures nothing.

    >>> print(class_names_warning(["0", "1"], ["cat", "dog"]))  # doctest: +NORMALIZE_WHITESPACE
    the data set's classes ['cat', 'dog'] are not the model's ['0', '1']: label 0 means 'cat'
    here and '0' to the model, so the accuracy below compares unrelated classes
    >>> class_names_warning(["cat", "dog"], ["cat", "dog"]) is None
    True
    """
    model_classes, data_classes = list(model_classes), list(data_classes)
    if model_classes == data_classes:
        return None
    index = next(i for i, (a, b) in enumerate(zip(model_classes, data_classes, strict=True))
                 if a != b)
    return (f"the data set's classes {_short_list(data_classes)} are not the model's "
            f"{_short_list(model_classes)}: label {index} means {data_classes[index]!r} here and "
            f"{model_classes[index]!r} to the model, so the accuracy below compares unrelated "
            "classes")


def _short_list(names: list[str]) -> str:
    return repr(names) if len(names) <= 4 else f"[{', '.join(map(repr, names[:3]))}, ...]"


def model_input(pixels: np.ndarray, model_info: dict):
    """uint8 images ``(N, C, H, W)`` as the float32 tensor a PyTorch model takes: scaled to
    [0, 1] and standardised with the training split's mean and standard deviation."""
    import torch

    # A new float32 array: the pixels may be a read-only memory map of the decoded cache.
    batch = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    return (batch / 255.0 - model_info["mean"]) / model_info["std"]


def normalise(pixels: np.ndarray, model_info: dict) -> np.ndarray:
    """uint8 images ``(N, C, H, W)`` as the float32 array a NumPy model takes: scaled to [0, 1]
    and standardised with the training split's mean and standard deviation (the same numbers
    as :func:`model_input`)."""
    return np.asarray(pixels, np.float32) * np.float32(1.0 / (255.0 * model_info["std"])) - (
        np.float32(model_info["mean"] / model_info["std"]))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (float64) of logits ``(N, classes)``.

    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def top_classes(probabilities: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ``top_k`` most probable classes of each row, most probable first
    (ties to the lower index), and their probabilities.

    >>> top_classes(np.array([[0.2, 0.5, 0.3]]), 2)[0].tolist()
    [[1, 2]]
    """
    k = min(check_int(top_k, "top_k", minimum=1), probabilities.shape[1])
    indices = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return indices, np.take_along_axis(probabilities, indices, axis=1)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: rows true, columns predicted.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    array([[1, 0],
           [1, 1]])
    """
    pairs = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predictions, np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


@dataclass
class Evaluation:
    """Accuracy, per-class precision and recall, and the confusion matrix on one split."""

    dataset: str
    split: str
    count: int
    loss: float
    accuracy: float
    class_names: list[str]
    precision: np.ndarray
    recall: np.ndarray
    confusion: np.ndarray
    #: What makes the numbers doubtful (a data set whose class names are not the model's).
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A readable report: accuracy, a per-class table and the confusion matrix."""
        width = max(8, *(len(name) for name in self.class_names))
        lines = [
            f"{self.dataset} ({self.split}, {self.count} images): accuracy "
            f"{100 * self.accuracy:.2f}%, loss {self.loss:.4f}",
            "",
            f"{'class':<{width}}  precision  recall  support",
        ]
        support = self.confusion.sum(axis=1)
        for index, name in enumerate(self.class_names):
            lines.append(
                f"{name:<{width}}  {100 * self.precision[index]:8.2f}%  "
                f"{100 * self.recall[index]:5.2f}%  {support[index]:7d}"
            )
        lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
        cell = max(5, len(str(self.confusion.max())) + 1)
        lines.append(" " * width + "".join(f"{i:>{cell}}" for i in range(len(self.class_names))))
        for index, name in enumerate(self.class_names):
            cells = "".join(f"{n:>{cell}}" for n in self.confusion[index])
            lines.append(f"{name:<{width}}{cells}")
        return "\n".join(lines)


def evaluate(
    source: str | os.PathLike,
    dataset: str | None = None,
    *,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    best: bool = False,
    batch_size: int = 1000,
    engine: str | None = None,
) -> Evaluation:
    """Evaluate a checkpoint (or a run folder's last or best checkpoint) on a data set.

    Parameters
    ----------
    source : path-like
        A checkpoint file or a run folder.
    dataset : str, optional
        Data set name (default: the one the model was trained on).
    split : {'test', 'train'}
        Which split; a data set without a test split (an image folder) is evaluated on all of
        its images.
    device : str
        As in :func:`cnnkit.engines.choose_device` (PyTorch engine).
    engine : {'numpy', 'torch'}, optional
        Which engine computes (default: PyTorch where it imports, NumPy otherwise).

    Returns
    -------
    Evaluation
    """
    check_choice(split, "split", ("test", "train"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    runner, checkpoint = open_model(source, engine=engine, device=device, best=best)
    info = checkpoint.model_info
    name, split, images, labels, classes = _open_split(
        checkpoint, f"the model in {source}", dataset, split=split, data_dir=data_dir)
    loader = runner.loader(images, labels, batch_size=batch_size, mean=info["mean"],
                           std=info["std"])
    result = runner.evaluate(loader, collect=True)
    confusion = confusion_matrix(result["labels"], result["predictions"], info["num_classes"])
    predicted_counts = confusion.sum(axis=0)
    true_counts = confusion.sum(axis=1)
    diagonal = np.diag(confusion).astype(np.float64)
    precision = np.divide(diagonal, predicted_counts, out=np.zeros_like(diagonal),
                          where=predicted_counts > 0)
    recall = np.divide(diagonal, true_counts, out=np.zeros_like(diagonal), where=true_counts > 0)
    warning = class_names_warning(info["class_names"], classes)
    return Evaluation(name, split, result["count"], result["loss"], result["accuracy"],
                      list(info["class_names"]), precision, recall, confusion,
                      warnings=[warning] if warning else [])


@dataclass
class ModelImage:
    """An image file brought to a model's input, and what was done on the way."""

    path: str
    pixels: np.ndarray  # uint8 (C, H, W), before normalisation
    size: tuple[int, int]  # the file's (rows, columns)
    padded: bool  # another aspect ratio than the model's: padded with its background
    inverted: bool  # dark on light, inverted to light on dark


def default_invert(dataset: str) -> str:
    """``invert`` when none is given: ``'auto'`` for models of digits (a digit written on paper
    is dark on light, MNIST's are light on dark), ``'never'`` for other data sets.

    >>> default_invert("mnist"), default_invert("fashion-mnist")
    ('auto', 'never')
    """
    return "auto" if is_digits(dataset) else "never"


def prepare_image(
    path: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    invert: str = "auto",
    background: str | None = "dark",
) -> ModelImage:
    """An image file brought to a model's input: uint8 ``(C, H, W)`` pixels and the steps taken.

    The image is converted to grayscale or RGB, padded to the input's aspect ratio with its
    background colour (the median of its border, so nothing is squashed), and resized.
    MNIST-style models expect white strokes on black; ``invert='auto'`` inverts a photo or scan
    with a light background (judged by the mean of its border pixels) when the model was
    trained on a dark background, ``'always'`` always inverts and ``'never'`` never does.
    """
    from cnnkit.imageio import image_shape

    check_choice(invert, "invert", INVERT_MODES)
    channels, height, width = (int(n) for n in input_shape)
    image = load_image(path, (channels, height, width), fit="pad")
    # From the header: EXIF rotation may swap rows and columns, which changes nothing for a
    # square input (every model of the named data sets).
    rows, columns = image_shape(path)[:2]
    if invert == "auto":
        border = np.concatenate([image[:, 0].ravel(), image[:, -1].ravel(),
                                 image[:, :, 0].ravel(), image[:, :, -1].ravel()])
        flip = background == "dark" and border.mean() > 127.5
    else:
        flip = invert == "always"
    return ModelImage(str(Path(path)), 255 - image if flip else image, (rows, columns),
                      rows * width != columns * height, bool(flip))


def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files among ``inputs``: files as named, folders searched recursively.

    In a folder, files with an image suffix (``IMAGE_SUFFIXES``, any case) are taken, sorted by
    path; a file named directly is taken whatever its suffix. A missing input, or no image at
    all, is refused by name.
    """
    if isinstance(inputs, (str, os.PathLike)) or not inputs:
        raise InvalidArgument("images must be a non-empty list of image files or folders")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(found for found in path.rglob("*")
                            if found.suffix.lower() in IMAGE_SUFFIXES and found.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise NotFound(f"no image file or folder at {str(path)!r}")
    if not files:
        names = ", ".join(repr(str(item)) for item in inputs)
        raise NotFound(f"no images found in {names} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


@dataclass
class Prediction:
    """The top classes for one image, most probable first, and how the image was prepared."""

    path: str
    classes: list[str]
    indices: list[int]
    probabilities: list[float]
    inverted: bool
    padded: bool = False

    def to_dict(self) -> dict:
        return {
            "image": self.path,
            "inverted": self.inverted,
            "padded": self.padded,
            "top": [
                {"class": name, "index": index, "probability": probability}
                for name, index, probability in zip(
                    self.classes, self.indices, self.probabilities, strict=True
                )
            ],
        }


def predict(
    source: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    *,
    top_k: int = 3,
    invert: str | None = None,
    device: str = "cpu",
    engine: str | None = None,
    batch_size: int = 256,
    on_error: str = "raise",
    report: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Prediction]:
    """Classify image files with a checkpoint; the ``top_k`` classes with their probabilities.

    Parameters
    ----------
    source : path-like
        A checkpoint file or a run folder.
    images : sequence of path-like
        Image files, and folders searched recursively (:func:`find_images`).
    invert : {'auto', 'always', 'never'}, optional
        Default :func:`default_invert` of the model's data set (see :func:`prepare_image`).
    batch_size : int
        Images read and classified together.
    on_error : {'raise', 'skip'}
        An unreadable file is refused by name, or skipped and named to ``report``; when no
        file at all can be read, the first reason is raised.
    report : callable, optional
        Receives a line for each skipped file.
    progress : callable, optional
        Called after each batch with the number of files it held and the number of files.

    Returns
    -------
    list of Prediction
        One per readable image, in the order of ``images``.
    """
    top_k = check_int(top_k, "top_k", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_choice(on_error, "on_error", ("raise", "skip"))
    if invert is not None:
        check_choice(invert, "invert", INVERT_MODES)
    runner, checkpoint = open_model(source, engine=engine, device=device)
    files = find_images(images)
    info = checkpoint.model_info
    if invert is None:
        invert = default_invert(checkpoint.config.get("dataset", "synthetic-digits"))
    shape = tuple(info["input_shape"])
    results, first_failure = [], None
    for start in range(0, len(files), batch_size):
        prepared = []
        for path in files[start:start + batch_size]:
            try:
                prepared.append(prepare_image(path, shape, invert=invert,
                                              background=info.get("background")))
            except CnnkitError as exc:
                if on_error == "raise":
                    raise
                first_failure = first_failure or str(exc)
                if report is not None:
                    report(f"skipped {path}: {exc}")
        if prepared:
            results += _top_classes(runner, info, prepared, top_k)
        if progress is not None:
            progress(len(files[start:start + batch_size]), len(files))
    if not results:
        raise BadFile(f"none of the {len(files)} image file(s) could be read; the first: "
                      f"{first_failure}")
    return results


def _top_classes(runner, info: dict, prepared: list[ModelImage], top_k: int) -> list[Prediction]:
    """The engine's top ``top_k`` classes of each prepared image."""
    logits = runner.logits(normalise(np.stack([image.pixels for image in prepared]), info))
    indices, values = top_classes(softmax(logits), top_k)
    names = info["class_names"]
    return [
        Prediction(image.path, [names[i] for i in row_indices.tolist()], row_indices.tolist(),
                   [round(v, 6) for v in row_values.tolist()], image.inverted, image.padded)
        for image, row_values, row_indices in zip(prepared, values, indices, strict=True)
    ]
