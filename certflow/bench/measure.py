"""What the bench reads of a process and a directory, from /proc and the filesystem.

CPU and memory are read from the kernel, not estimated: CPU seconds (user + system)
of a worker process, its resident set now and at its peak (``VmHWM``: the high-water
mark, so a peak between two samples is not missed), and bytes on disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of all of ``pids`` so far (a deployment's workers, a
    broker's nodes)."""
    return sum(cpu_seconds(pid) for pid in pids)


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` now."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    """The most resident memory ``pid`` has had since it started."""
    return _status_mb(pid, "VmHWM")


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (allocated blocks: what the volume holds)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a RocksDB file compacted away meanwhile
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
