"""Starting ``cnnkit train`` in several processes, on one machine or several, through torchrun.

cnnkit writes no launcher of its own: :func:`launch` runs PyTorch's elastic launcher (the code
behind ``torchrun``) in this process with the arguments :meth:`LaunchPlan.torchrun_arguments`
spells, so that ``cnnkit train --nproc 4 --nnodes 2 --rdzv-endpoint HOST:PORT ...`` and the
torchrun command it prints are the same run. The machines meet through torchrun's c10d
rendezvous at ``HOST:PORT`` (a TCP store hosted by the launcher of machine 0); ``--nnodes
MIN:MAX`` lets machines leave and join; after a failure torchrun stops every process and starts
them all again, up to ``--max-restarts`` times, and each attempt resumes from the run's last
checkpoint (:mod:`cnnkit.engines.training`). The processes themselves join their process group
in :mod:`cnnkit.engines.distributed`.

Torch-free until :func:`launch` runs, so that bad arguments are refused before PyTorch loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cnnkit._validate import check_int, is_loopback
from cnnkit.errors import InvalidArgument, RendezvousTimeout, TrainingError

__all__ = ["DEFAULT_RDZV_TIMEOUT", "LaunchPlan", "free_port", "launch", "parse_endpoint"]

#: Seconds torchrun waits for every machine to join (torchrun's own default).
DEFAULT_RDZV_TIMEOUT = 600
#: A restarted attempt must not read the addresses the failed attempt left in a shared store:
#: with this set, each rendezvous round gets a fresh store for the processes' group (without it
#: torchrun 2.x reuses one store across rounds and a restart fails to connect).
_FRESH_STORE_PER_ROUND = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as ``(host, port)``.

    >>> parse_endpoint("10.0.0.1:29400"), parse_endpoint("[::1]:29400")
    (('10.0.0.1', 29400), ('::1', 29400))
    """
    host, separator, port = str(text).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(
            f"--rdzv-endpoint must be HOST:PORT with a port in 1..65535 (machine 0's address "
            f"and a free port, such as 10.0.0.1:29400), got {text!r}"
        )
    return host, int(port)


def _parse_nnodes(text: str) -> tuple[int, int]:
    """``N`` or ``MIN:MAX`` as ``(min, max)``."""
    low, _, high = str(text).partition(":")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        bounds = (0, 0)
    if not 1 <= bounds[0] <= bounds[1]:
        raise InvalidArgument(
            f"--nnodes must be a number of machines (2) or a range MIN:MAX with "
            f"1 <= MIN <= MAX (1:4), got {text!r}"
        )
    return bounds


@dataclass(frozen=True)
class LaunchPlan:
    """How torchrun starts a training run: processes, machines, rendezvous and restarts.

    Parameters
    ----------
    nproc : int
        Processes on this machine.
    nnodes : str
        Machines taking part: ``'N'``, or ``'MIN:MAX'`` to keep training while at least MIN of
        at most MAX machines are there.
    node_rank : int, optional
        0 on the machine whose launcher hosts the rendezvous store at ``rdzv_endpoint``, 1 to
        MAX - 1 on the others; by default torchrun decides from the endpoint's host name. The
        ranks of the processes are assigned by the rendezvous.
    rdzv_endpoint : str, optional
        ``HOST:PORT`` where the machines meet (machine 0's address); needed with several
        machines. One machine meets on 127.0.0.1 at a port the system picks.
    rdzv_id : str, optional
        The job's name, the same on every machine; a restarted attempt recognises the run
        folder its job was writing by it. Default: a fresh one on one machine, one made from the
        endpoint and the run folder with several (:meth:`with_job_id`).
    rdzv_timeout : int
        Seconds to wait for every machine to join before giving up.
    max_restarts : int
        Times torchrun restarts every process after a failure (each attempt resumes from the
        last checkpoint).

    >>> plan = LaunchPlan(nproc=2, nnodes="2", node_rank=0, rdzv_endpoint="10.0.0.1:29400",
    ...                   rdzv_id="job", max_restarts=3)
    >>> " ".join(plan.torchrun_arguments(["--out", "runs/a"]))  # doctest: +NORMALIZE_WHITESPACE
    '--nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint=10.0.0.1:29400
    --rdzv-id=job --rdzv-conf=join_timeout=600,is_host=true --max-restarts=3 -m cnnkit train
    --out runs/a'
    """

    nproc: int = 1
    nnodes: str = "1"
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    rdzv_timeout: int = DEFAULT_RDZV_TIMEOUT
    max_restarts: int = 0

    def __post_init__(self) -> None:
        check_int(self.nproc, "--nproc", minimum=1)
        _, max_nodes = _parse_nnodes(self.nnodes)
        check_int(self.max_restarts, "--max-restarts", minimum=0)
        check_int(self.rdzv_timeout, "--rdzv-timeout", minimum=1)
        if self.node_rank is not None:
            if max_nodes == 1:
                raise InvalidArgument("--node-rank is for runs on several machines; give "
                                      "--nnodes with it")
            if not 0 <= check_int(self.node_rank, "--node-rank") < max_nodes:
                raise InvalidArgument(f"--node-rank must be in 0..{max_nodes - 1} for --nnodes "
                                      f"{self.nnodes}, got {self.node_rank}")
        if self.rdzv_endpoint is not None:
            parse_endpoint(self.rdzv_endpoint)
        elif max_nodes > 1:
            raise InvalidArgument("--rdzv-endpoint HOST:PORT is needed with --nnodes above 1: "
                                  "machine 0's address and a free port, the same on every "
                                  "machine")
        if self.rdzv_id is not None and (not self.rdzv_id or not all(
                character.isalnum() or character in "-_." for character in self.rdzv_id)):
            raise InvalidArgument(f"--rdzv-id must be letters, digits, '-', '_' or '.', got "
                                  f"{self.rdzv_id!r}")

    @property
    def max_nodes(self) -> int:
        return _parse_nnodes(self.nnodes)[1]

    def with_job_id(self, run_dir: str | os.PathLike) -> LaunchPlan:
        """This plan with ``rdzv_id`` set: as given, else a fresh one on one machine, else one
        made from the endpoint and ``run_dir`` (the same on every machine that runs the same
        command)."""
        if self.rdzv_id is not None:
            return self
        if self.max_nodes == 1:
            return dataclasses.replace(self, rdzv_id=f"cnnkit-{uuid.uuid4().hex[:16]}")
        digest = hashlib.sha256(f"{self.rdzv_endpoint}\n{os.fspath(run_dir)}".encode())
        return dataclasses.replace(self, rdzv_id=f"cnnkit-{digest.hexdigest()[:16]}")

    def torchrun_arguments(self, train_argv: Sequence[str]) -> list[str]:
        """torchrun's arguments for this plan, ending with ``-m cnnkit train <train_argv>``."""
        endpoint = self.rdzv_endpoint or "127.0.0.1:0"  # one machine: a port the system picks
        host, _ = endpoint.rsplit(":", 1)
        conf = f"join_timeout={self.rdzv_timeout}"
        if self.node_rank is not None:
            conf += f",is_host={'true' if self.node_rank == 0 else 'false'}"
        arguments = [
            f"--nnodes={self.nnodes}", f"--nproc-per-node={self.nproc}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={self.rdzv_id}",
            f"--rdzv-conf={conf}", f"--max-restarts={self.max_restarts}",
        ]
        if is_loopback(host.strip("[]")):
            # Every "machine" is this one: keep the processes' own addresses on loopback too.
            arguments.append("--local-addr=127.0.0.1")
        return [*arguments, "-m", "cnnkit", "train", *train_argv]


def launch(train_argv: Sequence[str], plan: LaunchPlan) -> None:
    """Run ``cnnkit train <train_argv>`` as ``plan`` says, with torchrun's elastic launcher.

    Returns when every process has finished. Raises :class:`~cnnkit.errors.RendezvousTimeout`
    when the machines do not all join within ``plan.rdzv_timeout`` seconds, and
    :class:`~cnnkit.errors.TrainingError` when a process failed after the last restart (its own
    error is on stderr above) or the rendezvous failed; Ctrl-C or SIGTERM stops every process
    and raises KeyboardInterrupt.
    """
    if plan.rdzv_id is None:
        raise InvalidArgument("the plan needs an rdzv_id; see LaunchPlan.with_job_id")
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError, RendezvousTimeoutError

    from cnnkit.data.imagefolder import default_workers

    os.environ.update(_FRESH_STORE_PER_ROUND)
    # Each process's share of this machine's cores, unless the user chose (--threads overrides
    # it in each process).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, default_workers() // plan.nproc)))
    where = plan.rdzv_endpoint or "127.0.0.1"
    try:
        torchrun.run(torchrun.parse_args(plan.torchrun_arguments(train_argv)))
    except RendezvousTimeoutError:
        raise RendezvousTimeout(
            f"not every machine joined the rendezvous at {where} within {plan.rdzv_timeout} s "
            f"(--nnodes {plan.nnodes}, --rdzv-timeout); start the same command on each machine "
            f"(the same --rdzv-endpoint and --rdzv-id {plan.rdzv_id}), or check that the "
            "endpoint can be reached from every machine"
        ) from None
    except RendezvousError as exc:
        raise TrainingError(f"the rendezvous at {where} failed: "
                            f"{str(exc).strip().splitlines()[0]}") from None
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        status = (f"signal {-failure.exitcode} ({failure.signal_name()})" if failure.exitcode < 0
                  else f"exit status {failure.exitcode}")
        restarts = (f"after {plan.max_restarts} restart(s), the most --max-restarts allows"
                    if plan.max_restarts else "and --max-restarts is 0")
        raise TrainingError(f"process {rank} failed with {status} {restarts}; its error is "
                            "shown above") from None
    except SignalException:
        raise KeyboardInterrupt from None  # torchrun has stopped every process
