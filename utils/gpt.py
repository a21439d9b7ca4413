"""GPT: a decoder-only Transformer language model, with sampling, a KV cache and a
classifier head.

Used in chapter 7. The layout (names, fused q/k/v projection, pre-norm blocks, an LM
head tied to the token embedding) is GPT-2's, so :meth:`GPT.from_hf` can copy the
weights of a Hugging Face ``GPT2LMHeadModel`` one tensor at a time. GPT-2's GELU is the
tanh approximation (``activation="gelu_tanh"``, which ``from_hf`` sets); the course
trains with the exact GELU: the two curves differ by at most 0.0005, and on the CPU the
exact one is the faster. The attention is the course's own
:func:`utils.attention.attend`: PyTorch's fused kernel when nobody looks at the weights,
the explicit form when somebody does.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.attention import attend, causal_mask, merge_heads, padding_mask, split_heads
from utils.checks import (
    check_bool,
    check_choice,
    check_divisible,
    check_ids,
    check_int,
    check_probability,
)
from utils.convert import build_like, check_source, check_supported, copy_weights
from utils.env import make_generator
from utils.pooling import mean_pool
from utils.sampling import sample_next
from utils.train import cross_entropy
from utils.transformer import normal_init

# Hugging Face's names of the two GELUs: ours
GELUS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


@dataclass
class GPTConfig:
    vocab_size: int = 65  # distinct tokens
    block_size: int = 128  # longest sequence it reads (learned positions)
    num_layers: int = 4  # Transformer blocks
    num_heads: int = 4  # attention heads per block
    d_model: int = 128  # width of every token's representation
    dim_feedforward: int | None = None  # the MLP's hidden width; None: 4 * d_model
    dropout: float = 0.0  # dropout probability everywhere
    bias: bool = True  # biases in Linear and LayerNorm (GPT-2: True)
    activation: str = "gelu"  # the MLP's GELU: "gelu" (exact) or "gelu_tanh" (GPT-2's)

    def __post_init__(self):
        if self.dim_feedforward is None:
            self.dim_feedforward = 4 * check_int("d_model", self.d_model)  # GPT-2's
        sizes = ("vocab_size", "block_size", "num_layers", "num_heads", "d_model")
        for name in (*sizes, "dim_feedforward"):
            check_int(name, getattr(self, name))
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        check_probability("dropout", self.dropout)
        check_bool("bias", self.bias)
        check_choice("activation", self.activation, ("gelu", "gelu_tanh"))


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
    """Multi-head self-attention: position t only attends to positions <= t.

    forward(x, cache=None, need_weights=False) -> (output, weights or None), like the
    course's other attention modules.
    """

    returns_weights = True  # found by record_attention

    def __init__(self, config: GPTConfig):
        super().__init__()
        d, bias = config.d_model, config.bias
        self.num_heads, self.dropout = config.num_heads, config.dropout
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)  # q, k, v at once
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False
    ):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        H = self.num_heads
        q, k, v = (split_heads(t, H) for t in (q, k, v))  # (B, H, T, d_head) each
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, T_seen, d_head)
        p = self.dropout if self.training else 0.0
        y, weights = causal_attend(q, k, v, p, need_weights)  # (B, H, T, d_head)
        return self.resid_dropout(self.c_proj(merge_heads(y))), weights  # (B, T, C)


def causal_attend(q, k, v, dropout_p: float = 0.0, need_weights: bool = False):
    """:func:`~utils.attention.attend` for T new queries (..., T, d) over T_k >= T
    keys, the last T of which are theirs and the first T_k - T cached."""
    T, T_k = q.shape[-2], k.shape[-2]
    mask, causal = None, T == T_k  # no earlier tokens: the plain causal mask
    if 1 < T < T_k:  # new tokens after cached ones: the last T rows of the mask
        mask = causal_mask(T_k, device=q.device)[T_k - T :]  # (T, T_k)
    # (one new token, T == 1, may see every key: no mask at all)
    return attend(q, k, v, mask, causal, dropout_p, need_weights)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        d, hidden = config.d_model, config.dim_feedforward  # hidden: 4d in GPT-2
        self.c_fc = nn.Linear(d, hidden, bias=config.bias)
        tanh = config.activation == "gelu_tanh"  # GPT-2's "gelu_new"
        self.gelu = nn.GELU(approximate="tanh" if tanh else "none")
        self.c_proj = nn.Linear(hidden, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)[0]
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    """Token and position embeddings, blocks, a final LayerNorm, a tied LM head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                wpe=nn.Embedding(config.block_size, config.d_model),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.num_layers)),
                ln_f=nn.LayerNorm(config.d_model, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying
        self.apply(normal_init)  # normal(0, 0.02), zero biases
        for name, p in self.named_parameters():  # GPT-2: scale the residual outputs
            if name.endswith("c_proj.weight"):
                nn.init.normal_(
                    p, mean=0.0, std=0.02 / math.sqrt(2 * config.num_layers)
                )

    def _check_ids(self, idx: torch.Tensor, start: int = 0) -> None:
        check_ids("idx", idx, self.config.vocab_size)
        if not 1 <= start + idx.shape[1] <= self.config.block_size:
            raise ValueError(
                f"sequence length {start + idx.shape[1]} must be between 1 and "
                f"block_size={self.config.block_size}"
            )

    def features(
        self, idx: torch.Tensor, cache: list[KVCache] | None = None
    ) -> torch.Tensor:
        """(B, T) token ids -> (B, T, C) features after the final LayerNorm.

        `cache`: one KVCache per layer, or None.
        """
        start = 0 if cache is None else len(cache[0])  # tokens already cached
        self._check_ids(idx, start)
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C)
        for i, block in enumerate(tr.h):
            x = block(x, None if cache is None else cache[i])
        return tr.ln_f(x)  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Next-token logits (B, T, vocab_size) at every position, and a loss.

        The loss is the mean cross-entropy against `targets` (B, T) if given
        (ids of -100 are ignored), else None.
        """
        logits = self.lm_head(self.features(idx))  # (B, T, V)
        loss = None if targets is None else cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        seed=0,
        top_p: float | None = None,
        suppress: tuple[int, ...] = (),
    ) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T): (B, T + new).

        Each step samples from softmax(logits / temperature), restricted to the `top_k`
        most likely tokens if given (``top_k=1`` is greedy decoding) and to the nucleus
        of probability `top_p` if given (:func:`utils.sampling.next_token_probs`), from
        `seed` (an int or a ``torch.Generator``). With ``use_cache`` the keys and values
        of earlier tokens are kept, so each step feeds only the newest token. Once the
        context is full, both paths restart from the last `block_size` tokens, so the
        outputs with and without the cache are the same. Dropout is off while it
        samples (eval mode); the model's mode is restored afterwards. The ids in
        `suppress` are never sampled (e.g. iGPT's start token, which is no pixel).
        """
        check_int("max_new_tokens", max_new_tokens, minimum=0)
        check_bool("use_cache", use_cache)
        self._check_ids(idx)
        suppress = list(suppress)
        for token in suppress:
            if not 0 <= check_int("suppress ids", token, 0) < self.config.vocab_size:
                raise ValueError(f"suppress ids must be token ids, got {token}")
        generator, block_size, cache = (
            make_generator(seed),
            self.config.block_size,
            None,
        )
        training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            if use_cache and cache is not None and len(cache[0]) < block_size:
                h = self.features(idx[:, -1:], cache)  # the newest token only
            else:  # (re)start from the window
                fresh = [KVCache() for _ in range(self.config.num_layers)]
                cache = fresh if use_cache else None
                h = self.features(idx[:, -block_size:], cache)
            logits = self.lm_head(h[:, -1])  # (B, V)
            logits[:, suppress] = float("-inf")  # never drawn
            next_id = sample_next(
                logits, generator, temperature, top_k, top_p
            )  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
        self.train(training)
        return idx

    @classmethod
    def from_hf(cls, model) -> "GPT":
        """The same model, with the weights of a Hugging Face ``GPT2LMHeadModel``.

        GPT-2 stores its projections in ``Conv1D`` modules, whose weight is (in, out):
        the transpose of ``nn.Linear``'s (out, in). The names are otherwise ours.
        """
        check_source(model, "GPT2LMHeadModel")
        hf = model.config
        activation = GELUS.get(hf.activation_function)
        if activation is None:
            raise ValueError(
                f"from_hf supports activation_function in {list(GELUS)}, "
                f"got {hf.activation_function!r}"
            )
        check_supported(
            {
                "layer_norm_epsilon": (hf.layer_norm_epsilon, 1e-5),
                "scale_attn_weights": (hf.scale_attn_weights, True),
                "scale_attn_by_inverse_layer_idx": (
                    hf.scale_attn_by_inverse_layer_idx,
                    False,
                ),
                "reorder_and_upcast_attn": (hf.reorder_and_upcast_attn, False),
            },
            "ours is GPT-2: LayerNorm eps 1e-5, scaled attention",
        )
        theirs = model.state_dict()
        if not torch.equal(theirs["lm_head.weight"], theirs["transformer.wte.weight"]):
            raise ValueError(
                "from_hf needs the LM head tied to the token embedding "
                "(tie_word_embeddings=True): ours is tied"
            )
        config = GPTConfig(
            vocab_size=hf.vocab_size,
            block_size=hf.n_positions,
            num_layers=hf.n_layer,
            num_heads=hf.n_head,
            d_model=hf.n_embd,
            dim_feedforward=hf.n_inner or 4 * hf.n_embd,
            activation=activation,
        )
        ours = build_like(lambda: cls(config), theirs["lm_head.weight"], model.training)
        conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")  # (in, out)
        return copy_weights(  # our names are GPT-2's
            ours, theirs, lambda name: name, skip=("lm_head.weight",), transpose=conv1d
        )


class GPTClassifier(nn.Module):
    """A GPT body with a linear head on one feature per sequence.

    forward(idx (B, T), lengths (B,)) -> class logits (B, num_classes). Padding goes
    on the right, where a causal model cannot see it from the real tokens. `pooling`
    picks the feature: "mean" averages the real tokens' outputs; "last" takes the last
    real token's, the only one that has seen the whole sequence (what GPT-1 and
    Hugging Face's GPT2ForSequenceClassification do).
    """

    def __init__(self, gpt: GPT, num_classes: int, pooling: str = "mean"):
        super().__init__()
        if not isinstance(gpt, GPT):
            raise ValueError(f"gpt must be a GPT, got {type(gpt).__name__}")
        check_int("num_classes", num_classes, minimum=2)
        self.pooling = check_choice("pooling", pooling, ("mean", "last"))
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.d_model, num_classes)

    def features(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled feature of each sequence: (B, T) ids -> (B, C)."""
        B, T = idx.shape
        if (
            not isinstance(lengths, torch.Tensor)
            or lengths.shape != (B,)
            or lengths.min() < 1
            or lengths.max() > T
        ):
            raise ValueError(
                f"lengths must be a ({B},) tensor with values in [1, {T}], "
                f"got {lengths!r}"
            )
        h = self.gpt.features(idx)  # (B, T, C)
        if self.pooling == "last":
            return h[torch.arange(B), lengths - 1]  # (B, C): the last real token
        return mean_pool(h, padding_mask(lengths, T))  # (B, C): the real tokens' mean

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx, lengths))  # (B, classes)
