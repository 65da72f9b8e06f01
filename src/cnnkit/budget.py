"""Memory and disk budgets: estimate before a large allocation, refuse with the number.

Work whose size comes from the user (a kernel, an image, an architecture, a compressed file) is
checked here before anything is allocated, so that a typo such as ``sigma=1000`` or a channel
count of 10⁹ is answered in a moment with the bytes it would need, instead of filling the memory
of the machine.

>>> format_bytes(3 * 2**30)
'3.0 GiB'
>>> check_memory(1024, "a tiny buffer")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from cnnkit.errors import DiskFull, TooLarge

__all__ = [
    "FLOAT32_BYTES",
    "available_memory",
    "check_disk",
    "check_memory",
    "format_bytes",
    "training_memory",
]

FLOAT32_BYTES = 4
#: Share of the available memory one allocation plan may take; the rest is for everything else.
MEMORY_SHARE = 0.8


def format_bytes(count: float) -> str:
    """``count`` bytes in the largest binary unit that keeps the number at least 1."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def available_memory() -> int:
    """Bytes of memory this process can still get, the least of three limits.

    The machine's ``MemAvailable`` (Linux; elsewhere the free physical pages), the room left
    under the process's address-space limit (``ulimit -v``, as batch schedulers set it), and the
    room left in its control group (``memory.max`` of cgroup v2, as containers set it).
    """
    limits = [_machine_available()]
    try:
        import resource  # Unix only
    except ImportError:
        resource = None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0] if resource else -1
    if resource and soft != resource.RLIM_INFINITY:
        limits.append(max(0, soft - _status_bytes("VmSize:")))
    group = _cgroup_room()
    if group is not None:
        limits.append(group)
    return min(limits)


def _machine_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    page = os.sysconf("SC_PAGE_SIZE")
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return int(os.sysconf(name)) * page
        except (ValueError, OSError):
            continue
    return 2**63  # unknown: nothing to compare against


def _status_bytes(key: str) -> int:
    """A size line of ``/proc/self/status`` in bytes (0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cgroup_room() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup v2, or None without a limit."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            group = next((line.split(":", 2)[2].strip() for line in handle
                          if line.startswith("0::")), None)
        if group is None:
            return None
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def check_memory(needed: int, what: str, *, hint: str = "") -> None:
    """Refuse ``what`` with :class:`~cnnkit.errors.TooLarge` when it needs too much memory.

    The limit is a share (80%) of :func:`available_memory`, read at the time of the call.
    """
    available = available_memory()
    if needed > MEMORY_SHARE * available:
        message = (
            f"{what} would need about {format_bytes(needed)} of memory, more than this machine "
            f"can give now ({format_bytes(available)} available)"
        )
        raise TooLarge(message + (f"; {hint}" if hint else ""))


def check_disk(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse with :class:`~cnnkit.errors.DiskFull` when ``folder``'s disk has less free space."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DiskFull(
            f"{what} needs about {format_bytes(needed)} of disk space in {folder}, "
            f"but only {format_bytes(free)} is free",
        )


def training_memory(
    parameter_count: int, activation_shapes: Sequence[Sequence[int]], batch_size: int
) -> int:
    """Bytes that training a float32 network needs, roughly.

    Weights, their gradients and Adam's two moments (four copies of the parameters), plus every
    layer's output for a batch kept for the backward pass and one gradient of the same size.
    """
    activations = sum(_product(shape) for shape in activation_shapes)
    return FLOAT32_BYTES * (4 * parameter_count + 2 * batch_size * activations)


def _product(shape: Sequence[int]) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total
