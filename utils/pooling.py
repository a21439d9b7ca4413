"""Pooling: one feature per sequence from per-token features (B, T, d) -> (B, d).

Chapter 7's GPT classifier and chapter 8's sentence embeddings average the features of
the real tokens; padding (False or 0 in the mask) is left out.
"""

import torch

from utils.checks import check_attention_mask, check_tensor


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of (B, T, d) features over each sequence's real tokens: (B, d)."""
    check_tensor("hidden", hidden, ("B", "T", "d"), floating=True)
    check_attention_mask(attention_mask, hidden.shape[:2])
    real = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * real).sum(1) / real.sum(1).clamp(min=1)  # (B, d)
