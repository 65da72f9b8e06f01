"""Multi-process training on PyTorch's own DistributedDataParallel: the processes' side.

A training script run by ``torchrun`` (started by :mod:`cnnkit.engines.launch`, or by hand)
finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and its job's ``TORCHELASTIC_RUN_ID`` in its
environment; :func:`setup` then joins the process group (NCCL on CUDA, gloo on the CPU) and picks
this process's GPU. Without those variables (or with a world of one) no group is joined and the
same code runs as one process. Collectives have a bounded timeout, so a process that waits for
a peer that died gives up instead of hanging; ``torchrun`` itself stops every process when one
fails, and starts them all again while ``--max-restarts`` allows.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from cnnkit.engines.base import Context
from cnnkit.errors import InvalidArgument, TrainingError

__all__ = ["Context", "all_gather_object", "all_reduce_sum", "broadcast_object",
           "peers_lost_as_error", "setup", "shutdown"]

#: How long a collective waits for the other processes before failing.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=5)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(
            f"environment variable {name} must "
            f"be an integer, got {value!r}"
        ) from None


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group when started by torchrun; return the context and the device.

    On CUDA each process takes the GPU ``LOCAL_RANK`` (of those visible) and NCCL; on the CPU
    it uses gloo, with the threads ``OMP_NUM_THREADS`` gives it. The context's ``job`` is
    torchrun's rendezvous id (also for a world of one), which every attempt of a restarted job
    shares.
    """
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    if job is not None:
        _check_restartable()
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context(job=job), device
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"  # threads: OMP_NUM_THREADS (cnnkit's launcher shares the cores)
    else:
        raise InvalidArgument(f"multi-process training runs on CUDA or the CPU, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(
            backend, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
        )
    return Context(rank, world, local_rank, job), device


def _check_restartable() -> None:
    """Refuse restarts that cannot connect: torchrun 2.x shares one store between its rendezvous
    rounds unless told otherwise, and a restarted attempt then reads the addresses of the failed
    one and fails to connect (``cnnkit train --max-restarts`` sets the variable itself)."""
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if shared and _env_int("TORCHELASTIC_MAX_RESTARTS", 0) > 0:
        raise InvalidArgument(
            "torchrun --max-restarts needs TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's "
            "environment (a restarted attempt cannot connect through the store torchrun shares "
            "otherwise); set it, or start the run with cnnkit train --max-restarts"
        )


def shutdown(context: Context, *, clean: bool = True) -> None:
    """Leave the process group (if this process joined one).

    After a failure (``clean=False``) the group is left as it is: the other processes may be
    inside a collective this one will never join, and torchrun ends them when this one exits.
    """
    if context.distributed and dist.is_initialized() and clean:
        # A DistributedDataParallel wrapper freed after its process group is gone aborts the
        # process, so collect the finished run's objects first; then leave together.
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def peers_lost_as_error(context: Context) -> Iterator[None]:
    """Turn the failure of a collective whose peer process is gone into a
    :class:`~cnnkit.errors.TrainingError` that says so (the peer's own error is the one to
    read; torchrun restarts or stops the job). gloo reports a lost peer from its transport,
    NCCL and the store as ``torch.distributed.DistError``; any other error passes unchanged."""
    try:
        yield
    except RuntimeError as exc:
        if not context.distributed or not (isinstance(exc, dist.DistError)
                                           or "gloo/transport" in str(exc)):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(
            f"process {context.rank} lost contact with the other processes ({reason[:200]}); "
            "another process has probably failed, and its own error says why"
        ) from None


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (a no-op for one process)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(value: object, context: Context) -> list:
    """``value`` of every process, by rank (picklable values; ``[value]`` for one process)."""
    if not context.distributed:
        return [value]
    gathered: list = [None] * context.world
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: object, context: Context) -> object:
    """Rank 0's ``value`` in every process (picklable values; ``value`` for one process)."""
    if not context.distributed:
        return value
    carrier = [value]
    dist.broadcast_object_list(carrier, src=0)
    return carrier[0]
