"""Memory budgets: refuse work that would not fit before allocating for it."""

from __future__ import annotations

import os
import resource

from cnnkit.errors import TooLarge

__all__ = ["available_bytes", "check_memory"]


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _address_space_left() -> int | None:
    """What the process's address-space limit (``ulimit -v``) still allows, if it has one."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None
    return max(0, limit - used)


def available_bytes() -> int | None:
    """Memory this process can still take: the system's available memory, or less where an
    address-space limit is set; None where neither is known."""
    known = [value for value in (_meminfo_available(), _address_space_left()) if value is not None]
    return min(known) if known else None


def check_memory(needed: int, what: str) -> None:
    """Raise :class:`cnnkit.errors.TooLarge` naming both numbers when ``needed`` bytes exceed
    what is available."""
    available = available_bytes()
    if available is not None and needed > available:
        raise TooLarge(
            f"{what} needs about {needed:,} bytes of memory, more than the {available:,} bytes "
            "available"
        )
