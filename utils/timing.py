"""Timing that a busy machine cannot bias (chapters 5-7, 11 and 12 compare speeds).

A laptop is rarely idle: another program can slow one run down by a factor of several.
Timing `a` five times and then `b` five times lets such a disturbance hit only one side.
:func:`interleaved_times` runs the candidates in turns (a, b, a, b, ...), so a
disturbance hits them alike, and a chapter takes the median of each, never one run.
"""

import statistics
import time
from collections.abc import Callable

from utils.checks import check_int


def interleaved_times(
    candidates: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each of `repeat` runs of every candidate, run in turns, after
    `warmup` runs of each: {name: [seconds, ...]}."""
    check_int("repeat", repeat)
    check_int("warmup", warmup, minimum=0)
    if not candidates:
        raise ValueError("candidates must name at least one function to time")
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median_times(
    candidates: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1
) -> dict[str, float]:
    """The median of each candidate's interleaved runs, in seconds."""
    times = interleaved_times(candidates, repeat, warmup)
    return {name: statistics.median(runs) for name, runs in times.items()}
