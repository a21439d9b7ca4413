"""Reproducibility and device selection (used in every chapter).

Randomness is passed one way everywhere: a function that draws random numbers takes
``seed``, either an int (a fresh generator, so the same seed gives the same result) or a
``torch.Generator`` to draw from. No function but :func:`set_seed` touches the global
random state (:func:`seeded` does inside its block, and restores it).

``COURSE_SEED`` (an environment variable, default 0) shifts every training and sampling
seed of the book: :func:`set_seed` and :func:`make_generator` add it, so a run with
``COURSE_SEED=3`` trains other initialisations on other batches. The data splits use
:func:`split_generator`, which ignores it: every run tests on the same held-out data.
"""

import os
import random
from contextlib import contextmanager

import numpy as np
import torch

from utils.checks import check_choice, check_int


def course_seed() -> int:
    """$COURSE_SEED, the shift added to every training and sampling seed (default 0)."""
    value = os.environ.get("COURSE_SEED", "0")
    if not value.isdigit():
        raise ValueError(f"COURSE_SEED must be an int >= 0, got COURSE_SEED={value!r}")
    return int(value)


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch's global generators with `seed` + $COURSE_SEED
    (for model initialisation)."""
    seed = check_int("seed", seed, minimum=0) + course_seed()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_generator(seed: "int | torch.Generator" = 0) -> torch.Generator:
    """A ``torch.Generator``: `seed` if it is one, else a new one seeded with `seed`
    + $COURSE_SEED (for batches, sampling and other training randomness)."""
    if isinstance(seed, torch.Generator):
        return seed
    return split_generator(check_int("seed", seed, minimum=0) + course_seed())


@contextmanager
def seeded(seed: int = 0):
    """A block whose global generators are seeded as by :func:`set_seed`; the caller's
    random state (Python, NumPy and PyTorch) is restored afterwards."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng():
            set_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def split_generator(seed: "int | torch.Generator" = 0) -> torch.Generator:
    """Like :func:`make_generator`, without $COURSE_SEED: for data splits and held-out
    sets, which stay the same in every run."""
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
