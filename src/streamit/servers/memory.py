"""How a server process hands freed memory back to the operating system.

Ingest churns through large buffers: socket reads of ~12 KB, video frames of 10–200 KB, LL-HLS parts and
64 KiB pieces of TS segments, each freed a moment later.  glibc's malloc serves blocks below its mmap
threshold from its heaps and raises that threshold as large blocks are freed (up to 32 MiB on 64-bit), so
after a while every large buffer comes from a heap whose free space is fragmented and rarely trimmed: the
resident size of a process carrying streams grows by megabytes per stream that hold nothing.  A fixed
threshold makes blocks of that size or more separate mappings, unmapped the moment they are freed, and a
matching trim threshold returns freed heap tops; measured with 10 publishers of 3 Mbit/s, resident memory
per stream halves (see docs/benchmarks.md) at no measurable CPU cost.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_ENVIRONMENT_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def return_large_blocks(threshold: int) -> bool:
    """Make glibc's malloc map blocks of ``threshold`` bytes or more on their own and return them when
    freed; heap tops over twice that are trimmed.

    Does nothing (and returns False) when ``threshold`` is 0, when the C library is not glibc, or when the
    operator tuned malloc through its environment variables (theirs wins).  Returns whether both settings
    were taken.
    """
    if threshold <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _ENVIRONMENT_TUNING):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * threshold))
    if not taken:
        log.warning("malloc refused a %d-byte mmap threshold; freed buffers may stay resident", threshold)
    return taken
