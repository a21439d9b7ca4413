"""Chapter 6: the from-scratch Transformer's forward and backward pass against
nn.Transformer.
"""

import warnings

import torch
import torch.nn as nn

from utils.attention import causal_mask
from utils.transformer import Transformer

from .timing import best_of, forward_backward, ratio_result


class _Reference(nn.Module):
    """nn.Transformer with a causal target mask in PyTorch's convention (True = masked
    out).
    """

    def __init__(self, m: nn.Transformer, T: int):
        super().__init__()
        self.m, self.mask = m, ~causal_mask(T)

    def forward(self, src, tgt):
        return self.m(src, tgt, tgt_mask=self.mask)


class _Ours(nn.Module):
    def __init__(self, m: Transformer, T: int):
        super().__init__()
        self.m, self.mask = m, causal_mask(T)

    def forward(self, src, tgt):
        return self.m(src, tgt, tgt_mask=self.mask)


def bench_transformer_forward_backward():
    """B=8, T=128, d=256, H=8, 2+2 layers, dim_feedforward 1024, dropout 0: ours /
    nn.Transformer.
    """
    B, T, d = 8, 128, 256
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = nn.Transformer(d, 8, 2, 2, 1024, dropout=0.0, batch_first=True)
    ours = Transformer.from_torch(reference)
    src, tgt = torch.randn(B, T, d), torch.randn(B, T, d)
    reference_s = best_of(
        forward_backward(_Reference(reference, T), src, tgt), repeat=5
    )
    ours_s = best_of(forward_backward(_Ours(ours, T), src, tgt), repeat=5)
    return [
        ratio_result(
            "ch6 Transformer fwd+bwd (B8 T128 d256 2+2)", ours_s, reference_s, limit=1.5
        )
    ]
