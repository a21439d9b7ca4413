"""Scaled dot-product attention, its masks, self-attention and multi-head attention.

Used in chapters 3-4, and by the Transformer, GPT, BERT and ViT chapters after them.

Masks are boolean and mean what PyTorch's boolean ``attn_mask`` means: **True = may attend**.
A mask only has to broadcast to the scores, ``(..., T_q, T_k)``; for multi-head attention that
is ``(B, H, T_q, T_k)``, so a causal ``(T_q, T_k)`` mask and a key-padding ``(B, 1, 1, T_k)``
mask can be combined with ``&``.

A query whose row of the mask is all False (it may attend to nothing) gets all-zero weights
and therefore a zero output, not NaN; its gradients are zero too.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean (True = may attend), got dtype={mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} cannot broadcast to the scores "
                         f"of shape {tuple(scores_shape)} (..., T_q, T_k)")


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, dropout_p: float = 0.0):
    """softmax(q kᵀ / √d_k) v, returning ``(output, weights)``.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask: boolean, broadcastable
    to (..., T_q, T_k), True where a query may attend to a key. Returns output (..., T_q, d_v)
    and weights (..., T_q, T_k). `dropout_p` drops weights (as PyTorch does) in training.
    """
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v need at least 2 dimensions (T, d), got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same feature size d_k, got q.shape[-1]={q.shape[-1]} "
                         f"and k.shape[-1]={k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys T_k, got k.shape[-2]={k.shape[-2]} "
                         f"and v.shape[-2]={v.shape[-2]}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got dropout_p={dropout_p}")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)           # (..., T_q, T_k)
    if mask is not None:
        _check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))       # forbidden keys: exp(-inf) = 0
    weights = torch.softmax(scores, dim=-1)                      # (..., T_q, T_k), rows sum to 1
    if mask is not None:                                         # a row with no allowed key is NaN:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # make it zero
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights                                  # (..., T_q, d_v), (..., T_q, T_k)


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) boolean mask, True on and below the diagonal: position i may attend to j <= i."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got T={T!r}")
    return torch.ones(T, T, dtype=torch.bool).tril()


def padding_mask(lengths, T: int) -> torch.Tensor:
    """(B, 1, 1, T) boolean mask, True for the first `lengths[b]` keys of sequence b.

    It broadcasts to multi-head scores (B, H, T_q, T_k); use ``mask[:, 0]`` for (B, T_q, T_k).
    """
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.is_floating_point():
        raise ValueError(f"lengths must be a 1-D sequence of ints, got shape {tuple(lengths.shape)} "
                         f"and dtype {lengths.dtype}")
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got T={T!r}")
    if len(lengths) and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths must be between 0 and T={T}, got lengths={lengths.tolist()}")
    keep = torch.arange(T, device=lengths.device) < lengths[:, None]  # (B, T)
    return keep[:, None, None, :]                               # (B, 1, 1, T)


class SelfAttention(nn.Module):
    """One head of self-attention with learnable projections W_q, W_k, W_v (chapter 3).

    x: (B, T, d_model) -> output (B, T, d_k), weights (B, T, T).
    """

    def __init__(self, d_model: int, d_k: int | None = None, bias: bool = False):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        if d_model < 1 or d_k < 1:
            raise ValueError(f"d_model and d_k must be >= 1, got d_model={d_model}, d_k={d_k}")
        self.w_q = nn.Linear(d_model, d_k, bias=bias)
        self.w_k = nn.Linear(d_model, d_k, bias=bias)
        self.w_v = nn.Linear(d_model, d_k, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)         # (B, T, d_k) each
        return scaled_dot_product_attention(q, k, v, mask)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H·d_k) -> (B, H, T, d_k): each head gets its own slice of the features."""
    B, T, D = x.shape
    if D % num_heads:
        raise ValueError(f"feature size {D} is not divisible by num_heads={num_heads}")
    return x.view(B, T, num_heads, D // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_k) -> (B, T, H·d_k): the heads' outputs side by side."""
    B, H, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d_k)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate W_q, W_k, W_v and W_o (chapter 4).

    forward(query (B, T_q, d_model), key (B, T_k, d_model), value (B, T_k, d_model), mask)
    returns output (B, T_q, d_model) and per-head weights (B, H, T_q, T_k). The mask is
    boolean, True = may attend, broadcastable to (B, H, T_q, T_k). Self-attention is
    ``mha(x, x, x)``; cross-attention is ``mha(x, memory, memory)``.
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if d_model < 1 or num_heads < 1:
            raise ValueError(f"d_model and num_heads must be >= 1, got d_model={d_model}, num_heads={num_heads}")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        self.d_model, self.num_heads, self.d_k, self.dropout = d_model, num_heads, d_model // num_heads, dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None):
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.ndim != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must be (B, T, d_model={self.d_model}), got shape {tuple(x.shape)}")
        H = self.num_heads
        q = split_heads(self.w_q(query), H)                      # (B, H, T_q, d_k)
        k = split_heads(self.w_k(key), H)                        # (B, H, T_k, d_k)
        v = split_heads(self.w_v(value), H)                      # (B, H, T_k, d_k)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)  # (B, H, T_q, d_k)
        return self.w_o(merge_heads(out)), weights               # (B, T_q, d_model), (B, H, T_q, T_k)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> "MultiHeadAttention":
        """An equivalent module with the weights of ``nn.MultiheadAttention(..., batch_first=True)``."""
        if not isinstance(m, nn.MultiheadAttention):
            raise ValueError(f"from_torch needs an nn.MultiheadAttention, got {type(m).__name__}")
        if not m.batch_first:
            raise ValueError("from_torch needs nn.MultiheadAttention(..., batch_first=True), got batch_first=False")
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("from_torch supports kdim == vdim == embed_dim, add_bias_kv=False and add_zero_attn=False")
        bias = m.in_proj_bias is not None
        ours = cls(m.embed_dim, m.num_heads, bias=bias, dropout=m.dropout)
        ours = ours.to(device=m.in_proj_weight.device, dtype=m.in_proj_weight.dtype)
        with torch.no_grad():
            for i, proj in enumerate((ours.w_q, ours.w_k, ours.w_v)):   # in_proj = [W_q; W_k; W_v]
                proj.weight.copy_(m.in_proj_weight.chunk(3)[i])
                if bias:
                    proj.bias.copy_(m.in_proj_bias.chunk(3)[i])
            ours.w_o.weight.copy_(m.out_proj.weight)
            if bias:
                ours.w_o.bias.copy_(m.out_proj.bias)
        return ours


# --- Two other ways to compute the same thing, for chapter 4's speed comparison ---

def multi_head_loop(mha: MultiHeadAttention, query, key, value, mask=None) -> torch.Tensor:
    """`mha`'s output computed one head at a time with a Python loop (slow, for comparison)."""
    d_k, outputs = mha.d_k, []
    q, k, v = mha.w_q(query), mha.w_k(key), mha.w_v(value)       # (B, T, d_model) each
    if mask is not None:                                          # one (B, T_q, T_k) mask per head
        mask = torch.broadcast_to(mask, (q.shape[0], mha.num_heads, q.shape[1], k.shape[1]))
    for h in range(mha.num_heads):
        part = slice(h * d_k, (h + 1) * d_k)                      # head h's features
        head_mask = None if mask is None else mask[:, h]
        out, _ = scaled_dot_product_attention(q[..., part], k[..., part], v[..., part], head_mask)
        outputs.append(out)                                       # (B, T_q, d_k)
    return mha.w_o(torch.cat(outputs, dim=-1))                    # (B, T_q, d_model)


def multi_head_fused(mha: MultiHeadAttention, query, key, value, mask=None) -> torch.Tensor:
    """`mha`'s output with PyTorch's fused ``F.scaled_dot_product_attention`` (no weights).

    For the speed comparison only: it ignores `mha.dropout`, and `mask` must leave every query at
    least one key (PyTorch's boolean-mask handling of fully masked rows differs across versions).
    """
    H = mha.num_heads
    q, k, v = (split_heads(proj(x), H) for proj, x in ((mha.w_q, query), (mha.w_k, key), (mha.w_v, value)))
    return mha.w_o(merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))


class AdditiveScore(nn.Module):
    """Bahdanau's additive score, wᵀ tanh(W_q q + W_k k), for every query-key pair (chapter 3).

    q: (..., T_q, d_q), k: (..., T_k, d_k) -> scores (..., T_q, T_k).
    """

    def __init__(self, d_q: int, d_k: int, d_hidden: int):
        super().__init__()
        self.w_q = nn.Linear(d_q, d_hidden, bias=False)
        self.w_k = nn.Linear(d_k, d_hidden, bias=False)
        self.w = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.w_q(q).unsqueeze(-2) + self.w_k(k).unsqueeze(-3))  # (..., T_q, T_k, d_hidden)
        return self.w(hidden).squeeze(-1)                                          # (..., T_q, T_k)


# --- Chapter 3's experiment: why divide by √d_k? One callback for the widget and the sweep ---

D_K_VALUES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def softmax_statistics(d_k: int, scaled: bool, n_keys: int = 32, n_queries: int = 256, seed: int = 0) -> dict:
    """Attention over `n_keys` random keys, q and k ~ N(0, I_{d_k}): how peaked is the softmax?

    Returns the standard deviation of the scores, the mean entropy of the weights (in nats; a
    uniform row has log n_keys), the mean largest weight, and the mean norm of the gradient
    that reaches the scores from a random upstream gradient (median over queries; it vanishes
    when the softmax saturates).
    """
    if not isinstance(d_k, int) or d_k < 1:
        raise ValueError(f"d_k must be a positive int, got d_k={d_k!r}")
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n_queries, 1, d_k, generator=g)
    k = torch.randn(n_queries, n_keys, d_k, generator=g)
    upstream = torch.randn(n_queries, n_keys, generator=g)            # ∂loss/∂weights
    scores = (q @ k.transpose(-2, -1)).squeeze(1)                     # (N, n_keys), variance d_k
    if scaled:
        scores = scores / math.sqrt(d_k)                              # variance 1
    scores.requires_grad_(True)
    weights = torch.softmax(scores, dim=-1)
    (weights * upstream).sum().backward()
    return {"score_std": scores.std().item(),
            "entropy": torch.special.entr(weights).sum(-1).mean().item(),
            "max_weight": weights.max(-1).values.mean().item(),
            "grad_norm": scores.grad.norm(dim=-1).median().item(),
            "example": weights[0].detach()}


_statistics_cache: dict = {}


def cached_softmax_statistics(d_k: int, scaled: bool) -> dict:
    """`softmax_statistics` with its defaults, computed once per setting (the widget redraws often)."""
    if (d_k, scaled) not in _statistics_cache:
        _statistics_cache[d_k, scaled] = softmax_statistics(d_k, scaled)
    return _statistics_cache[d_k, scaled]


def draw_scaling(fig, d_k: int | None = 64, panels=("example", "entropy", "gradient")):
    """Chapter 3's experiment: one query's weights, then entropy and gradient vs d_k.

    `panels` picks which of the three to draw (left to right); the entropy and gradient
    curves do not depend on `d_k`, which is only marked on them (dashed; None: no mark).
    """
    unknown = set(panels) - {"example", "entropy", "gradient"}
    if not panels or unknown:
        raise ValueError(f"panels must be a non-empty subset of example, entropy, gradient; got {panels!r}")
    if "example" in panels and d_k is None:
        raise ValueError("the 'example' panel needs a d_k")
    curves = {s: [cached_softmax_statistics(d, s) for d in D_K_VALUES] for s in (False, True)}
    style = {False: ("unscaled  q·k", "tab:red"), True: ("scaled  q·k/√d_k", "tab:blue")}
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    ax = dict(zip(panels, axes))
    n_keys = len(curves[False][0]["example"])
    for scaled, (label, colour) in style.items():
        if "example" in ax:
            example = cached_softmax_statistics(d_k, scaled)["example"].sort(descending=True).values
            ax["example"].plot(range(1, n_keys + 1), example, marker="o", ms=3, color=colour, label=label)
        for name, key in (("entropy", "entropy"), ("gradient", "grad_norm")):
            if name in ax:
                ax[name].plot(D_K_VALUES, [c[key] for c in curves[scaled]], marker="o", ms=3,
                              color=colour, label=label)
    if "example" in ax:
        ax["example"].set(title="one query, sorted", xlabel="key (rank)", ylabel="weight",
                          ylim=(0, 1.02))
        ax["example"].legend(frameon=False, fontsize=8)
    if "entropy" in ax:
        ax["entropy"].axhline(math.log(n_keys), color="gray", ls=":", lw=1)
        ax["entropy"].set(title="entropy (nats)", xlabel="d_k", ylim=(0, 1.05 * math.log(n_keys)))
    if "gradient" in ax:
        ax["gradient"].set(title="gradient to the scores", xlabel="d_k", yscale="log")
    for name in ("entropy", "gradient"):
        if name in ax:
            ax[name].set_xscale("log", base=2)
            ax[name].set_xlim(D_K_VALUES[0] / 1.5, D_K_VALUES[-1] * 1.5)   # the d_k marker stays visible
            ax[name].set_xticks([1, 8, 64, 512], labels=["1", "8", "64", "512"])
            if d_k is not None:
                ax[name].axvline(d_k, color="black", lw=1, ls="--")
    if "example" not in ax:
        axes[0].legend(frameon=False, fontsize=8)
    return axes
