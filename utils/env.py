"""Reproducibility and device selection (used in every chapter)."""

import os
import random

import numpy as np
import torch


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch's global generators."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device(prefer: str = "auto") -> torch.device:
    """CUDA when present (and asked for), else CPU. `prefer` is 'auto', 'cuda' or 'cpu'."""
    if prefer not in ("auto", "cuda", "cpu"):
        raise ValueError(f"prefer must be 'auto', 'cuda' or 'cpu', got prefer={prefer!r}")
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ValueError("prefer='cuda' but no CUDA device is available")
    return torch.device("cpu")


def limit_threads(n: int | None = None) -> int:
    """Use at most `n` CPU threads (default: $COURSE_THREADS or 2, the course's laptop budget)."""
    n = int(os.environ.get("COURSE_THREADS", 2)) if n is None else n
    if n < 1:
        raise ValueError(f"n must be >= 1, got n={n}")
    torch.set_num_threads(n)
    return n
