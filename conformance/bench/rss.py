"""Resident memory of this process: now, and its peak ("high-water mark").

The peak is VmHWM from /proc/self/status, which belongs to this process's own address space:
``ru_maxrss`` would not do, since Linux carries it across fork and execve, so a child spawned by
a large parent would report the parent's size. ``reset_peak`` (writing 5 to clear_refs, Linux 4.0+)
starts a fresh high-water mark, so a cold start's peak covers only the load and first inference.
"""

from __future__ import annotations

import os
import resource
import sys

MB = 1024 * 1024


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    peak_kb = _status_kb("VmHWM")
    if peak_kb is not None:
        return peak_kb / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / MB if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    rss_kb = _status_kb("VmRSS")
    if rss_kb is not None:
        return rss_kb / 1024
    return peak_rss_mb()  # no /proc: the peak is the best upper bound there is


def reset_peak() -> bool:
    """Start a new high-water mark at the current RSS; False where the OS does not allow it."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
