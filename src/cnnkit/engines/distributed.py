"""Multi-process training on PyTorch's own DistributedDataParallel.

A training script run by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its
environment; :func:`setup` then joins the process group (NCCL on CUDA, gloo on the CPU) and picks
this process's GPU. Without those variables (or with a world of one) nothing is set up and the
same code runs as one process. Collectives have a bounded timeout, so a process that waits for
a peer that died gives up instead of hanging; ``torchrun`` itself stops every process when one
fails.
"""

from __future__ import annotations

import datetime
import gc
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist

from cnnkit.engines.base import Context
from cnnkit.errors import InvalidArgument

__all__ = ["Context", "all_reduce_sum", "launch", "setup", "shutdown"]

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
    it uses gloo and its share of the cores.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context(), device
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
        local_world = _env_int("LOCAL_WORLD_SIZE", world)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    else:
        raise InvalidArgument(f"multi-process training runs on CUDA or the CPU, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(
            backend, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
        )
    return Context(rank, world, local_rank), device


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


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (a no-op for one process)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(
    train_argv: Sequence[str],
    nproc: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
) -> int:
    """Run ``cnnkit train <train_argv>`` in ``nproc`` processes through ``torchrun``.

    On one machine (``nnodes == 1``) the processes meet on 127.0.0.1 at a free port; for several
    machines ``master_addr`` (and optionally ``master_port``, default 29500) are passed through,
    and the same command must be started on every machine with its own ``node_rank``. Returns
    torchrun's exit status: non-zero when any process failed.
    """
    if nnodes > 1 and not master_addr:
        raise InvalidArgument("--master-addr is needed when --nnodes is more than 1")
    if not 0 <= node_rank < nnodes:
        raise InvalidArgument(f"--node-rank must be in 0..{nnodes - 1}, got {node_rank}")
    address = master_addr or "127.0.0.1"
    port = master_port or (29500 if nnodes > 1 else free_port())
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--nnodes={nnodes}",
        f"--node_rank={node_rank}",
        f"--master_addr={address}",
        f"--master_port={port}",
        "-m",
        "cnnkit",
        "train",
        *train_argv,
    ]
    return subprocess.run(command, check=False).returncode
