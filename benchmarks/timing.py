"""Timing helpers for the benchmarks (not for unit tests: speed targets live in `make
bench`).
"""

import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Callable

import torch


def best_of(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Seconds of the fastest of `repeat` runs of `fn()`, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@contextmanager
def busy_process():
    """One other process that keeps a core busy, as on a learner's working laptop."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        yield process
    finally:
        process.kill()
        process.wait()


def forward_backward(
    module: torch.nn.Module, *inputs: torch.Tensor
) -> Callable[[], None]:
    """A closure that runs one forward and backward pass of `module` on `inputs`."""

    def step():
        module.zero_grad(set_to_none=True)
        out = module(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.float().sum().backward()

    return step


def ratio_result(
    name: str, ours_s: float, reference_s: float, limit: float | None = None
) -> dict:
    """A result row: ours/reference, and whether it meets `ratio <= limit` (None: report
    only).
    """
    ratio = ours_s / reference_s
    return {
        "name": name,
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ratio": ratio,
        "target": "report" if limit is None else f"<= {limit}",
        "ok": limit is None or ratio <= limit,
    }


def callback_row(name: str, experiment, repeat: int = 3) -> dict:
    """A widget callback's redraw time against the course's 1 s budget."""
    import matplotlib.pyplot as plt

    seconds = best_of(lambda: plt.close(experiment.figure()), repeat=repeat)
    return {
        "name": name,
        "ours_s": seconds,
        "reference_s": None,
        "ratio": None,
        "target": "<= 1.0 s",
        "ok": seconds <= 1.0,
    }
