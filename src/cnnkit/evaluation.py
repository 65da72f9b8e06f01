"""Using a trained model: evaluation on a data set, and prediction for image files.

Both go through :class:`cnnkit.model.TrainedModel`, so either engine runs a checkpoint of either
engine (``engine='numpy'`` needs no PyTorch).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit._files import display_name
from cnnkit._validate import check_choice, check_int
from cnnkit.data import load_dataset
from cnnkit.data.imagefolder import IMAGE_SUFFIXES
from cnnkit.engines.checkpoint import Checkpoint, check_compatible
from cnnkit.errors import BadFile, CnnkitError, InvalidArgument, NotFound
from cnnkit.model import INVERT_MODES, PreparedImage, TrainedModel, top_classes

__all__ = [
    "Evaluation",
    "Prediction",
    "class_names_warning",
    "confusion_matrix",
    "evaluate",
    "find_images",
    "load_split",
    "predict",
]


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
    model = TrainedModel.load(source, engine=engine, device=device, best=best)
    info = model.info
    name, split, images, labels, classes = _open_split(
        model.checkpoint, f"the model in {source}", dataset, split=split, data_dir=data_dir)
    result = model.evaluate(images, labels, batch_size=batch_size)
    confusion = confusion_matrix(result["labels"], result["predictions"], info.num_classes)
    predicted_counts = confusion.sum(axis=0)
    true_counts = confusion.sum(axis=1)
    diagonal = np.diag(confusion).astype(np.float64)
    precision = np.divide(diagonal, predicted_counts, out=np.zeros_like(diagonal),
                          where=predicted_counts > 0)
    recall = np.divide(diagonal, true_counts, out=np.zeros_like(diagonal), where=true_counts > 0)
    warning = class_names_warning(info.class_names, classes)
    return Evaluation(name, split, result["count"], result["loss"], result["accuracy"],
                      list(info.class_names), precision, recall, confusion,
                      warnings=[warning] if warning else [])


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
    #: Ways the prepared picture looks unlike the training images
    #: (:attr:`cnnkit.model.PreparedImage.warnings`).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "image": self.path,
            "inverted": self.inverted,
            "padded": self.padded,
            "warnings": list(self.warnings),
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
    invert: str = "auto",
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
    invert : {'auto', 'always', 'never'}
        Whether to invert each picture's brightness; ``'auto'`` (the default) inverts a
        picture whose border is on the other side of one half from the training images'
        background (see :meth:`cnnkit.model.TrainedModel.prepare`).
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
    check_choice(invert, "invert", INVERT_MODES)
    model = TrainedModel.load(source, engine=engine, device=device)
    files = find_images(images)
    results, first_failure = [], None
    for start in range(0, len(files), batch_size):
        prepared = []
        for path in files[start:start + batch_size]:
            try:
                prepared.append(model.prepare(path, invert=invert))
            except CnnkitError as exc:
                if on_error == "raise":
                    raise
                first_failure = first_failure or str(exc)
                if report is not None:
                    report(f"skipped {display_name(path)}: {exc}")
        if prepared:
            results += _top_classes(model, prepared, top_k)
        if progress is not None:
            progress(len(files[start:start + batch_size]), len(files))
    if not results:
        raise BadFile(f"none of the {len(files)} image file(s) could be read; the first: "
                      f"{first_failure}")
    return results


def _top_classes(model: TrainedModel, prepared: list[PreparedImage],
                 top_k: int) -> list[Prediction]:
    """The model's top ``top_k`` classes of each prepared image."""
    probabilities = model.probabilities(model.normalise(np.stack([p.pixels for p in prepared])))
    indices, values = top_classes(probabilities, top_k)
    names = model.info.class_names
    return [
        Prediction(display_name(image.path), [names[i] for i in row_indices.tolist()],
                   row_indices.tolist(),
                   [round(v, 6) for v in row_values.tolist()], image.inverted, image.padded,
                   list(image.warnings))
        for image, row_values, row_indices in zip(prepared, values, indices, strict=True)
    ]
