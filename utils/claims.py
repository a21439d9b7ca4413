"""Claims: the book's statements about experimental outcomes, checked where made.

A chapter says "the LSTM recalls across longer lags than the RNN" beside the numbers
that show it. :func:`claim` checks such a statement on the numbers of this run: it
records the claim and its numbers, and fails with a message that names the claim and
shows them. Exact facts (a parameter count, equality with a reference to 1e-5) stay
plain asserts: they hold on every machine and for every seed.

An outcome that is not the same on every machine and seed is not claimed: its verdict
is computed with :func:`verdict` and glued into the text, which reads right either way.

``make robust`` runs the chapters under several seeds and kernel paths with
``COURSE_CLAIMS=record`` (record a claim that fails instead of stopping) and
``COURSE_CLAIMS_LOG`` (a file that each claim is appended to, one JSON line each).
"""

import json
import math
import os
from collections.abc import Sequence

import torch

RECORDED: list[dict] = []  # every claim of this process, in order


class ClaimFailed(AssertionError):
    """A claim of the text does not hold for the numbers of this run."""


def _plain(value):
    """`value` as JSON: tensors and NumPy values become numbers or lists of them."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, (int, str, bool, type(None))) else str(value)


def claim(name: str, holds, /, **numbers) -> None:
    """Check the text's claim `name` on this run's `numbers`; `holds` says if it does.

    Records the claim (see the module's docstring) and raises :class:`ClaimFailed`,
    naming the claim and its numbers, when it does not hold, unless
    ``COURSE_CLAIMS=record``. Returns nothing, so that a chapter's cell that ends with
    a claim prints nothing.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got name={name!r}")
    holds = bool(holds)
    record = {"claim": name, "holds": holds, "numbers": _plain(numbers)}
    RECORDED.append(record)
    log = os.environ.get("COURSE_CLAIMS_LOG")
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(record) + "\n")
    mode = os.environ.get("COURSE_CLAIMS", "check")
    if mode not in ("check", "record"):
        raise ValueError(f"COURSE_CLAIMS must be 'check' or 'record', got {mode!r}")
    if not holds and mode == "check":
        shown = ", ".join(f"{k}={v}" for k, v in record["numbers"].items())
        raise ClaimFailed(f"claim {name!r} does not hold: {shown}")


def _values(name: str, x) -> list[float]:
    values = torch.as_tensor(x, dtype=torch.float64).flatten().tolist()
    if not values:
        raise ValueError(f"{name} must hold at least one number")
    return values


def verdict(
    a: "float | Sequence[float]",
    b: "float | Sequence[float]",
    above: str,
    below: str,
    within: str,
    margin: float = 0.0,
) -> str:
    """Words for how the runs `a` compare with the runs `b` (seeds or repeats).

    `above` when every value of `a` exceeds every value of `b` by more than `margin`,
    `below` when every value of `a` is below every value of `b` by more than it, else
    `within` (the ranges overlap: the gap is inside the noise).
    """
    a, b = _values("a", a), _values("b", b)
    if min(a) > max(b) + margin:
        return above
    if max(a) < min(b) - margin:
        return below
    return within
