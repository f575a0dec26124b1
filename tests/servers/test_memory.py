"""servers.memory: glibc's malloc is told to return large freed blocks, unless the operator tuned it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from streamit.servers.memory import return_large_blocks

GLIBC = platform.libc_ver()[0] == "glibc"

# A child process, so the test process keeps its own malloc settings.  It frees 10 MiB of 100 KiB blocks
# made with other blocks between them, then prints how much of it stayed resident.
CHURN = """
import sys
from streamit.servers.memory import return_large_blocks

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

taken = return_large_blocks(int(sys.argv[1]))
before = rss_kib()
kept, freed = [], []
for i in range(100):
    freed.append(bytearray(100 * 1024))
    kept.append(bytearray(1000))
del freed
print(taken, rss_kib() - before)
"""


def churn(threshold: int) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, str(threshold)], check=True, capture_output=True, text=True
    )
    taken, grown = done.stdout.split()
    return taken == "True", int(grown)


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds are glibc's")
def test_freed_large_blocks_leave_the_process() -> None:
    taken, grown_kib = churn(64 * 1024)
    assert taken
    assert grown_kib < 2 * 1024  # the 10 MiB freed are not resident any more


def test_zero_or_operator_tuning_leaves_malloc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert return_large_blocks(0) is False
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert return_large_blocks(64 * 1024) is False
