"""A toy task on which attention heads specialise (chapter 4).

Each token is a digit; the target at position t is ``(x[t-1] - x[t+1]) mod 10`` (positions wrap
around). Every output needs two tokens that play *different* roles, so one softmax average is a
poor fit, and with two heads one head can fetch the left neighbour and the other the right.

Used in chapter 4.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import MultiHeadAttention


@dataclass
class NeighbourTaskConfig:
    vocab_size: int = 10   # digits 0..9
    length: int = 8        # T: tokens per sequence
    d_model: int = 32
    num_heads: int = 2
    d_hidden: int = 64     # the classifier after attention

    def __post_init__(self):
        for name in ("vocab_size", "length", "d_model", "num_heads", "d_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)}")
        if self.length < 3:
            raise ValueError(f"length must be >= 3 (a token and two distinct neighbours), got length={self.length}")


def neighbour_difference_batch(batch_size: int, config: NeighbourTaskConfig, generator: torch.Generator):
    """(tokens, targets), both (B, T): targets[t] = (tokens[t-1] - tokens[t+1]) mod vocab_size."""
    x = torch.randint(config.vocab_size, (batch_size, config.length), generator=generator)
    left, right = x.roll(1, dims=1), x.roll(-1, dims=1)          # x[t-1], x[t+1] (wrapping around)
    return x, (left - right) % config.vocab_size


def neighbour_batches(batch_size: int, config: NeighbourTaskConfig, seed: int = 0):
    """An endless iterator of fresh batches, reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield neighbour_difference_batch(batch_size, config, generator)


class NeighbourModel(nn.Module):
    """Token + position embeddings -> one multi-head self-attention layer -> an MLP per position.

    The MLP sees only the attention output, so everything it knows about the neighbours must
    have been fetched by the heads. forward(x (B, T)) -> logits (B, T, V), weights (B, H, T, T).
    """

    def __init__(self, config: NeighbourTaskConfig):
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.length, config.d_model)
        self.attention = MultiHeadAttention(config.d_model, config.num_heads)
        self.classifier = nn.Sequential(nn.Linear(config.d_model, config.d_hidden), nn.ReLU(),
                                        nn.Linear(config.d_hidden, config.vocab_size))

    def forward(self, x: torch.Tensor):
        if x.shape[1] > self.position.num_embeddings:
            raise ValueError(f"sequence length {x.shape[1]} exceeds the model's "
                             f"length={self.position.num_embeddings}")
        h = self.token(x) + self.position(torch.arange(x.shape[1], device=x.device))  # (B, T, d)
        a, weights = self.attention(h, h, h)                            # (B, T, d_model), (B, H, T, T)
        return self.classifier(a), weights                              # (B, T, V), (B, H, T, T)


def neighbour_loss(model: NeighbourModel, batch) -> torch.Tensor:
    x, y = batch
    logits, _ = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def neighbour_accuracy(model: NeighbourModel, batch) -> float:
    x, y = batch
    logits, _ = model(x)
    return (logits.argmax(-1) == y).float().mean().item()


@torch.no_grad()
def attention_by_offset(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight per head on the key at offset (key - query) mod T: (B, H, T, T) -> (H, T)."""
    B, H, T, _ = weights.shape
    offset = (torch.arange(T)[None, :] - torch.arange(T)[:, None]) % T   # (T_q, T_k)
    by_offset = torch.zeros(H, T)
    by_offset.index_add_(1, offset.flatten(), weights.mean(0).flatten(1))  # sum over the pairs
    return by_offset / T                                                   # each query's row sums to 1


def draw_heads(fig, head: int = 0, example: int = 0, model: NeighbourModel | None = None, tokens=None):
    """Chapter 4's experiment: one head's attention map on one example, and its profile by offset."""
    from utils.plot import attention_map
    if model is None or tokens is None:
        raise ValueError("draw_heads needs the trained model and a batch of tokens")
    H = model.config.num_heads
    if not 0 <= head < H or not 0 <= example < len(tokens):
        raise ValueError(f"head must be in [0, {H}) and example in [0, {len(tokens)}), got head={head}, example={example}")
    with torch.no_grad():
        _, weights = model(tokens)                                         # (B, H, T, T)
    T = tokens.shape[1]
    labels = [f"{i}:{int(t)}" for i, t in enumerate(tokens[example])]   # position:digit
    axes = fig.subplots(1, 2, width_ratios=[1.1, 1])
    attention_map(axes[0], weights[example, head], queries=labels, keys=labels,
                  title=f"head {head}, example {example} (position:digit)")
    profile = attention_by_offset(weights)[head]                           # (T,)
    offsets = [o if o <= T // 2 else o - T for o in range(T)]              # show -1 as -1, not T-1
    order = sorted(range(T), key=lambda o: offsets[o])
    axes[1].bar([offsets[o] for o in order], profile[order], color="tab:blue")
    axes[1].set(title=f"head {head}: mean weight by offset", xlabel="key position − query position",
                ylabel="mean weight", ylim=(0, 1))
    return axes
