"""OpenMP's spin, chosen from how busy the machine is (imported before torch).

PyTorch's OpenMP threads spin for a while after each parallel region before they sleep.
On a quiet machine that is fastest, above all for the many small operations of an RNN's
Python loop. With another busy process on the machine, a spinning thread takes turns
with it and a chapter slows 3x instead of its fair 2x: there a short spin is better
(`make bench` measures both; beside one busy process, chapter 7's step slowed 2.0x
with spins of 0-300 and 2.2x with 1000). OpenMP reads GOMP_SPINCOUNT when torch
loads, so utils chooses it at its first import (every chapter's install cell imports
utils), from what the machine is doing then. The spin changes speed, never a result.
"""

import os
import time


def read_cpu_ticks(path: str = "/proc/stat") -> list[int]:
    """The machine's CPU time so far, from /proc/stat's first line: user, nice, system,
    idle, iowait, ... (in clock ticks, all CPUs together)."""
    with open(path) as stat:
        return [int(v) for v in stat.readline().split()[1:]]


def busy_cpus(before: list[int], after: list[int], cpus: int) -> float:
    """How many of `cpus` CPUs were busy between two readings of read_cpu_ticks()."""
    ticks = [b - a for a, b in zip(before, after)]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return cpus * busy / max(sum(ticks), 1)


def other_busy_cpus(window: float = 0.1, path: str = "/proc/stat") -> float:
    """How many CPUs other processes keep busy, over a short window (Linux; else 0).
    This process sleeps meanwhile, so its own work does not count."""
    try:
        before = read_cpu_ticks(path)
        time.sleep(window)
        after = read_cpu_ticks(path)
    except (OSError, ValueError):
        return 0.0
    return busy_cpus(before, after, os.cpu_count() or 1)


def choose_openmp_spin() -> None:
    """A short spin (GOMP_SPINCOUNT=100) when another process keeps half a CPU or
    more busy; OpenMP's default otherwise, or whatever the environment already says."""
    if "GOMP_SPINCOUNT" not in os.environ and other_busy_cpus() >= 0.5:
        os.environ["GOMP_SPINCOUNT"] = "100"
