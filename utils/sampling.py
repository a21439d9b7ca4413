"""Sampling the next token from a model's logits: temperature, top-k and top-p.

One function for every generator in the course: the character RNN (chapter 1), GPT
(chapter 7) and iGPT (chapter 9).
"""

import torch

from utils.checks import check_int, check_number, check_positive, check_tensor


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """(B, V) logits -> (B, V) probabilities: softmax(logits / temperature), restricted
    to the ``top_k`` most likely tokens if given, then to the smallest set of most
    likely tokens whose probability reaches ``top_p`` (nucleus sampling) if given.

    The largest logit is subtracted first, so a tiny temperature approaches greedy
    decoding instead of overflowing.
    """
    check_tensor("logits", logits, ("B", "V"), floating=True)
    if logits.isnan().any() or (logits == float("inf")).any():
        raise ValueError("logits must not be NaN or +inf (-inf rules a token out)")
    if (logits == float("-inf")).all(dim=-1).any():
        raise ValueError("logits rule out every token of a row (all -inf)")
    if check_positive("temperature", temperature) == float("inf"):
        raise ValueError("temperature must be finite, got temperature=inf")
    if top_k is not None:
        check_int("top_k", top_k)
    if top_p is not None:
        check_number("top_p", top_p, low=0.0, high=1.0, low_open=True)
    logits = logits - logits.max(dim=-1, keepdim=True).values  # the best token: 0
    logits = logits / temperature  # (B, V), at most 0: no overflow
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    if top_p is not None:
        sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V) each
        likelier = sorted_probs.cumsum(-1) - sorted_probs  # mass of the likelier ones
        keep_sorted = likelier < top_p  # the likeliest tokens, until top_p is reached
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # (B, V)
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)  # the nucleus, renormalised
    return probs


def sample_next(
    logits: torch.Tensor,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """(B, V) logits -> (B, 1) token ids drawn from softmax(logits / temperature).

    The draw uses `generator` (never the global random state).
    ``top_k`` keeps only the k most likely tokens (``top_k=1`` is greedy decoding),
    ``top_p`` the most likely tokens up to that probability; see
    :func:`next_token_probs`.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
    probs = next_token_probs(logits, temperature, top_k, top_p)  # (B, V), checked
    if top_k == 1:
        return logits.argmax(dim=-1, keepdim=True)  # greedy: (B, 1), nothing to draw
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
