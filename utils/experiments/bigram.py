"""The baseline a language model must beat: next-token counts (chapter 7)."""

import torch

from utils.checks import check_int, check_number, check_tensor


def bigram_loss(
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    vocab_size: int,
    smoothing: float = 0.01,
) -> float:
    """Validation cross-entropy (nats/token) of next-token counts from `train_ids`.

    p(b | a) = (count(a, b) + smoothing) / (count(a, ·) + smoothing · vocab_size): the
    best a model can do that looks only at the previous token. Both id sequences are
    1-D (one running text each), with ids in [0, vocab_size).
    """
    check_int("vocab_size", vocab_size)
    check_number("smoothing", smoothing, low=0)
    for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
        check_tensor(name, ids, ("N",), dtype=torch.long)
        if len(ids) < 2:
            raise ValueError(
                f"{name} needs at least 2 tokens (one pair), got {len(ids)}"
            )
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(
                f"{name} must be ids in [0, vocab_size={vocab_size}), got "
                f"ids from {ids.min().item()} to {ids.max().item()}"
            )
    pairs = train_ids[:-1] * vocab_size + train_ids[1:]  # one index per pair (a, b)
    counts = torch.bincount(pairs, minlength=vocab_size**2)
    counts = counts.view(vocab_size, vocab_size).double() + smoothing  # (V, V)
    log_p = counts.log() - counts.sum(1, keepdim=True).log()  # (V, V): log p(b | a)
    return -log_p[val_ids[:-1], val_ids[1:]].mean().item()
