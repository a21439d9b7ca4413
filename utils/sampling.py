"""Sampling the next token from a model's logits: temperature and top-k.

One function for every generator in the course: the character RNN (chapter 1), GPT
(chapter 7) and iGPT (chapter 9).
"""

import torch

from utils.checks import check_int, check_positive, check_tensor


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """(B, V) logits -> (B, V) probabilities: softmax(logits / temperature), restricted
    to the ``top_k`` most likely tokens if given.

    The largest logit is subtracted first, so a tiny temperature approaches greedy
    decoding instead of overflowing.
    """
    check_tensor("logits", logits, ("B", "V"), floating=True)
    check_positive("temperature", temperature)
    if top_k is not None:
        check_int("top_k", top_k)
    logits = logits - logits.max(dim=-1, keepdim=True).values  # the best token: 0
    logits = logits / temperature  # (B, V), at most 0: no overflow
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)  # (B, V)


def sample_next(
    logits: torch.Tensor,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> torch.Tensor:
    """(B, V) logits -> (B, 1) token ids drawn from softmax(logits / temperature).

    The draw uses `generator` (never the global random state).
    ``top_k`` keeps only the k most likely tokens (``top_k=1`` is greedy decoding); see
    :func:`next_token_probs`.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
    probs = next_token_probs(logits, temperature, top_k)  # (B, V), checks the rest
    if top_k == 1:
        return logits.argmax(dim=-1, keepdim=True)  # greedy: (B, 1), nothing to draw
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
