"""The NumPy engine: the same training step as PyTorch's, written with :mod:`cnnkit.nn`.

Forward pass, cross-entropy, backward pass and an Adam step, in float32 on the CPU, one process.
Batches come in the order the PyTorch engine uses (:func:`cnnkit.engines.base.epoch_order`) and
are normalised by the same formula; weights and optimizer state are NumPy arrays under PyTorch's
names, so a checkpoint written here is read by the PyTorch engine and the other way round.
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.arch import Architecture
from cnnkit.engines.augment import Augmentation
from cnnkit.engines.base import Context, epoch_order, joined_outputs, streamed_batches
from cnnkit.engines.checkpoint import Checkpoint
from cnnkit.engines.config import TrainConfig
from cnnkit.errors import InvalidArgument, InvalidType, StateDictError
from cnnkit.nn import Adam, Dropout, build_model, cross_entropy
from cnnkit.nn.loss import softmax

__all__ = ["ENGINE", "NumpyBatch", "NumpyBatches", "NumpyEngine", "NumpyNetwork"]

_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad")


@dataclass
class NumpyBatch:
    """One batch: normalised float32 images, int64 labels, and the global batch size."""

    images: np.ndarray
    labels: np.ndarray
    global_size: int


class NumpyBatches:
    """Normalised float32 batches of a uint8 image array, in the shared shuffling order.

    A batch is ``images * (1 / (255 std)) - mean / std`` in float32, the PyTorch loader's
    formula. ``rows`` picks the images served (default all); with ``streaming`` they are read
    from ``images`` (a memory map) as needed (:func:`cnnkit.engines.base.streamed_batches`)
    instead of being copied into memory first.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean: float,
                 std: float, rows: np.ndarray | None = None, streaming: bool = False) -> None:
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise InvalidType(f"images must be a uint8 (N, C, H, W) array, got "
                              f"{getattr(images, 'dtype', type(images))} "
                              f"{getattr(images, 'shape', '')}")
        if len(images) != len(labels):
            raise InvalidArgument(f"{len(images)} images but {len(labels)} labels")
        labels = np.asarray(labels, dtype=np.int64)
        self.streaming, self.mode = bool(streaming), "stream" if streaming else "resident"
        self._rows, self._all_labels = rows, labels
        if rows is not None:
            labels = labels[rows]
            images = images if streaming else images[rows]
        self.images, self.labels = images, labels
        self.count = len(labels)
        self._scale = np.float32(1.0 / (255.0 * std))
        self._shift = np.float32(mean / std)

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def batches(
        self, seed: int | None = None, epoch: int = 0, *, start_batch: int = 0
    ) -> Iterator[NumpyBatch]:
        """One epoch of batches from ``start_batch`` on, shuffled by ``(seed, epoch)`` when
        seeded."""
        start_batch = check_int(start_batch, "start_batch", minimum=0)
        if self.streaming:
            for batch in streamed_batches(self.images, self._all_labels, self.batch_size,
                                          rows=self._rows, seed=seed, epoch=epoch,
                                          start_batch=start_batch):
                yield self._prepare(*batch)
            return
        order = epoch_order(seed, epoch, self.count)
        for start in range(start_batch * self.batch_size, self.count, self.batch_size):
            chunk = order[start:start + self.batch_size]
            yield self._prepare(self.images[chunk], self.labels[chunk], len(chunk))

    def _prepare(self, images: np.ndarray, labels: np.ndarray, global_size: int) -> NumpyBatch:
        return NumpyBatch(images.astype(np.float32) * self._scale - self._shift, labels,
                          global_size)


class NumpyEngine:
    """Training and inference with :mod:`cnnkit.nn` for one run (or one loaded model)."""

    name = "numpy"
    precision = "fp32"
    device = "cpu"

    def __init__(self, config: TrainConfig) -> None:
        config.check_numpy()
        self.config = config
        self.context = Context()
        self.model = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Context]:
        """One process on the CPU: nothing to set up."""
        yield self.context

    def loader(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean: float,
               std: float, rows: np.ndarray | None = None,
               streaming: bool = False) -> NumpyBatches:
        return NumpyBatches(images, labels, batch_size=batch_size, mean=mean, std=std,
                            rows=rows, streaming=streaming)

    def describe(self, loader: NumpyBatches) -> str:
        return "engine numpy, device cpu, 1 process, precision fp32"

    # -- model and optimizer ------------------------------------------------------------------
    def build(self, arch: Architecture, input_shape, num_classes: int, *, seed: int,
              lr: float | None = 1e-3) -> None:
        """The model (PyTorch's initialisation drawn from ``seed``) and its Adam optimizer
        (none with ``lr=None``: inference only)."""
        self.model = build_model(arch, input_shape, num_classes, seed=seed, dtype=np.float32)
        self.optimizer = None if lr is None else Adam(self.model.parameters(), lr=lr)

    def load_weights(self, weights: dict[str, np.ndarray], where: str) -> None:
        try:
            self.model.load_state_dict(weights)
        except StateDictError as exc:
            raise StateDictError(f"the weights in {where} do not fit its architecture: {exc}") \
                from None

    def restore(self, checkpoint: Checkpoint, where: str) -> None:
        """Weights and optimizer state from a checkpoint of either engine."""
        self.load_weights(checkpoint.model, where)
        group = dict(self.optimizer.state_dict()["param_groups"][0])
        saved_groups = checkpoint.optimizer["param_groups"]
        if saved_groups:
            group.update({key: value for key, value in saved_groups[0].items()
                          if key in _HYPERPARAMETERS})
        try:
            self.optimizer.load_state_dict({"state": checkpoint.optimizer["state"],
                                            "param_groups": [group]})
        except StateDictError as exc:
            raise StateDictError(f"the optimizer state in {where} does not fit: {exc}") from None

    def state(self) -> tuple[dict, dict, dict]:
        """Weights, optimizer state (PyTorch's layout) and engine extras (none)."""
        return self.model.state_dict(), self.optimizer.state_dict(), {}

    # -- one epoch ----------------------------------------------------------------------------
    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Dropout masks of this epoch drawn from (seed, epoch) alone."""
        self._generator = np.random.default_rng([seed, epoch])
        for module in self.model.modules():
            if isinstance(module, Dropout):
                module.generator = self._generator

    def rng_state(self) -> dict:
        """The dropout generator's state, to continue an epoch exactly (JSON-serialisable)."""
        return self._generator.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._generator.bit_generator.state = state

    def start_epoch(self, totals: list[float] | None = None) -> None:
        """Training mode, and the running totals zeroed (or continued from ``totals``)."""
        self.model.train()
        self._totals = [0.0, 0, 0] if totals is None else [float(totals[0]), int(totals[1]),
                                                           int(totals[2])]

    def augment(self, batch: NumpyBatch, augmentation: Augmentation, epoch: int,
                step: int) -> NumpyBatch:
        """The batch shifted, flipped or warped as ``augmentation`` draws for this step."""
        images = augmentation.apply_numpy(batch.images, epoch, step, batch.global_size)
        return NumpyBatch(images, batch.labels, batch.global_size)

    def train_step(self, batch: NumpyBatch, lr: float) -> None:
        """Forward, loss, backward and an Adam step on one batch at learning rate ``lr``."""
        self.optimizer.param_groups[0]["lr"] = lr
        logits = self.model(batch.images)
        loss, grad = cross_entropy(logits, batch.labels,
                                   label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad()
        self.model.backward(grad, input_grad=False)
        self.optimizer.step()
        self._totals[0] += loss * len(batch.labels)
        self._totals[1] += int((logits.argmax(1) == batch.labels).sum())
        self._totals[2] += len(batch.labels)

    def totals(self, *, gather: bool = False) -> list[float]:
        return list(self._totals)

    def loss_is_finite(self) -> bool:
        return math.isfinite(self._totals[0])

    def synchronize(self) -> None:
        """Nothing runs asynchronously here."""

    def evaluate(self, loader: NumpyBatches, *, collect: bool = False,
                 precision: str = "fp32", outputs: bool = False) -> dict:
        """Loss and accuracy of the model over every batch of ``loader`` (always in fp32).

        With ``collect`` the predicted and true labels come too; with ``outputs`` also the
        float64 class probabilities and the float32 penultimate features (the input of the last
        layer) of every image, from the same pass.
        """
        check_choice(precision, "precision", ("fp32",))
        was_training = self.model.training
        self.model.eval()
        last = len(self.model) - 1
        loss_sum, correct, predictions, kept = 0.0, 0, [], []
        for batch in loader.batches():
            hidden = batch.images
            for index in range(last):
                hidden = self.model.forward_layer(index, hidden)
            logits = self.model.forward_layer(last, hidden)
            loss, _ = cross_entropy(logits, batch.labels, reduction="sum")
            predicted = logits.argmax(1)
            loss_sum += loss
            correct += int((predicted == batch.labels).sum())
            predictions.append(predicted)
            if outputs:
                kept.append((softmax(logits), hidden.reshape(len(hidden), -1)))
        self.model.train(was_training)
        count = loader.count
        result = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1),
                  "count": count}
        if collect:
            result["predictions"] = (np.concatenate(predictions) if predictions
                                     else np.array([], np.int64))
            result["labels"] = loader.labels
        if outputs:
            result.update(joined_outputs(kept))
        return result

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Class scores of normalised float images ``(N, C, H, W)``, in evaluation mode."""
        self.model.eval()
        return self.model(np.ascontiguousarray(images, np.float32))

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last step, by parameter name (those that have one)."""
        return {name: parameter.grad for name, parameter in self.model.named_parameters()
                if parameter.grad is not None}

    def penultimate(self, images: np.ndarray) -> np.ndarray:
        """The input of the last layer (flattened) for normalised images, in evaluation mode."""
        was_training = self.model.training
        self.model.eval()
        hidden = np.ascontiguousarray(images, np.float32)
        for index in range(len(self.model) - 1):
            hidden = self.model.forward_layer(index, hidden)
        self.model.train(was_training)
        return hidden.reshape(len(hidden), -1)

    def network(self) -> NumpyNetwork:
        """The model as a :class:`cnnkit.model.Network`, in evaluation mode."""
        return NumpyNetwork(self.model)

    def finish(self) -> str | None:
        return None


class NumpyNetwork:
    """A :class:`cnnkit.nn.Sequential` seen as a :class:`cnnkit.model.Network`.

    ``pullback`` runs the layers' forward passes (which keep what their backward passes need)
    and then their backward passes; the parameter gradients this accumulates are cleared, so
    the model is left as it was found. One call at a time per model.
    """

    def __init__(self, model) -> None:
        self.model = model.eval()

    def run(self, inputs: np.ndarray, start: int, stop: int) -> np.ndarray:
        value = np.ascontiguousarray(inputs, np.float32)
        for index in range(start, stop):
            value = self.model.forward_layer(index, value)
        return value

    def pullback(self, inputs: np.ndarray, start: int, stop: int,
                 grad_output: np.ndarray) -> np.ndarray:
        self.run(inputs, start, stop)
        grad = np.asarray(grad_output, np.float32)
        for index in reversed(range(start, stop)):
            grad = self.model[index].backward(grad)
        self.model.zero_grad()
        return grad

    def weights(self) -> dict[str, np.ndarray]:
        return self.model.state_dict()


ENGINE = NumpyEngine
