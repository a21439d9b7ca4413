"""A toy task on which attention heads specialise, and heads run in a loop (chapter 5).

Each token is a digit; the target at position t is ``(x[t-1] - x[t+1]) mod 10``
(positions wrap around). Every output needs two tokens that play *different* roles, so
one softmax average is a poor fit, and with two heads one head can fetch the left
neighbour and the other the right.
"""

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from utils.attention import MultiHeadAttention, multi_head_loop
from utils.checks import check_divisible, check_ids, check_int
from utils.data import endless_batches
from utils.plot import attention_map
from utils.timing import median_times
from utils.train import accuracy, cross_entropy


@dataclass
class NeighbourTaskConfig:
    vocab_size: int = 10  # digits 0..9
    block_size: int = 8  # T: tokens per sequence
    d_model: int = 32  # width of the embeddings and the attention
    num_heads: int = 2  # heads of the one attention layer
    dim_feedforward: int = 64  # hidden units of the classifier after attention

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "num_heads", "dim_feedforward"):
            check_int(name, getattr(self, name))
        check_int(
            "block_size", self.block_size, minimum=3
        )  # a token and two neighbours
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)


def neighbour_difference_batch(
    config: NeighbourTaskConfig, batch_size: int, generator: torch.Generator
):
    """(tokens, targets), both (B, T): targets[t] = (tokens[t-1] - tokens[t+1]) % V."""
    check_int("batch_size", batch_size)
    x = torch.randint(
        config.vocab_size, (batch_size, config.block_size), generator=generator
    )
    left, right = (
        x.roll(1, dims=1),
        x.roll(-1, dims=1),
    )  # x[t-1], x[t+1] (wrapping around)
    return x, (left - right) % config.vocab_size


def neighbour_batches(config: NeighbourTaskConfig, batch_size: int, seed=0):
    """An endless stream of fresh batches, reproducible from `seed`."""
    return endless_batches(
        partial(neighbour_difference_batch, config), batch_size, seed
    )


class NeighbourModel(nn.Module):
    """Token + position embeddings -> one multi-head self-attention layer -> an MLP.

    The MLP sees only the attention output, so everything it knows about the neighbours
    must have been fetched by the heads. forward(x (B, T), need_weights=False) ->
    logits (B, T, V), weights (B, H, T, T) or None.
    """

    def __init__(self, config: NeighbourTaskConfig):
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.block_size, config.d_model)
        self.attention = MultiHeadAttention(config.d_model, config.num_heads)
        self.classifier = nn.Sequential(
            nn.Linear(config.d_model, config.dim_feedforward),
            nn.ReLU(),
            nn.Linear(config.dim_feedforward, config.vocab_size),
        )

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        check_ids("x", x, self.config.vocab_size)
        if x.shape[1] > self.config.block_size:
            raise ValueError(
                f"sequence length {x.shape[1]} exceeds the model's "
                f"block_size={self.config.block_size}"
            )
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.token(x) + self.position(positions)  # (B, T, d)
        a, weights = self.attention(h, h, h, need_weights=need_weights)  # (B, T, d)
        return self.classifier(a), weights  # (B, T, V), (B, H, T, T) or None


def neighbour_loss(model: NeighbourModel, batch) -> torch.Tensor:
    x, y = batch
    return cross_entropy(model(x)[0], y)


@torch.no_grad()
def neighbour_accuracy(model: NeighbourModel, batch) -> float:
    x, y = batch
    return accuracy(model(x)[0], y)


@torch.no_grad()
def attention_by_offset(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight per head by offset (key - query) mod T: (B, H, T, T) -> (H, T)."""
    B, H, T, _ = weights.shape
    offset = (torch.arange(T)[None, :] - torch.arange(T)[:, None]) % T  # (T_q, T_k)
    by_offset = torch.zeros(H, T)
    by_offset.index_add_(
        1, offset.flatten(), weights.mean(0).flatten(1)
    )  # sum over the pairs
    return by_offset / T  # each query's row sums to 1


def draw_heads(fig, head: int = 0, example: int = 0, *, model: NeighbourModel, tokens):
    """Chapter 5's experiment: one head's map on one example, its profile by offset."""
    H = model.config.num_heads
    if not 0 <= check_int("head", head, 0) < H:
        raise ValueError(f"head must be in [0, {H}), got head={head}")
    if not 0 <= check_int("example", example, 0) < len(tokens):
        raise ValueError(
            f"example must be in [0, {len(tokens)}), got example={example}"
        )
    with torch.no_grad():
        _, weights = model(tokens, need_weights=True)  # (B, H, T, T)
    T = tokens.shape[1]
    labels = [f"{i}:{int(t)}" for i, t in enumerate(tokens[example])]  # position:digit
    axes = fig.subplots(1, 2, width_ratios=[1.1, 1])
    attention_map(
        axes[0],
        weights[example, head],
        queries=labels,
        keys=labels,
        title=f"head {head}, example {example} (position:digit)",
    )
    profile = attention_by_offset(weights)[head]  # (T,)
    offsets = [o if o <= T // 2 else o - T for o in range(T)]  # show -1 as -1, not T-1
    order = sorted(range(T), key=lambda o: offsets[o])
    axes[1].bar([offsets[o] for o in order], profile[order], color="tab:blue")
    axes[1].set(
        title=f"head {head}: mean weight by offset",
        xlabel="key position − query position",
        ylabel="mean weight",
        ylim=(0, 1),
    )
    return axes


def time_variants(B: int, T: int, d_model: int, H: int, repeat: int = 3) -> dict:
    """Chapter 5's speed test: seconds for the forward and backward pass of four
    implementations of the same multi-head attention on one shape, (B, T, d_model)
    with H heads. They run in turns, `repeat` rounds after a warm-up; each gets the
    median of its rounds. Checks first that the four compute the same function."""
    with torch.random.fork_rng():  # the global random state is left as it was
        torch.manual_seed(0)
        reference = nn.MultiheadAttention(d_model, H, batch_first=True)
        x = torch.randn(B, T, d_model, requires_grad=True)  # (B, T, d_model)
    mha = MultiHeadAttention.from_torch(reference)
    variants = {
        "loop over heads": lambda: multi_head_loop(mha, x, x, x),
        "batched heads (ours)": lambda: mha(x, x, x, need_weights=True)[0],
        "fused F.scaled_dot_product_attention": lambda: mha(x, x, x)[0],
        "nn.MultiheadAttention": lambda: reference(x, x, x)[0],
    }
    with torch.no_grad():
        outputs = [forward() for forward in variants.values()]
    for out in outputs[1:]:  # the same function
        if (out - outputs[0]).abs().max() > 1e-5:
            raise AssertionError("the four implementations disagree")

    def step(forward):
        x.grad = None
        forward().sum().backward()

    steps = {name: partial(step, forward) for name, forward in variants.items()}
    return median_times(steps, repeat=repeat)
