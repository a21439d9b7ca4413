"""Llama: the decoder-only layout of today's small open language models.

Used in chapter 11. It is GPT-2's layout (:mod:`utils.gpt`) with four parts changed,
as in Llama (Touvron et al. 2023) and SmolLM2 (Allal et al. 2025):

* :class:`RMSNorm` instead of LayerNorm: no mean is subtracted, and there is no bias;
* rotary position embeddings (:class:`RotaryEmbedding`) instead of a learned table:
  queries and keys are rotated by their position, so that their dot product depends
  on the distance between two positions only;
* :class:`SwiGLU` instead of the GELU MLP: a gated feed-forward layer;
* grouped-query attention (:class:`GroupedQueryAttention`): ``num_kv_heads`` key and
  value heads, each shared by ``num_heads // num_kv_heads`` query heads, so the KV
  cache is that many times smaller.

No Linear layer has a bias. The names of the parts are Hugging Face's, so
:meth:`Llama.from_hf` copies a ``LlamaForCausalLM`` one tensor at a time. Generation is
GPT's (:meth:`utils.gpt.GPT.generate`), with the same KV cache and sampling.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import merge_heads, split_heads
from utils.checks import (
    check_bool,
    check_divisible,
    check_int,
    check_positive,
    check_tensor,
)
from utils.convert import build_like, check_source, check_supported, copy_weights
from utils.gpt import GPT, KVCache, causal_attend
from utils.transformer import normal_init


@dataclass
class LlamaConfig:
    vocab_size: int = 256  # distinct tokens
    block_size: int = 256  # longest sequence it reads (RoPE has no table: a check)
    num_layers: int = 4  # decoder blocks
    num_heads: int = 4  # query heads per block
    num_kv_heads: int = 2  # key/value heads, each shared by num_heads // this
    d_model: int = 128  # width of every token's representation
    dim_feedforward: int | None = None  # SwiGLU's hidden width; None: about 8/3 d
    rope_theta: float = 10000.0  # RoPE's base: pair i turns theta^(-2i/d) per token
    norm_eps: float = 1e-5  # RMSNorm's epsilon
    tie_embeddings: bool = True  # the LM head is the token embedding (SmolLM2)

    def __post_init__(self):
        if self.dim_feedforward is None:  # 8/3 d, rounded up to a multiple of 64
            self.dim_feedforward = 64 * math.ceil(8 * self.d_model / 3 / 64)
        sizes = ("vocab_size", "block_size", "num_layers", "num_heads")
        for name in (*sizes, "num_kv_heads", "d_model", "dim_feedforward"):
            check_int(name, getattr(self, name))
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        check_divisible("num_heads", self.num_heads, "num_kv_heads", self.num_kv_heads)
        if self.head_dim % 2:
            raise ValueError(
                f"the head size d_model // num_heads must be even (RoPE rotates "
                f"pairs of features), got {self.head_dim}"
            )
        check_positive("rope_theta", self.rope_theta)
        check_positive("norm_eps", self.norm_eps)
        check_bool("tie_embeddings", self.tie_embeddings)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight: LayerNorm without the mean and the bias."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(check_int("d_model", d_model)))
        self.eps = check_positive("eps", eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)
        if x.shape[-1] != self.weight.shape[0]:
            raise ValueError(
                f"x must end with d_model={self.weight.shape[0]} features, got "
                f"shape {tuple(x.shape)}"
            )
        mean_square = x.pow(2).mean(-1, keepdim=True)  # (..., 1)
        return self.weight * x * torch.rsqrt(mean_square + self.eps)


class RotaryEmbedding(nn.Module):
    """The angles of rotary position embeddings (Su et al. 2021).

    Feature i of a head is paired with feature i + d/2 (Hugging Face's layout; the
    paper pairs neighbours, the same up to an order of the features). Pair i turns by
    position · theta^(-2i/d): the first pair fastest, the last slowest.
    forward(positions (T,)) -> cos, sin, each (T, d).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        check_int("head_dim", head_dim)
        pairs = torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim  # (d/2,)
        frequency = 1.0 / (check_positive("theta", theta) ** pairs)  # radians/step
        self.register_buffer("frequency", frequency, persistent=False)

    def forward(self, positions: torch.Tensor):
        check_tensor("positions", positions, ("T",))
        angles = positions.float()[:, None] * self.frequency  # (T, d/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, d): both halves of a pair
        return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) for the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate each pair (x_i, x_{i+d/2}) of x (..., T, d) by its angle at its
    position: (x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin)."""
    return x * cos + rotate_half(x) * sin  # (..., T, d)


class SwiGLU(nn.Module):
    """down(SiLU(gate(x)) · up(x)) (Shazeer 2020): SiLU of one projection scales each
    hidden unit of the other. Three matrices instead of two, so the hidden width is
    about 8/3 d instead of 4 d for the same parameter count."""

    def __init__(self, d_model: int, dim_feedforward: int):
        super().__init__()
        d = check_int("d_model", d_model)
        hidden = check_int("dim_feedforward", dim_feedforward)
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.silu(self.gate_proj(x))  # (B, T, hidden), SiLU(z) = z·sigmoid(z)
        return self.down_proj(gate * self.up_proj(x))  # (B, T, d)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with num_kv_heads key/value heads (Ainslie et al. 2023).

    Each key/value head serves num_heads // num_kv_heads query heads: num_kv_heads ==
    num_heads is multi-head attention, 1 is multi-query attention. The cache keeps
    only the num_kv_heads heads. forward(x, cos, sin, cache=None, need_weights=False)
    -> (output (B, T, d), weights (B, H, T, T_k) or None).
    """

    returns_weights = True  # found by record_attention

    def __init__(self, config: LlamaConfig):
        super().__init__()
        d, d_head = config.d_model, config.head_dim
        self.d_model = d
        self.num_heads, self.num_kv_heads = config.num_heads, config.num_kv_heads
        self.q_proj = nn.Linear(d, self.num_heads * d_head, bias=False)
        self.k_proj = nn.Linear(d, self.num_kv_heads * d_head, bias=False)
        self.v_proj = nn.Linear(d, self.num_kv_heads * d_head, bias=False)
        self.o_proj = nn.Linear(self.num_heads * d_head, d, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None = None, need_weights=False):
        check_tensor("x", x, ("B", "T", self.d_model), floating=True)
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, H, T, d_head)
        k = split_heads(self.k_proj(x), self.num_kv_heads)  # (B, H_kv, T, d_head)
        v = split_heads(self.v_proj(x), self.num_kv_heads)  # (B, H_kv, T, d_head)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # by position
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H_kv, T_seen, d_head): the small cache
        group = self.num_heads // self.num_kv_heads  # query heads per key/value head
        k = k.repeat_interleave(group, dim=1)  # (B, H, T_seen, d_head)
        v = v.repeat_interleave(group, dim=1)  # (B, H, T_seen, d_head)
        y, weights = causal_attend(q, k, v, need_weights=need_weights)
        return self.o_proj(merge_heads(y)), weights  # (B, T, d)


class LlamaBlock(nn.Module):
    """Pre-norm block: x + attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = GroupedQueryAttention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.dim_feedforward)

    def forward(self, x, cos, sin, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)[0]
        return x + self.mlp(self.post_attention_layernorm(x))  # (B, T, d)


class Llama(nn.Module):
    """Token embedding, blocks, a final RMSNorm and an LM head; no position table."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        blocks = (LlamaBlock(config) for _ in range(config.num_layers))
        self.layers = nn.ModuleList(blocks)
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.apply(normal_init)  # normal(0, 0.02)

    _check_ids = GPT._check_ids  # ids in the vocabulary, at most block_size of them
    generate = GPT.generate  # the same sampling loop and KV cache as GPT's

    def features(self, idx: torch.Tensor, cache: list[KVCache] | None = None):
        """(B, T) token ids -> (B, T, d) features after the final RMSNorm.

        `cache`: one KVCache per layer, or None. The new tokens' positions follow the
        cached ones: that is all RoPE needs to know about the past.
        """
        start = 0 if cache is None else len(cache[0])  # tokens already cached
        self._check_ids(idx, start)
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        cos, sin = self.rotary(positions)  # (T, d_head) each
        x = self.embed_tokens(idx)  # (B, T, d): no position added here
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if cache is None else cache[i])
        return self.norm(x)  # (B, T, d)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, vocab_size) at every position."""
        return self.lm_head(self.features(idx))

    @classmethod
    def from_hf(cls, model) -> "Llama":
        """The same model, with the weights of a Hugging Face ``LlamaForCausalLM``.

        Refused: RoPE scaling (any rope_type but "default"), biases, an activation
        other than SiLU, and a head size other than hidden_size // heads.
        """
        check_source(model, "LlamaForCausalLM")
        hf = model.config
        # transformers 5 keeps RoPE's settings in rope_parameters, 4 in rope_theta and
        # rope_scaling (None: the default)
        rope = getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None)
        rope = dict(rope or {})
        theta = rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        d_head = hf.hidden_size // hf.num_attention_heads
        check_supported(
            {
                "rope_type": (rope_type, "default"),
                "attention_bias": (hf.attention_bias, False),
                "mlp_bias": (hf.mlp_bias, False),
                "hidden_act": (hf.hidden_act, "silu"),
                "head_dim": (getattr(hf, "head_dim", None) or d_head, d_head),
            },
            "ours is Llama's: plain RoPE, SwiGLU, no biases",
        )
        config = LlamaConfig(
            vocab_size=hf.vocab_size,
            block_size=hf.max_position_embeddings,
            num_layers=hf.num_hidden_layers,
            num_heads=hf.num_attention_heads,
            num_kv_heads=hf.num_key_value_heads,
            d_model=hf.hidden_size,
            dim_feedforward=hf.intermediate_size,
            rope_theta=float(theta),
            norm_eps=hf.rms_norm_eps,
            tie_embeddings=hf.tie_word_embeddings,
        )
        theirs = model.state_dict()
        ours = build_like(lambda: cls(config), theirs["lm_head.weight"], model.training)
        tied = ("lm_head.weight",) if config.tie_embeddings else ()
        return copy_weights(  # our names are theirs inside LlamaModel ("model.")
            ours, theirs, lambda n: n if n == "lm_head.weight" else "model." + n, tied
        )


def kv_cache_bytes(config: LlamaConfig, tokens: int, bytes_per_number: int = 4):
    """Bytes of the KV cache for `tokens` tokens: a key and a value per layer, per
    key/value head, per token."""
    d_head = config.head_dim
    per_token = 2 * config.num_layers * config.num_kv_heads * d_head * bytes_per_number
    return check_int("tokens", tokens, minimum=0) * per_token
