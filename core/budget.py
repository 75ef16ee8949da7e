"""Bounds on parameters that multiply work, and disk and memory estimates checked before a run.

Estimates are upper bounds (uncompressed bytes, the largest arrays alive at once): a run that
passes may use less, a run that fails them would fill the disk or the memory.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from .errors import PatchworkError

MAX_CHIP_SIZE = 8192  # px: a chip is an array in memory
MAX_CHIPS = 1_000_000  # COUNT: chips per sampling run
MAX_COPIES = 1000  # augmented copies per chip
MAX_TILE_SIZE = 8192  # px
MAX_BATCH_SIZE = 1024  # tiles per model call
MAX_SEED = 2**63 - 1  # seeds are stored as 64-bit integers in chip indexes
DISK_HEADROOM = 0.9  # never plan to use more than this share of the free space
MEMORY_HEADROOM = 0.8  # … nor of the memory available


def require_int_range(role: str, value, low: int, high: int, fix: str = "") -> int:
    """An integer parameter within [low, high], or a PatchworkError that names it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PatchworkError(f"{role} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        raise PatchworkError(f"{role} must be between {low} and {high:,}, got {value:,}. {fix}".strip())
    return int(value)


def free_disk_bytes(path: str) -> int | None:
    """Free bytes on the filesystem that holds `path` (or the nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def available_memory_bytes() -> int | None:
    """Memory the system can give a process now (Linux: MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def human(n: float) -> str:
    """A byte count for people: '1.5 GB'."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def require_disk(path: str, needed: int, role: str, what: str, fix: str) -> None:
    """Refuse a run whose `needed` bytes would not fit in the free space where `path` goes."""
    free = free_disk_bytes(path)
    if free is not None and needed > DISK_HEADROOM * free:
        raise PatchworkError(f"{role}: {what} would need up to {human(needed)} and '{path}' has {human(free)} free. "
                             f"{fix}")


def require_memory(needed: int, role: str, what: str, fix: str) -> None:
    """Refuse a run whose arrays (`needed` bytes at once) would not fit in the memory available."""
    available = available_memory_bytes()
    if available is not None and needed > MEMORY_HEADROOM * available:
        raise PatchworkError(f"{role}: {what} would need about {human(needed)} of memory at once and "
                             f"{human(available)} is available. {fix}")
