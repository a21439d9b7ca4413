"""Argument checks shared by every module: bad input fails early, with a clear message.

Each check raises ``ValueError`` naming the argument, what was expected and what it got,
e.g. ``d_model=10 is not divisible by num_heads=3``. Configs call them in
``__post_init__``; functions call them on their first line.
"""

from collections.abc import Sequence

import torch


def check_int(name: str, value, minimum: int = 1) -> int:
    """An int (not a bool or a float) that is at least `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {name}={value!r}")
    return value


def check_number(name: str, value, low=None, high=None, low_open=False) -> float:
    """A real number (not a bool) in [low, high] (or (low, high] when `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {name}={value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high) or value != value:
        lower = "-inf" if low is None else low
        upper = "inf" if high is None else high
        bounds = f"{'(' if low_open else '['}{lower}, {upper}]"
        raise ValueError(f"{name} must be in {bounds}, got {name}={value!r}")
    return float(value)


def check_positive(name: str, value) -> float:
    """A number > 0."""
    return check_number(name, value, low=0, low_open=True)


def check_probability(name: str, value) -> float:
    """A dropout-like probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {name}={value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {name}={value!r}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """A real bool: ``"False"`` or ``0`` are refused, not read as truthy or falsy."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")
    return value


def check_choice(name: str, value, choices: Sequence):
    """One of `choices`."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {name}={value!r}")
    return value


def check_divisible(name: str, value: int, by_name: str, by: int) -> None:
    """`value` is a multiple of `by`, e.g. d_model of num_heads."""
    if value % by:
        raise ValueError(f"{name}={value} is not divisible by {by_name}={by}")


def check_tensor(
    name: str, x, shape: Sequence | None = None, dtype=None, floating: bool = False
) -> torch.Tensor:
    """A tensor of the given shape and dtype.

    `shape` lists the sizes, with ``None`` for any size and a string for a named size
    that is only shown in the message, e.g. ``("B", "T", 64)``. ``floating=True`` asks
    for a floating-point dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        fits = x.ndim == len(shape) and all(
            not isinstance(s, int) or s == n for s, n in zip(shape, x.shape)
        )
        if not fits:
            want = ", ".join("*" if s is None else str(s) for s in shape)
            raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """A tensor without NaN or infinite values (they would give a silent result)."""
    if torch.isfinite(x.detach().sum()):  # one pass: a NaN or an infinity reaches it
        return x
    bad = ~torch.isfinite(x)  # or the finite values' sum overflowed: look at each
    if bad.any():
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} NaN or infinite values"
        )
    return x


def check_ids(name: str, ids, vocab_size: int) -> torch.Tensor:
    """A (B, T) long tensor of token ids in [0, vocab_size)."""
    check_tensor(name, ids, ("B", "T"), dtype=torch.long)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{name} must be token ids in [0, vocab_size={vocab_size}), "
            f"got ids from {ids.min().item()} to {ids.max().item()}"
        )
    return ids


def check_same_batch(**tensors: torch.Tensor) -> None:
    """Tensors that must share their batch size (dim 0), dtype and device."""
    (first, a), *rest = tensors.items()
    for name, b in rest:
        if b.shape[0] != a.shape[0]:
            raise ValueError(
                f"{first} and {name} must have the same batch size, "
                f"got {a.shape[0]} and {b.shape[0]} (no broadcasting)"
            )
        if b.dtype != a.dtype or b.device != a.device:
            raise ValueError(
                f"{first} and {name} must share dtype and device, got "
                f"{a.dtype} on {a.device} and {b.dtype} on {b.device}"
            )


def check_special_ids(config, names=("pad_id", "bos_id", "eos_id")) -> None:
    """Each special token id of `config` is an id of its target vocabulary."""
    for name in names:
        if not 0 <= check_int(name, getattr(config, name), 0) < config.tgt_vocab_size:
            raise ValueError(
                f"{name} must be a target id below "
                f"tgt_vocab_size={config.tgt_vocab_size}"
            )


def check_attention_mask(attention_mask, shape: tuple) -> None:
    """A (B, T) padding mask: bool, or ints that are all 0 or 1; True/1 = real token."""
    check_tensor("attention_mask", attention_mask, shape)
    if attention_mask.is_floating_point() or attention_mask.is_complex():
        got = f"dtype {attention_mask.dtype}"
    elif not set(attention_mask.unique().tolist()) <= {0, 1}:  # True == 1
        got = f"values {attention_mask.unique()[:5].tolist()}"
    else:
        return
    raise ValueError(
        "attention_mask must be bool or ints 0/1, True/1 = a real token (the "
        "course's and Hugging Face's convention; floats are refused, an additive "
        f"mask is another convention), got {got}"
    )
