"""Scaled dot-product attention, its masks, self-attention and multi-head attention.

Used in chapters 4-5, and by the Transformer, GPT, BERT and ViT chapters after them.

Masks are boolean, and **True = may attend** (PyTorch's boolean ``attn_mask`` means the
same; ``nn.MultiheadAttention``'s and ``nn.Transformer``'s boolean masks mean the
opposite, so pass ``~m`` for one of theirs). Float masks are refused: PyTorch would add
them to the scores. A mask only has to broadcast to the scores ``(..., T_q, T_k)``; for
multi-head attention that is ``(B, H, T_q, T_k)``, so a causal ``(T_q, T_k)`` mask and a
padding mask ``(B, 1, 1, T_k)`` combine with ``&``.

A query whose row of the mask is all False (it may attend to nothing) gets all-zero
weights and therefore a zero output, not NaN; its gradients are zero too.

Attention modules return ``(output, weights)``. The weights are computed only when asked
for with ``need_weights=True``; otherwise ``weights`` is None and :func:`attend` takes
PyTorch's fused kernel. To see the weights of the layers inside a bigger model, use
:func:`record_attention`.
"""

import math
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks import (
    check_bool,
    check_divisible,
    check_finite,
    check_int,
    check_probability,
    check_tensor,
)
from utils.convert import build_like


def check_mask(mask, scores_shape: tuple) -> None:
    """A boolean mask (True = may attend) that broadcasts to (..., T_q, T_k)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(
            f"mask must be a boolean tensor, True = may attend (the course's "
            f"convention; a float mask would be added to the scores), got {got}"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != tuple(scores_shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} cannot broadcast to the scores "
            f"of shape {tuple(scores_shape)} (..., T_q, T_k)"
        )


def _check_qkv(q, k, v) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x, floating=True)
        if x.ndim < 2:
            raise ValueError(
                f"{name} needs at least 2 dimensions (T, d), got shape {tuple(x.shape)}"
            )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d_k, got "
            f"q.shape[-1]={q.shape[-1]} and k.shape[-1]={k.shape[-1]}"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k and v must have the same leading shape (..., T_k), got "
            f"{tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(
            f"q and k must have the same batch dimensions, got "
            f"{tuple(q.shape)} and {tuple(k.shape)} (no broadcasting)"
        )
    if not q.dtype == k.dtype == v.dtype or not q.device == k.device == v.device:
        raise ValueError(
            "q, k and v must share dtype and device, got "
            f"{[(x.dtype, str(x.device)) for x in (q, k, v)]}"
        )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
):
    """softmax(q kᵀ / √d_k) v, returning ``(output, weights)``.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask: boolean,
    broadcastable to (..., T_q, T_k), True where a query may attend to a key.
    Returns output (..., T_q, d_v) and weights (..., T_q, T_k). `dropout_p` drops
    weights (as PyTorch does) in training.
    """
    _check_qkv(q, k, v)
    check_probability("dropout_p", dropout_p)
    q = q / math.sqrt(q.shape[-1])  # scale q, not the larger scores: the same product
    scores = q @ k.transpose(-2, -1)  # (..., T_q, T_k)
    if mask is not None:
        check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k), rows sum to 1
    if mask is not None:  # a row with no allowed key is NaN: make it zero
        empty = ~mask.any(dim=-1, keepdim=True)  # (..., T_q, 1)
        if empty.any():  # rare (never with a causal mask): no copy otherwise
            weights = weights.masked_fill(empty, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) boolean mask, True on and below the diagonal: i may attend to j <= i."""
    check_int("T", T)
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, T: int) -> torch.Tensor:
    """(B, T) boolean mask, True for the first ``lengths[b]`` positions of sequence b.

    True = a real token, as a key-padding mask. For attention scores (B, H, T_q, T_k)
    use ``padding_mask(lengths, T)[:, None, None, :]``.
    """
    check_int("T", T)
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D sequence of ints, got shape "
            f"{tuple(lengths.shape)} and dtype {lengths.dtype}"
        )
    if len(lengths) and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(
            f"lengths must be between 0 and T={T}, got lengths={lengths.tolist()}"
        )
    return torch.arange(T, device=lengths.device) < lengths[:, None]  # (B, T)


SHORT_KEYS = 64  # up to this many keys, attend() on the CPU takes the explicit path
# (but for causal attention in training)


def attend(
    q,
    k,
    v,
    mask=None,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
):
    """Attention as the models run it: ``(output, weights or None)``.

    With ``need_weights=True`` it is :func:`scaled_dot_product_attention`, the explicit
    form, and so it is on the CPU for at most ``SHORT_KEYS`` keys, where that is faster
    (except causal attention in training).
    Otherwise it calls PyTorch's ``F.scaled_dot_product_attention``, whose fused kernel
    (on the CPU: without dropout) never stores the (T_q, T_k) weights.
    ``causal=True`` adds a causal mask (and uses the kernel's ``is_causal``). Both paths
    follow the course's mask convention.
    """
    _check_qkv(q, k, v)
    check_probability("dropout_p", dropout_p)
    check_bool("need_weights", need_weights)
    if mask is not None:
        check_mask(mask, (*q.shape[:-1], k.shape[-2]))
    # On the CPU, for short sequences, the explicit product is faster than the fused
    # kernel (1.4x in chapter 10's ViT training step, 17 tokens). Causal attention in
    # training is the exception: the kernel skips the masked half, and chapter 7's GPT
    # trains at least as fast with it (make bench's GPT and ViT rows).
    short = q.device.type == "cpu" and k.shape[-2] <= SHORT_KEYS
    causal_training = check_bool("causal", causal) and torch.is_grad_enabled()
    explicit = need_weights or (short and not causal_training)
    if causal:
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                "causal=True needs T_q == T_k; pass an explicit mask instead"
            )
        if mask is not None or explicit:
            full = causal_mask(q.shape[-2], device=q.device)
            mask, causal = full if mask is None else mask & full, False
    if explicit:
        out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        return out, weights if need_weights else None
    check_finite("q", q)  # the fused kernel gives a NaN query zeros, silently
    if mask is None:
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=causal
        )
        return out, None
    blocked = ~mask.any(dim=-1, keepdim=True)  # queries that may attend to nothing
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask | blocked, dropout_p=dropout_p
    )
    return out.masked_fill(blocked, 0.0), None  # their output is zero, as explicitly


class SelfAttention(nn.Module):
    """One head of self-attention with learnable projections W_q, W_k, W_v (chapter 4).

    x: (B, T, d_model) -> output (B, T, d_k), weights (B, T, T) (explicit, always).
    """

    def __init__(self, d_model: int, d_k: int | None = None, bias: bool = False):
        super().__init__()
        check_int("d_model", d_model)
        d_k = d_model if d_k is None else check_int("d_k", d_k)
        check_bool("bias", bias)
        self.d_model = d_model
        self.w_q = nn.Linear(d_model, d_k, bias=bias)
        self.w_k = nn.Linear(d_model, d_k, bias=bias)
        self.w_v = nn.Linear(d_model, d_k, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        check_tensor("x", x, ("B", "T", self.d_model), floating=True)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, T, d_k) each
        return scaled_dot_product_attention(q, k, v, mask)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H·d_k) -> (B, H, T, d_k): each head gets its own slice of the features."""
    check_tensor("x", x, ("B", "T", "H·d_k"))
    B, T, D = x.shape
    check_divisible("feature size", D, "num_heads", check_int("num_heads", num_heads))
    return x.view(B, T, num_heads, D // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_k) -> (B, T, H·d_k): the heads' outputs side by side."""
    check_tensor("x", x, ("B", "H", "T", "d_k"))
    B, H, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d_k)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate W_q, W_k, W_v and W_o (chapter 5).

    forward(query (B, T_q, d_model), key (B, T_k, d_model), value (B, T_k, d_model),
    mask, need_weights=False) returns output (B, T_q, d_model) and per-head weights
    (B, H, T_q, T_k) or None. The mask is boolean, True = may attend, broadcastable to
    (B, H, T_q, T_k); ``causal=True`` adds a causal mask. Self-attention is
    ``mha(x, x, x)``; cross-attention is ``mha(x, memory, memory)``.
    """

    returns_weights = True  # found by record_attention

    def __init__(
        self, d_model: int, num_heads: int, bias: bool = True, dropout: float = 0.0
    ):
        super().__init__()
        check_int("d_model", d_model)
        check_int("num_heads", num_heads)
        check_divisible("d_model", d_model, "num_heads", num_heads)
        check_bool("bias", bias)
        self.d_model, self.num_heads = d_model, num_heads
        self.d_k, self.dropout = (
            d_model // num_heads,
            check_probability("dropout", dropout),
        )
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ):
        for name, x in (("query", query), ("key", key), ("value", value)):
            check_tensor(name, x, ("B", "T", self.d_model), floating=True)
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(
                f"query, key and value must have the same batch size, got "
                f"{query.shape[0]}, {key.shape[0]} and {value.shape[0]}"
            )
        H = self.num_heads
        q = split_heads(self.w_q(query), H)  # (B, H, T_q, d_k)
        k = split_heads(self.w_k(key), H)  # (B, H, T_k, d_k)
        v = split_heads(self.w_v(value), H)  # (B, H, T_k, d_k)
        p = self.dropout if self.training else 0.0
        out, weights = attend(
            q, k, v, mask, causal, p, need_weights
        )  # (B, H, T_q, d_k)
        return self.w_o(
            merge_heads(out)
        ), weights  # (B, T_q, d_model), (B, H, T_q, T_k)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Ours, with the weights of ``nn.MultiheadAttention(batch_first=True)``."""
        if not isinstance(m, nn.MultiheadAttention):
            raise ValueError(
                f"from_torch needs an nn.MultiheadAttention, got {type(m).__name__}"
            )
        if not m.batch_first:
            raise ValueError(
                "from_torch needs nn.MultiheadAttention(..., "
                "batch_first=True), got batch_first=False"
            )
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError(
                "from_torch supports kdim == vdim == embed_dim, "
                "add_bias_kv=False and add_zero_attn=False"
            )
        bias = m.in_proj_bias is not None
        ours = build_like(  # its dtype, device and mode; the global RNG untouched
            lambda: cls(m.embed_dim, m.num_heads, bias=bias, dropout=m.dropout),
            m.in_proj_weight,
            m.training,
        )
        with torch.no_grad():
            for i, proj in enumerate((ours.w_q, ours.w_k, ours.w_v)):  # [W_q; W_k; W_v]
                proj.weight.copy_(m.in_proj_weight.chunk(3)[i])
                if bias:
                    proj.bias.copy_(m.in_proj_bias.chunk(3)[i])
            ours.w_o.weight.copy_(m.out_proj.weight)
            if bias:
                ours.w_o.bias.copy_(m.out_proj.bias)
        return ours


class AdditiveScore(nn.Module):
    """Bahdanau's additive score, wᵀ tanh(W_q q + W_k k), for every query-key pair.

    q: (..., T_q, d_q), k: (..., T_k, d_k) -> scores (..., T_q, T_k). Used in chapters 3
    and 4.
    """

    def __init__(self, d_q: int, d_k: int, d_attention: int):
        super().__init__()
        for name, size in (("d_q", d_q), ("d_k", d_k), ("d_attention", d_attention)):
            check_int(name, size)
        self.w_q = nn.Linear(d_q, d_attention, bias=False)
        self.w_k = nn.Linear(d_k, d_attention, bias=False)
        self.w = nn.Linear(d_attention, 1, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        check_tensor("q", q, floating=True)
        check_tensor("k", k, floating=True)
        if (
            q.ndim < 2
            or q.shape[:-2] != k.shape[:-2]
            or q.shape[-1] != self.w_q.in_features
            or k.shape[-1] != self.w_k.in_features
        ):
            raise ValueError(
                f"q must be (..., T_q, {self.w_q.in_features}) and k "
                f"(..., T_k, {self.w_k.in_features}) with the same leading "
                f"dimensions, got {tuple(q.shape)} and {tuple(k.shape)}"
            )
        # (..., T_q, T_k, d_attention): every query's projection plus every key's
        hidden = torch.tanh(self.w_q(q).unsqueeze(-2) + self.w_k(k).unsqueeze(-3))
        return self.w(hidden).squeeze(-1)  # (..., T_q, T_k)


@contextmanager
def record_attention(model: nn.Module):
    """Record the weights of every attention layer inside `model` while in the block.

    ``with record_attention(model) as maps: model(x)`` fills the dict `maps` with each
    layer's name and its weights (B, H, T_q, T_k), in call order (a layer called twice
    keeps its last call). Inside the block every layer takes the explicit path.
    """
    maps, handles = {}, []

    def ask(module, args, kwargs):
        return args, {**kwargs, "need_weights": True}

    def keep(name):
        def hook(module, args, output):
            maps[name] = output[1].detach()

        return hook

    for name, module in model.named_modules():
        if getattr(module, "returns_weights", False):
            handles.append(module.register_forward_pre_hook(ask, with_kwargs=True))
            handles.append(
                module.register_forward_hook(keep(name or type(module).__name__))
            )
    if not handles:
        raise ValueError(f"{type(model).__name__} has no attention layers to record")
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


# --- The same multi-head attention, one head at a time (chapter 5's speed test) ---


def multi_head_loop(mha: MultiHeadAttention, query, key, value, mask=None):
    """`mha`'s output, one head at a time in a Python loop (for comparison)."""
    d_k, outputs = mha.d_k, []
    q, k, v = mha.w_q(query), mha.w_k(key), mha.w_v(value)  # (B, T, d_model) each
    if mask is not None:  # one (B, T_q, T_k) mask per head
        B, H, T_q, T_k = q.shape[0], mha.num_heads, q.shape[1], k.shape[1]
        check_mask(mask, (B, H, T_q, T_k))
        mask = torch.broadcast_to(mask, (B, H, T_q, T_k))
    for h in range(mha.num_heads):
        part = slice(h * d_k, (h + 1) * d_k)  # head h's features
        head_mask = None if mask is None else mask[:, h]
        out, _ = scaled_dot_product_attention(
            q[..., part], k[..., part], v[..., part], head_mask
        )
        outputs.append(out)  # (B, T_q, d_k)
    return mha.w_o(torch.cat(outputs, dim=-1))  # (B, T_q, d_model)


# --- Chapter 0's first look: one self-attention layer over the pixels of an image ---


class PixelSelfAttention(nn.Module):
    """One self-attention layer over the pixels: (B, 1, H, W) -> (B, C, H, W).

    Each pixel becomes a token: its intensity, projected to C features, plus a learned
    embedding of its position. Every token attends to every other token.
    """

    def __init__(self, height: int, width: int, channels: int = 8):
        super().__init__()
        self.embed = nn.Linear(1, channels)
        self.position = nn.Parameter(0.5 * torch.randn(height * width, channels))
        self.query, self.key, self.value = (
            nn.Linear(channels, channels) for _ in range(3)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        B, _, H, W = image.shape
        if H * W != self.position.shape[0]:
            raise ValueError(
                f"image has {H}x{W} pixels, the layer expects {self.position.shape[0]}"
            )
        tokens = (
            self.embed(image.reshape(B, H * W, 1)) + self.position
        )  # (B, T, C), T = H·W
        q, k, v = (
            self.query(tokens),
            self.key(tokens),
            self.value(tokens),
        )  # (B, T, C) each
        weights = torch.softmax(
            q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1
        )  # (B, T, T)
        out = weights @ v  # (B, T, C)
        return out.transpose(1, 2).reshape(B, -1, H, W)  # (B, C, H, W)
