"""The PyTorch engine: one training step, evaluation and prediction on CPU, CUDA, MPS or DDP.

The training loop (:mod:`cnnkit.engines.training`) is shared with the NumPy engine; this class
holds what only PyTorch has: the device, DistributedDataParallel, autocast with an fp16 gradient
scaler, channels-last memory, the fused Adam and ``torch.compile``. Weights and optimizer state
leave and enter as NumPy arrays in PyTorch's layout, so checkpoints move between the engines.

With several processes (torchrun), each process trains on its shard of every global batch and
DistributedDataParallel averages the gradients; the loss of each process is scaled so that the
average equals the loss of the whole global batch, which makes an N-process run follow the
one-process run with the same global batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.arch import Architecture
from cnnkit.engines import distributed
from cnnkit.engines.augment import Augmentation
from cnnkit.engines.base import Context, joined_outputs
from cnnkit.engines.checkpoint import Checkpoint
from cnnkit.engines.config import TrainConfig
from cnnkit.engines.loaders import Batch, BatchLoader
from cnnkit.engines.model import autocast_dtype, build_model, choose_device, resolve_precision
from cnnkit.errors import InvalidArgument, StateDictError, TrainingError
from cnnkit.nn.loss import softmax
from cnnkit.nn.optim import from_torch_optimizer_state

__all__ = ["ENGINE", "TorchEngine", "evaluate_loader"]

#: Optimizer hyper-parameters a checkpoint carries between engines.
_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad")


class TorchEngine:
    """Training and inference with PyTorch for one run (or one loaded model)."""

    name = "torch"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = choose_device(config.device)
        self.context = Context()
        self.precision = resolve_precision(config.precision, self.device)
        self.model: torch.nn.Module | None = None  # as built (state dicts, checkpoints)
        self._runner: torch.nn.Module | None = None  # compiled and/or DDP-wrapped
        self._totals: torch.Tensor | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Context]:
        """Join the process group (under torchrun) and set determinism for the block."""
        self.context, self.device = distributed.setup(self.device)
        previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
        finished = False
        try:
            if self.config.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=self.device.type != "cpu")
                torch.backends.cudnn.benchmark = False
            else:
                torch.backends.cudnn.benchmark = True
            with distributed.peers_lost_as_error(self.context):
                yield self.context
            finished = True
        finally:
            torch.use_deterministic_algorithms(previous[0])
            torch.backends.cudnn.benchmark = previous[1]
            distributed.shutdown(self.context, clean=finished)

    # -- data ---------------------------------------------------------------------------------
    def loader(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean: float,
               std: float, rows: np.ndarray | None = None,
               streaming: bool = False) -> BatchLoader:
        """Normalised batches of this process's shard of ``rows``, on the device."""
        return BatchLoader(images, labels, batch_size=batch_size, device=self.device,
                           mean=mean, std=std, mode=self.config.loader,
                           channels_last=self.config.channels_last, rank=self.context.rank,
                           world=self.context.world, rows=rows, streaming=streaming)

    def describe(self, loader: BatchLoader) -> str:
        where = ("the memory map" if loader.streaming else "host memory")
        return (
            f"engine torch, device {self.device}, {self.context.world} process(es), precision "
            f"{self.precision}, data {loader.mode} on the device"
            + ("" if loader.mode == "resident" else f" (streamed from {where})")
        )

    # -- model and optimizer ------------------------------------------------------------------
    def build(self, arch: Architecture, input_shape, num_classes: int, *, seed: int,
              lr: float | None = 1e-3) -> None:
        """The model (PyTorch's initialisation drawn from ``seed``) and its Adam optimizer;
        ``lr=None`` builds the model alone, for inference (creating ``torch.optim.Adam`` imports
        the compiler stack, a second and a half)."""
        torch.manual_seed(seed)
        model = build_model(arch, input_shape, num_classes).to(self.device)
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if lr is None:
            self.optimizer, self.scaler, self._runner = None, None, model
            return
        fused = self.config.fused_optimizer and self.device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        runner = torch.compile(model) if self.config.compile else model
        if self.context.distributed:
            from torch.nn.parallel import DistributedDataParallel

            runner = DistributedDataParallel(
                runner, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self._runner = runner

    def load_weights(self, weights: dict[str, np.ndarray], where: str) -> None:
        """Copy a checkpoint's weights (PyTorch's names) into the model."""
        try:
            self.model.load_state_dict(
                {key: torch.from_numpy(np.array(value)) for key, value in weights.items()}
            )
        except RuntimeError as exc:
            raise InvalidArgument(
                f"the weights in {where} do not fit its architecture: "
                f"{str(exc).strip().splitlines()[-1].strip()}"
            ) from None

    def restore(self, checkpoint: Checkpoint, where: str) -> None:
        """Weights, optimizer state and gradient scaler from a checkpoint of either engine."""
        self.load_weights(checkpoint.model, where)
        group = dict(self.optimizer.state_dict()["param_groups"][0])
        saved_groups = checkpoint.optimizer["param_groups"]
        if saved_groups:
            group.update({key: tuple(value) if isinstance(value, list) else value
                          for key, value in saved_groups[0].items() if key in _HYPERPARAMETERS})
        parameters = list(self.model.parameters())
        _check_optimizer_state(checkpoint.optimizer["state"], parameters, where)
        state = {
            index: {key: _like(value, parameters[index] if index < len(parameters) else None)
                    for key, value in entries.items()}
            for index, entries in checkpoint.optimizer["state"].items()
        }
        try:
            self.optimizer.load_state_dict({"state": state, "param_groups": [group]})
        except (ValueError, KeyError, RuntimeError) as exc:
            raise InvalidArgument(
                f"the optimizer state in {where} does not fit the model: {exc}"
            ) from None
        if "scaler" in checkpoint.extra and self.precision == "fp16":
            self.scaler.load_state_dict(checkpoint.extra["scaler"])

    def state(self) -> tuple[dict, dict, dict]:
        """Weights, optimizer state (NumPy, PyTorch's layout) and engine extras."""
        weights = {key: value.detach().cpu().numpy()
                   for key, value in self.model.state_dict().items()}
        optimizer = from_torch_optimizer_state(self.optimizer.state_dict())
        optimizer["param_groups"] = [
            {key: value for key, value in group.items() if key in (*_HYPERPARAMETERS, "params")}
            for group in optimizer["param_groups"]
        ]
        extra = {"scaler": self.scaler.state_dict()} if self.precision == "fp16" else {}
        return weights, optimizer, extra

    # -- one epoch ----------------------------------------------------------------------------
    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed the global RNGs (dropout) from (seed, epoch, rank) alone."""
        torch.manual_seed((seed * 1_000_003 + epoch) * 1_009 + self.context.rank)

    def rng_state(self) -> dict:
        """The generators dropout draws from (CPU, and the device's on CUDA), as lists."""
        state = {"cpu": torch.get_rng_state().tolist()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device).tolist()
        return state

    def set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(torch.tensor(state["cpu"], dtype=torch.uint8))
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8), self.device)

    def start_epoch(self, totals: list[float] | None = None) -> None:
        """Training mode, and the running totals zeroed (or continued from ``totals``)."""
        self._runner.train()
        self._totals = torch.tensor([0.0, 0.0, 0.0] if totals is None else totals,
                                    dtype=torch.float64, device=self.device)

    def augment(self, batch: Batch, augmentation: Augmentation, epoch: int, step: int) -> Batch:
        """The batch shifted, flipped, warped and erased on its device, as ``augmentation``
        draws for this step; the same numbers, read and summed in the same order, as
        :meth:`cnnkit.engines.augment.Augmentation.apply_numpy` (the NumPy engine's)."""
        images = batch.images
        height, width = images.shape[2:]
        device = images.device
        if augmentation.warps:
            taps = augmentation.taps(epoch, step, batch.global_size, height, width)
            indices = torch.from_numpy(taps.indices).to(device, non_blocking=True)
            weights = torch.from_numpy(taps.weights).to(device, images.dtype, non_blocking=True)
            images = _warp(images, indices, weights, augmentation.fill)
        elif augmentation.policy != "none":
            rows, columns = augmentation.draws(epoch, step, batch.global_size, height, width)
            images = _gather(images, torch.from_numpy(rows).to(device, non_blocking=True),
                             torch.from_numpy(columns).to(device, non_blocking=True),
                             augmentation.padding, augmentation.fill)
        if augmentation.erase > 0:
            mask = augmentation.erased(epoch, step, batch.global_size, height, width)
            mask = torch.from_numpy(mask).to(device, non_blocking=True)[:, None]
            images = torch.where(mask, torch.tensor(augmentation.fill, dtype=images.dtype,
                                                    device=device), images)
        # The gathers give channels-last memory already (no copy then).
        images = images.contiguous(memory_format=torch.channels_last if self.config.channels_last
                                   else torch.contiguous_format)
        return Batch(images, batch.labels, batch.global_size)

    def train_step(self, batch, lr: float) -> None:
        """Forward, loss, backward and an Adam step on one batch at learning rate ``lr``."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        dtype = autocast_dtype(self.precision)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits = self._runner(batch.images)
        loss_sum = F.cross_entropy(logits.float(), batch.labels, reduction="sum",
                                   label_smoothing=self.config.label_smoothing)
        # DDP averages gradients over processes; scaling by world / global batch makes that
        # average the gradient of the mean loss over the whole global batch.
        loss = loss_sum * (self.context.world / batch.global_size)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._totals[0] += loss_sum.detach()
        self._totals[1] += (logits.detach().argmax(1) == batch.labels).sum()
        self._totals[2] += len(batch.labels)

    def totals(self, *, gather: bool = False) -> list[float]:
        """This epoch's loss sum, correct count and image count (summed over processes)."""
        totals = self._totals.clone()
        if gather:
            distributed.all_reduce_sum(totals, self.context)
        return totals.tolist()

    def loss_is_finite(self) -> bool:
        """Whether every process's running loss is finite (all stop together otherwise)."""
        flag = torch.tensor([0.0 if torch.isfinite(self._totals[0]) else 1.0],
                            dtype=torch.float64, device=self.device)
        distributed.all_reduce_sum(flag, self.context)
        return flag.item() == 0

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def evaluate(self, loader: BatchLoader, *, collect: bool = False,
                 precision: str | None = None, outputs: bool = False) -> dict:
        """Loss and accuracy over ``loader`` (see :func:`evaluate_loader`), in ``precision``
        (default: the training precision; the final test uses fp32, as ``cnnkit evaluate``)."""
        if outputs:  # the probabilities and features come from the plain model, layer by layer
            return evaluate_loader(self.model, loader, precision=precision or self.precision,
                                   context=self.context, collect=collect, outputs=True)
        return evaluate_loader(self._runner, loader, precision=precision or self.precision,
                               context=self.context, collect=collect)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Class scores of normalised float images ``(N, C, H, W)``, in evaluation mode."""
        self.model.eval()
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)
            return self.model(batch).float().cpu().numpy()

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last step, by parameter name (those that have one)."""
        return {name: parameter.grad.detach().float().cpu().numpy()
                for name, parameter in self.model.named_parameters()
                if parameter.grad is not None}

    def penultimate(self, images: np.ndarray) -> np.ndarray:
        """The input of the last layer (flattened) for normalised images, in evaluation mode."""
        was_training = self.model.training
        hidden = self.network().run(images, 0, len(self.model) - 1)
        self.model.train(was_training)
        return hidden.reshape(len(hidden), -1)

    def network(self) -> TorchNetwork:
        """The model as a :class:`cnnkit.model.Network`, in evaluation mode."""
        return TorchNetwork(self.model, self.device)

    def finish(self) -> str | None:
        """After training: with several processes, check that they hold the same weights."""
        if not self.context.distributed:
            return None
        with torch.no_grad():
            flat = torch.cat([p.detach().float().reshape(-1) for p in self.model.parameters()])
            low, high = flat.clone(), flat.clone()
            torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise TrainingError(
                f"the processes ended with different weights (largest difference "
                f"{(high - low).max().item():.3g}); the run is not trustworthy"
            )
        return f"weights identical on all {self.context.world} processes"


class TorchNetwork:
    """A ``torch.nn.Sequential`` seen as a :class:`cnnkit.model.Network` (float32 in and out).

    Batches of images run in channels-last memory format, which takes oneDNN's faster
    convolutions on the CPU (the same values); gradients come from autograd.
    """

    def __init__(self, model, device) -> None:
        self.model = model.eval()
        self.device = device

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last) if tensor.ndim == 4 else tensor

    def run(self, inputs: np.ndarray, start: int, stop: int) -> np.ndarray:
        with torch.inference_mode():
            value = self._tensor(inputs)
            for module in self.model[start:stop]:
                value = module(value)
            return value.float().cpu().numpy()

    def pullback(self, inputs: np.ndarray, start: int, stop: int,
                 grad_output: np.ndarray) -> np.ndarray:
        value = self._tensor(inputs).requires_grad_(True)
        with torch.enable_grad():
            output = value
            for module in self.model[start:stop]:
                output = module(output)
            (gradient,) = torch.autograd.grad(output, value, self._tensor(grad_output))
        return gradient.float().cpu().numpy()

    def weights(self) -> dict[str, np.ndarray]:
        return {name: tensor.detach().float().cpu().numpy()
                for name, tensor in self.model.state_dict().items()}


def _check_optimizer_state(state: dict, parameters: list, where: str) -> None:
    """Refuse optimizer state that does not fit the model (PyTorch would fail at the first step)."""
    for index, entries in state.items():
        if not 0 <= index < len(parameters):
            raise StateDictError(f"the optimizer state in {where} is for parameter {index}; "
                                 f"the model has {len(parameters)}")
        for name, value in entries.items():
            expected = () if name == "step" else tuple(parameters[index].shape)
            if tuple(np.shape(value)) != expected:
                raise StateDictError(
                    f"the optimizer state {name!r} of parameter {index} in {where} has shape "
                    f"{tuple(np.shape(value))}, expected {expected}"
                )


def _like(array: np.ndarray, parameter: torch.Tensor | None) -> torch.Tensor:
    """A saved state array as a tensor laid out like its parameter (channels-last included:
    the fused Adam walks the moments and the parameter in the same memory order)."""
    tensor = torch.from_numpy(np.array(array))
    if parameter is None or tensor.shape != parameter.shape:
        return tensor
    return torch.empty_like(parameter, dtype=tensor.dtype).copy_(tensor)


def evaluate_loader(
    model: torch.nn.Module,
    loader: BatchLoader,
    *,
    precision: str = "fp32",
    context: Context | None = None,
    collect: bool = False,
    outputs: bool = False,
) -> dict:
    """Loss and accuracy of ``model`` over every batch of ``loader`` (gathered over processes).

    With ``collect`` the predicted and true labels are returned too (one process only); with
    ``outputs`` (an ``nn.Sequential``, one process) also the float64 class probabilities and
    the float32 penultimate features (the input of the last layer) from the same pass.
    """
    context = context or Context()
    device = loader.device
    dtype = autocast_dtype(precision)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    predictions, truths, kept = [], [], []
    body, head = (model[:-1], model[-1]) if outputs else (model, None)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for batch in loader.batches():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                hidden = body(batch.images)
                logits = head(hidden) if outputs else hidden
            logits = logits.float()
            if outputs:
                kept.append((softmax(logits.cpu().numpy()),
                             hidden.float().flatten(1).cpu().numpy()))
            predicted = logits.argmax(1)
            totals[0] += F.cross_entropy(logits, batch.labels, reduction="sum")
            totals[1] += (predicted == batch.labels).sum()
            totals[2] += len(batch.labels)
            if collect:
                predictions.append(predicted.cpu())
                truths.append(batch.labels.cpu())
    model.train(was_training)
    distributed.all_reduce_sum(totals, context)
    loss_sum, correct, count = totals.tolist()
    result = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1),
              "count": int(count)}
    if collect:
        result["predictions"] = torch.cat(predictions).numpy() if predictions else np.array([])
        result["labels"] = torch.cat(truths).numpy() if truths else np.array([])
    if outputs:
        result.update(joined_outputs(kept))
    return result


ENGINE = TorchEngine


def _gather(images, rows, columns, padding: int, fill: float):
    """``images`` read through :func:`cnnkit.engines.augment.crop_indices`' indices."""
    padded = F.pad(images, (padding,) * 4, value=fill)
    count = images.shape[0]
    # Advanced indices around a slice put their axes first: (N, H, W, C), which permuted back to
    # (N, C, H, W) is channels-last memory.
    return padded[torch.arange(count, device=images.device)[:, None, None], :,
                  rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2)


def _warp(images, indices, weights, fill: float):
    """``images`` read through bilinear taps (:func:`cnnkit.engines.augment.bilinear_taps`),
    summed in the order :func:`cnnkit.engines.augment.warp_numpy` sums them."""
    channels = images.shape[1]
    padded = F.pad(images, (1, 1, 1, 1), value=fill)
    flat = padded.permute(0, 2, 3, 1).reshape(-1, channels)
    weights = weights[..., None]
    warped = flat[indices[0]] * weights[0]
    for k in (1, 2, 3):
        warped = warped + flat[indices[k]] * weights[k]
    return warped.permute(0, 3, 1, 2)
