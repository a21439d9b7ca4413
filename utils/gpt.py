"""GPT: a decoder-only Transformer language model, with sampling, a KV cache and a classifier head.

Used in chapter 6. The layout (names, fused q/k/v projection, pre-norm blocks, GELU with the tanh
approximation, an LM head tied to the token embedding) is GPT-2's, so :meth:`GPT.from_hf_gpt2`
can copy the weights of a Hugging Face ``GPT2LMHeadModel`` one tensor at a time. The attention
itself is the course's own: :func:`utils.attention.scaled_dot_product_attention` with
:func:`utils.attention.causal_mask` (True = may attend).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import causal_mask, merge_heads, scaled_dot_product_attention, split_heads


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 128     # longest sequence it reads (learned positions)
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    bias: bool = True         # biases in Linear and LayerNorm (GPT-2: True)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head",
                     "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, "
                                 f"got {name}={value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by "
                             f"n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), "
                             f"got dropout={self.dropout}")


class KVCache:
    """The keys and values one attention layer has computed so far.

    Each is (B, H, T_seen, d_head).
    """

    def __init__(self):
        self.k = self.v = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """Add the new tokens' keys and values; return all, old and new."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention: position t only attends to positions <= t."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        d, bias = config.d_model, config.bias
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)  # q, k, v at once
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)     # (B, T, C) each
        # (B, H, T, d_head) each:
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
        if cache is not None:
            k, v = cache.append(k, v)                # (B, H, T_seen, d_head)
        T_k = k.shape[2]
        mask = causal_mask(T_k)[T_k - T:].to(x.device)  # (T, T_k): last T rows
        p = self.dropout if self.training else 0.0
        y, _ = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        return self.resid_dropout(self.c_proj(merge_heads(y)))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")                        # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))       # (B, T, C)


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))                  # (B, T, C)


class GPT(nn.Module):
    """Token + learned position embeddings, `n_layer` blocks, a final LayerNorm, a tied LM head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.d_model),
            wpe=nn.Embedding(config.block_size, config.d_model),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.d_model, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight               # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():                         # GPT-2: scale residual outputs
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _check_ids(self, idx: torch.Tensor, start: int = 0) -> None:
        if idx.ndim != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be a (B, T) tensor of token ids (torch.long), got shape "
                             f"{tuple(idx.shape)} and dtype {idx.dtype}")
        if start + idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence length {start + idx.shape[1]} is longer than the block size "
                             f"block_size={self.config.block_size}")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must be in [0, vocab_size={self.config.vocab_size}), got ids "
                             f"from {idx.min().item()} to {idx.max().item()}")

    def hidden_states(self, idx: torch.Tensor,
                      cache: list[KVCache] | None = None) -> torch.Tensor:
        """(B, T) token ids -> (B, T, C) features after the final LayerNorm.

        `cache`: one KVCache per layer, or None.
        """
        start = 0 if cache is None else len(cache[0])   # tokens already cached
        self._check_ids(idx, start)
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))                 # (B, T, C)
        for i, block in enumerate(tr.h):
            x = block(x, None if cache is None else cache[i])
        return tr.ln_f(x)                                      # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Next-token logits (B, T, vocab_size) at every position, and a loss.

        The loss is the mean cross-entropy against `targets` (B, T) if given
        (ids of -100 are ignored), else None.
        """
        logits = self.lm_head(self.hidden_states(idx))         # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                   ignore_index=-100)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int,
                 temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T).

        Returns (B, T + max_new_tokens). Each step samples from
        softmax(logits / temperature), restricted to the `top_k` most likely
        tokens if given (``top_k=1`` is greedy decoding). With ``use_cache``
        the keys and values of earlier tokens are kept, so each step feeds
        only the newest token. The model only knows `block_size` positions:
        once the context is full, it keeps the last `block_size` tokens and
        both paths recompute them, so the outputs with and without the cache
        are the same.
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, "
                             f"got max_new_tokens={max_new_tokens!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, "
                             f"got temperature={temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be an int >= 1 or None, "
                             f"got top_k={top_k!r}")
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"idx must be a non-empty (B, T) prompt, "
                             f"got shape {tuple(idx.shape)}")
        block_size, cache = self.config.block_size, None
        for _ in range(max_new_tokens):
            if use_cache and cache is not None and len(cache[0]) < block_size:
                # the newest token only
                h = self.hidden_states(idx[:, -1:], cache)
            else:
                # (re)start from the window
                cache = ([KVCache() for _ in self.transformer.h]
                         if use_cache else None)
                h = self.hidden_states(idx[:, -block_size:], cache)
            logits = self.lm_head(h)[:, -1, :] / temperature         # (B, V)
            if top_k is not None and top_k < logits.shape[-1]:
                kth = torch.topk(logits, top_k).values[:, -1:]        # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)    # next_id: (B, 1)
        return idx

    @classmethod
    def from_hf_gpt2(cls, model) -> "GPT":
        """An equivalent GPT with the weights of a ``GPT2LMHeadModel``.

        GPT-2 stores its projections in ``Conv1D`` modules, whose weight is
        (in, out): the transpose of ``nn.Linear``'s (out, in). The names are
        otherwise the same as ours.
        """
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "gpt2":
            raise ValueError(f"from_hf_gpt2 needs a GPT2LMHeadModel, "
                             f"got {type(model).__name__}")
        if hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"activation_function must be 'gelu_new', "
                             f"got {hf.activation_function!r}")
        if (hf.layer_norm_epsilon != 1e-5 or not hf.scale_attn_weights
                or hf.scale_attn_by_inverse_layer_idx
                or hf.reorder_and_upcast_attn or hf.n_inner is not None):
            raise ValueError(
                "from_hf_gpt2 supports layer_norm_epsilon=1e-5, "
                "scale_attn_weights=True, scale_attn_by_inverse_layer_idx="
                "False, reorder_and_upcast_attn=False and n_inner=None (4x MLP)")
        config = GPTConfig(vocab_size=hf.vocab_size, block_size=hf.n_positions,
                           n_layer=hf.n_layer, n_head=hf.n_head,
                           d_model=hf.n_embd, dropout=0.0, bias=True)
        ours = cls(config)
        theirs = model.state_dict()
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight",
                  "mlp.c_fc.weight", "mlp.c_proj.weight")
        with torch.no_grad():
            for name, p in ours.state_dict().items():
                if name == "lm_head.weight":
                    continue                      # tied to transformer.wte
                w = theirs[name]
                p.copy_(w.t() if name.endswith(conv1d) else w)
        return ours.to(dtype=next(model.parameters()).dtype)

def bigram_loss(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int,
                smoothing: float = 0.01) -> float:
    """The baseline: validation cross-entropy (nats/token) of next-token counts from `train_ids`.

    p(b | a) = (count(a, b) + smoothing) / (count(a, ·) + smoothing · vocab_size): the best a model
    can do that looks only at the previous token.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got smoothing={smoothing}")
    pairs = train_ids[:-1] * vocab_size + train_ids[1:]                   # one index per (a, b)
    counts = torch.bincount(pairs, minlength=vocab_size ** 2).view(vocab_size, vocab_size).double()
    log_p = (counts + smoothing).log() - (counts + smoothing).sum(1, keepdim=True).log()  # (V, V)
    return -log_p[val_ids[:-1], val_ids[1:]].mean().item()


def num_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters())


class GPTClassifier(nn.Module):
    """A GPT body with a linear head on its mean feature over the real tokens.

    forward(idx (B, T), lengths (B,)) -> class logits (B, num_classes).
    Padding goes on the right, where a causal model cannot see it from the
    real tokens.
    """

    def __init__(self, gpt: GPT, num_classes: int):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, "
                             f"got num_classes={num_classes!r}")
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.d_model, num_classes)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if lengths.shape != (idx.shape[0],) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be ({idx.shape[0]},) with values in [1, {T}], "
                             f"got {lengths.tolist()}")
        h = self.gpt.hidden_states(idx)                          # (B, T, C)
        positions = torch.arange(T, device=idx.device)
        real = (positions < lengths[:, None]).unsqueeze(-1)      # (B, T, 1)
        pooled = (h * real).sum(1) / real.sum(1).clamp(min=1)    # (B, C)
        return self.head(pooled)                                 # (B, classes)
