"""Reproducibility and device selection (used in every chapter).

Randomness is passed one way everywhere: a function that draws random numbers takes
``seed``, either an int (a fresh generator, so the same seed gives the same result) or a
``torch.Generator`` to draw from. No function but :func:`set_seed` touches the global
random state.
"""

import os
import random

import numpy as np
import torch

from utils.checks import check_choice, check_int


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch's global generators (for model initialisation)."""
    check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_generator(seed: "int | torch.Generator" = 0) -> torch.Generator:
    """A ``torch.Generator``: `seed` if it is one, else a new one seeded with it."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_int("seed", seed, minimum=0))


def get_device(prefer: str = "auto") -> torch.device:
    """CUDA when present (and asked for), else CPU; `prefer`: 'auto', 'cuda', 'cpu'."""
    check_choice("prefer", prefer, ("auto", "cuda", "cpu"))
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ValueError("prefer='cuda' but no CUDA device is available")
    return torch.device("cpu")


def limit_threads(n: int | None = None) -> int:
    """Use `n` CPU threads (default: $COURSE_THREADS or 2, the course's laptop budget).

    Every chapter calls it first, so its numbers are the same in `make book`,
    `make test` and `make bench` whatever the machine has.
    """
    n = int(os.environ.get("COURSE_THREADS", 2)) if n is None else n
    torch.set_num_threads(check_int("n", n))
    return n
