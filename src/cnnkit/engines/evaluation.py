"""Using a trained model: evaluation on a data set, and prediction for image files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnkit._validate import check_choice, check_int
from cnnkit.arch import load_architecture
from cnnkit.data import load_dataset
from cnnkit.data.imagefolder import load_image
from cnnkit.engines.checkpoint import check_compatible, load_checkpoint
from cnnkit.engines.loaders import BatchLoader
from cnnkit.engines.model import build_model, choose_device
from cnnkit.errors import InvalidArgument

__all__ = [
    "Evaluation",
    "Prediction",
    "confusion_matrix",
    "evaluate",
    "load_model",
    "load_split",
    "model_input",
    "predict",
    "prepare_image",
]


def load_model(
    source: str | os.PathLike, *, device: str = "cpu", best: bool = False
) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint (or run folder) in eval mode, and the checkpoint's contents."""
    state = load_checkpoint(source, best=best)
    info = state["model_info"]
    model = build_model(load_architecture(info["arch"]), info["input_shape"], info["num_classes"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InvalidArgument(
            f"the weights in {source} do not fit its architecture: {str(exc).splitlines()[-1]}"
        ) from None
    return model.to(choose_device(device)).eval(), state


def load_split(
    state: dict,
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
    check_choice(split, "split", ("test", "train"))
    info = state["model_info"]
    name = dataset or state["config"]["dataset"]
    input_shape = tuple(info["input_shape"]) if name.startswith("imagefolder:") else None
    data = load_dataset(name, data_dir=data_dir, input_shape=input_shape, download=download)
    expected = {"input_shape": data.input_shape, "num_classes": data.num_classes}
    check_compatible(info, expected, where)
    if split == "test" and data.test_images is not None:
        return name, split, data.test_images, data.test_labels
    split = "all images" if data.test_images is None else "train"
    return name, split, data.train_images, data.train_labels


def model_input(pixels: np.ndarray, model_info: dict) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` as the float32 tensor a model takes: scaled to [0, 1] and
    standardised with the training split's mean and standard deviation (``model_info``)."""
    batch = torch.from_numpy(np.ascontiguousarray(pixels)).float()
    return (batch / 255.0 - model_info["mean"]) / model_info["std"]


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
        As in :func:`cnnkit.engines.choose_device`.

    Returns
    -------
    Evaluation
    """
    check_choice(split, "split", ("test", "train"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    model, state = load_model(source, device=device, best=best)
    info = state["model_info"]
    name, split, images, labels = load_split(state, f"the model in {source}", dataset,
                                             split=split, data_dir=data_dir)
    loader = BatchLoader(images, labels, batch_size=batch_size, device=next(
        model.parameters()).device, mean=info["mean"], std=info["std"])
    from cnnkit.engines.training import evaluate_loader

    result = evaluate_loader(model, loader, collect=True)
    confusion = confusion_matrix(result["labels"], result["predictions"], info["num_classes"])
    predicted_counts = confusion.sum(axis=0)
    true_counts = confusion.sum(axis=1)
    diagonal = np.diag(confusion).astype(np.float64)
    precision = np.divide(diagonal, predicted_counts, out=np.zeros_like(diagonal),
                          where=predicted_counts > 0)
    recall = np.divide(diagonal, true_counts, out=np.zeros_like(diagonal), where=true_counts > 0)
    return Evaluation(name, split, result["count"], result["loss"], result["accuracy"],
                      list(info["class_names"]), precision, recall, confusion)


def prepare_image(
    path: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    invert: str = "auto",
    background: str | None = "dark",
) -> np.ndarray:
    """An image file brought to a model's input: uint8 ``(C, H, W)``.

    The image is converted to grayscale or RGB and resized. MNIST-style models expect white
    strokes on black; ``invert='auto'`` inverts a photo or scan with a light background (judged
    by the mean of its border pixels) when the model was trained on a dark background, ``'yes'``
    always inverts and ``'no'`` never does.
    """
    check_choice(invert, "invert", ("auto", "yes", "no"))
    image = load_image(path, input_shape)
    if invert == "auto":
        border = np.concatenate([image[:, 0].ravel(), image[:, -1].ravel(),
                                 image[:, :, 0].ravel(), image[:, :, -1].ravel()])
        flip = background == "dark" and border.mean() > 127.5
    else:
        flip = invert == "yes"
    return 255 - image if flip else image


@dataclass
class Prediction:
    """The top classes for one image, most probable first."""

    path: str
    classes: list[str]
    indices: list[int]
    probabilities: list[float]
    inverted: bool

    def to_dict(self) -> dict:
        return {
            "image": self.path,
            "inverted": self.inverted,
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
) -> list[Prediction]:
    """Classify image files with a checkpoint; the ``top_k`` classes with their probabilities.

    Every image is read first, so an unreadable one is refused (by name) before any work.
    """
    top_k = check_int(top_k, "top_k", minimum=1)
    if isinstance(images, (str, os.PathLike)) or not images:
        raise InvalidArgument("images must be a non-empty list of image files")
    model, state = load_model(source, device=device)
    info = state["model_info"]
    shape = tuple(info["input_shape"])
    arrays, flags = [], []
    for path in images:
        array = prepare_image(path, shape, invert=invert, background=info.get("background"))
        plain = load_image(path, shape)
        arrays.append(array)
        flags.append(not np.array_equal(array, plain))
    batch = model_input(np.stack(arrays), info)
    device_of_model = next(model.parameters()).device
    with torch.inference_mode():
        probabilities = torch.softmax(model(batch.to(device_of_model)).float(), dim=1).cpu()
    k = min(top_k, info["num_classes"])
    values, indices = probabilities.topk(k, dim=1)
    names = info["class_names"]
    return [
        Prediction(str(Path(path)), [names[i] for i in row_indices.tolist()],
                   row_indices.tolist(), [round(v, 6) for v in row_values.tolist()], flag)
        for path, row_values, row_indices, flag in zip(images, values, indices, flags, strict=True)
    ]
