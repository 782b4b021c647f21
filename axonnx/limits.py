"""Upper bounds on what one command may ask of this machine, derived from it once: a typo
such as ``--workers 100000`` is refused, not spawned. The CLI states them in ``--help``."""

from __future__ import annotations

import math
import os


def usable_cpus() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def physical_memory() -> int:
    """Bytes of RAM (8 GiB when the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 8 << 30


CPUS = usable_cpus()
# onnxruntime intra-op threads: past a few per core they only contend.
MAX_THREADS = 4 * CPUS
# Worker processes (--workers, --dask local:N): each holds a model, its session and data.
MAX_WORKERS = 4 * CPUS
# NSGA-II ranks parents and offspring (2 x pop) against each other: an n x n comparison of
# 8-byte values must fit in an eighth of the memory.
MAX_POP = max(4, int(math.sqrt(physical_memory() / 64) / 2))
