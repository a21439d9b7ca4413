"""The Transformer: positional encodings, encoder and decoder layers, the full model, a Seq2Seq.

Used in chapter 5 (and by the GPT, BERT and ViT chapters after it). Built on
:mod:`utils.attention`, so every mask here follows its convention:

* **True = may attend** for ``src_mask``, ``tgt_mask`` and ``memory_mask``, each (T_q, T_k);
* **True = a real token** for the key-padding masks, each (B, T_k).

``nn.Transformer`` uses the opposite convention for boolean masks (True = masked out), so a
PyTorch mask ``m`` is passed to this module as ``~m``.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import MultiHeadAttention, causal_mask


def sinusoidal_positional_encoding(T: int, d_model: int) -> torch.Tensor:
    """(T, d_model) table: PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos.

    Both use the same angle t / 10000^(2i/d).
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got T={T!r}")
    if not isinstance(d_model, int) or d_model < 2 or d_model % 2:
        raise ValueError(
            f"d_model must be a positive even int, got d_model={d_model!r}")
    position = torch.arange(T, dtype=torch.float32)[:, None]          # (T, 1)
    i2 = torch.arange(0, d_model, 2)                                  # 2i
    frequency = torch.exp(-math.log(10000.0) * i2 / d_model)          # (d/2,)
    angle = position * frequency                                      # (T, d/2)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe                                                         # (T, d)


def _check_input(name: str, x: torch.Tensor, d_model: int) -> None:
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must be (B, T, d_model={d_model}), got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} is an empty sequence (T=0), got shape {tuple(x.shape)}")


def combine_masks(attn_mask, key_padding_mask, B: int, T_q: int, T_k: int, names=("mask", "key_padding_mask")):
    """One boolean mask (True = may attend) broadcastable to (B, H, T_q, T_k), or None.

    attn_mask: (T_q, T_k), True = may attend. key_padding_mask: (B, T_k), True = real token.
    """
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool or tuple(attn_mask.shape) != (T_q, T_k):
            raise ValueError(f"{names[0]} must be a boolean (T_q, T_k) = ({T_q}, {T_k}) tensor, "
                             f"got shape {tuple(attn_mask.shape)} and dtype {attn_mask.dtype}")
        mask = attn_mask                                                  # (T_q, T_k)
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (B, T_k):
            raise ValueError(f"{names[1]} must be a boolean (B, T_k) = ({B}, {T_k}) tensor, "
                             f"got shape {tuple(key_padding_mask.shape)} and dtype {key_padding_mask.dtype}")
        padding = key_padding_mask[:, None, None, :]                      # (B, 1, 1, T_k)
        mask = padding if mask is None else mask & padding                # (B, 1, T_q, T_k)
    return mask


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear -> ReLU -> dropout -> Linear."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))          # (B, T, d_model)


def _check_sizes(d_model, num_heads, dim_feedforward, dropout):
    if d_model < 1 or num_heads < 1 or dim_feedforward < 1:
        raise ValueError(f"d_model, num_heads and dim_feedforward must be >= 1, got d_model={d_model}, "
                         f"num_heads={num_heads}, dim_feedforward={dim_feedforward}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward; each with a residual and a LayerNorm.

    Post-norm (the 2017 paper): x = norm(x + sublayer(x)). Pre-norm
    (``norm_first=True``): x = x + sublayer(norm(x)).
    """

    def __init__(self, d_model: int, num_heads: int,
                 dim_feedforward: int = 2048, dropout: float = 0.1,
                 norm_first: bool = False,
                 layer_norm_eps: float = 1e-5):
        super().__init__()
        _check_sizes(d_model, num_heads, dim_feedforward, dropout)
        self.d_model, self.norm_first = d_model, norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.attention = None  # last self-attention weights (B, H, T, T)

    def _self_attention(self, x, mask):
        out, weights = self.self_attn(x, x, x, mask)
        self.attention = weights.detach()
        return self.dropout1(out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """x: (B, T, d); mask broadcastable to (B, H, T, T), True = may attend."""
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), mask)
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            x = self.norm1(x + self._self_attention(x, mask))
            x = self.norm2(x + self.dropout2(self.feed_forward(x)))
        return x                                          # (B, T, d_model)


class DecoderLayer(EncoderLayer):
    """Masked self-attention, cross-attention to the encoder, feed-forward net.

    An encoder layer (its self-attention, feed-forward net, norms and dropouts)
    plus a cross-attention sub-layer, whose **queries come from the decoder**
    and **keys and values from the encoder's output** (``memory``): each target
    position looks up the source.
    """

    def __init__(self, d_model: int, num_heads: int,
                 dim_feedforward: int = 2048, dropout: float = 0.1,
                 norm_first: bool = False,
                 layer_norm_eps: float = 1e-5):
        super().__init__(d_model, num_heads, dim_feedforward, dropout,
                         norm_first, layer_norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, num_heads,
                                             dropout=dropout)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout3 = nn.Dropout(dropout)
        self.cross_attention = None  # last cross-attention (B, H, T_tgt, T_src)

    def _cross_attention(self, x, memory, mask):
        # queries: the decoder; keys and values: the encoder's output
        out, weights = self.cross_attn(x, memory, memory, mask)
        self.cross_attention = weights.detach()
        return self.dropout2(out)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T_tgt, d), memory: (B, T_src, d); masks: True = may attend."""
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), mask)
            x = x + self._cross_attention(self.norm2(x), memory, memory_mask)
            x = x + self.dropout3(self.feed_forward(self.norm3(x)))
        else:
            x = self.norm1(x + self._self_attention(x, mask))
            x = self.norm2(x + self._cross_attention(x, memory, memory_mask))
            x = self.norm3(x + self.dropout3(self.feed_forward(x)))
        return x                                      # (B, T_tgt, d_model)


class Transformer(nn.Module):
    """Encoder-decoder Transformer on embedded inputs, laid out like ``nn.Transformer``.

    Each stack ends with a LayerNorm, as in ``nn.Transformer``. Masks follow this module's
    convention (True = may attend; key padding: True = real token); PyTorch's boolean masks
    mean the opposite, so pass ``~m`` for a PyTorch mask ``m``.
    """

    def __init__(self, d_model: int = 512, num_heads: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 norm_first: bool = False, layer_norm_eps: float = 1e-5):
        super().__init__()
        if num_encoder_layers < 1 or num_decoder_layers < 1:
            raise ValueError(f"num_encoder_layers and num_decoder_layers must be >= 1, got "
                             f"{num_encoder_layers} and {num_decoder_layers}")
        _check_sizes(d_model, num_heads, dim_feedforward, dropout)
        self.d_model, self.num_heads = d_model, num_heads
        layer_args = (d_model, num_heads, dim_feedforward, dropout, norm_first, layer_norm_eps)
        self.encoder_layers = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(num_encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(num_decoder_layers))
        self.encoder_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.decoder_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def encode(self, src, src_mask=None, src_key_padding_mask=None) -> torch.Tensor:
        """src: (B, T_src, d_model) -> memory (B, T_src, d_model)."""
        _check_input("src", src, self.d_model)
        B, T, _ = src.shape
        mask = combine_masks(src_mask, src_key_padding_mask, B, T, T, ("src_mask", "src_key_padding_mask"))
        x = src
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def decode(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
               memory_key_padding_mask=None) -> torch.Tensor:
        """tgt: (B, T_tgt, d_model), memory: (B, T_src, d_model) -> (B, T_tgt, d_model)."""
        _check_input("tgt", tgt, self.d_model)
        _check_input("memory", memory, self.d_model)
        (B, T_tgt, _), T_src = tgt.shape, memory.shape[1]
        if memory.shape[0] != B:
            raise ValueError(f"src and tgt must have the same batch size, got {memory.shape[0]} and {B}")
        self_mask = combine_masks(tgt_mask, tgt_key_padding_mask, B, T_tgt, T_tgt,
                                  ("tgt_mask", "tgt_key_padding_mask"))
        cross_mask = combine_masks(memory_mask, memory_key_padding_mask, B, T_tgt, T_src,
                                   ("memory_mask", "memory_key_padding_mask"))
        x = tgt
        for layer in self.decoder_layers:
            x = layer(x, memory, self_mask, cross_mask)
        return self.decoder_norm(x)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        """src: (B, T_src, d_model), tgt: (B, T_tgt, d_model) -> (B, T_tgt, d).

        src_mask (T_src, T_src), tgt_mask (T_tgt, T_tgt) and memory_mask
        (T_tgt, T_src): True = may attend. Key-padding masks (B, T): True = real
        token. For a causal decoder pass ``tgt_mask=causal_mask(T_tgt)``.
        """
        memory = self.encode(src, src_mask, src_key_padding_mask)
        return self.decode(tgt, memory, tgt_mask, memory_mask,
                           tgt_key_padding_mask, memory_key_padding_mask)

    @classmethod
    def from_torch(cls, m: nn.Transformer) -> "Transformer":
        """An equivalent module with the weights of ``nn.Transformer(..., batch_first=True)``."""
        if not isinstance(m, nn.Transformer):
            raise ValueError(f"from_torch needs an nn.Transformer, got {type(m).__name__}")
        first = m.encoder.layers[0]
        if not first.self_attn.batch_first:
            raise ValueError("from_torch needs nn.Transformer(..., batch_first=True), got batch_first=False")
        if first.activation_relu_or_gelu != 1:
            raise ValueError("from_torch supports activation='relu' only")
        ours = cls(m.d_model, m.nhead, len(m.encoder.layers), len(m.decoder.layers),
                   first.linear1.out_features, first.dropout.p, first.norm_first, first.norm1.eps)
        ours = ours.to(device=first.linear1.weight.device, dtype=first.linear1.weight.dtype)
        pairs = [(ours.encoder_norm, m.encoder.norm), (ours.decoder_norm, m.decoder.norm)]
        for mine, theirs in zip(list(ours.encoder_layers) + list(ours.decoder_layers),
                                list(m.encoder.layers) + list(m.decoder.layers)):
            mine.self_attn = MultiHeadAttention.from_torch(theirs.self_attn)
            if isinstance(mine, DecoderLayer):
                mine.cross_attn = MultiHeadAttention.from_torch(theirs.multihead_attn)
                pairs.append((mine.norm3, theirs.norm3))
            pairs += [(mine.feed_forward.linear1, theirs.linear1), (mine.feed_forward.linear2, theirs.linear2),
                      (mine.norm1, theirs.norm1), (mine.norm2, theirs.norm2)]
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())
        return ours


# --- A small sequence-to-sequence model: token embeddings, positions, a Transformer, a head ---

@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.0
    norm_first: bool = False
    max_len: int = 64      # longest source or target sequence (size of the position table)
    pad_id: int = 0        # padding, in both vocabularies
    bos_id: int = 1        # target: beginning of sequence
    eos_id: int = 2        # target: end of sequence

    def __post_init__(self):
        if self.src_vocab_size < 1 or self.tgt_vocab_size < 3:
            raise ValueError(f"src_vocab_size must be >= 1 and tgt_vocab_size >= 3, got "
                             f"{self.src_vocab_size} and {self.tgt_vocab_size}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got max_len={self.max_len}")


class Seq2Seq(nn.Module):
    """Token ids in, next-token logits out: embeddings · √d + sinusoidal positions -> Transformer -> head.

    Padding (``pad_id``) is masked out of every attention, so padded positions change nothing
    for the real tokens.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.register_buffer("positions", sinusoidal_positional_encoding(c.max_len, c.d_model), persistent=False)
        self.transformer = Transformer(c.d_model, c.num_heads, c.num_encoder_layers, c.num_decoder_layers,
                                       c.dim_feedforward, c.dropout, c.norm_first)
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size)

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor, name: str) -> torch.Tensor:
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"{name} must be a non-empty (B, T) tensor of token ids, got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"{name} has length {ids.shape[1]} > max_len={self.config.max_len}")
        x = embedding(ids) * math.sqrt(self.config.d_model)               # (B, T, d_model)
        return x + self.positions[: ids.shape[1]]                         # (B, T, d_model)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src ids (B, T_src) -> memory (B, T_src, d_model) and its padding mask (B, T_src)."""
        src_real = src != self.config.pad_id                              # (B, T_src), True = real token
        memory = self.transformer.encode(self._embed(self.src_embedding, src, "src"),
                                         src_key_padding_mask=src_real)
        return memory, src_real

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_real: torch.Tensor) -> torch.Tensor:
        """tgt ids (B, T_tgt) (starting with BOS) -> logits (B, T_tgt, tgt_vocab), causally."""
        x = self._embed(self.tgt_embedding, tgt, "tgt")
        h = self.transformer.decode(x, memory, tgt_mask=causal_mask(tgt.shape[1]).to(tgt.device),
                                    tgt_key_padding_mask=tgt != self.config.pad_id,
                                    memory_key_padding_mask=src_real)
        return self.head(h)                                               # (B, T_tgt, tgt_vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: every target position in one parallel pass. Returns logits (B, T_tgt, V)."""
        memory, src_real = self.encode(src)
        return self.decode(tgt, memory, src_real)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int | None = None,
                      eos_id: int | None = None) -> torch.Tensor:
        """Generate one token at a time, each time the most likely one (serial).

        Returns the generated ids (B, L), BOS excluded; after a sequence's end
        token the rest of its row is ``pad_id``. Stops when every sequence has
        ended or after `max_len` tokens (default: position table size - 1).
        """
        c = self.config
        max_len = c.max_len - 1 if max_len is None else max_len
        eos_id = c.eos_id if eos_id is None else eos_id
        if not 1 <= max_len <= c.max_len - 1:
            raise ValueError(f"max_len must be between 1 and {c.max_len - 1}, "
                             f"got max_len={max_len}")
        memory, src_real = self.encode(src)
        B = src.shape[0]
        tokens = torch.full((B, 1), c.bos_id, dtype=torch.long,
                            device=src.device)                   # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits = self.decode(tokens, memory, src_real)       # (B, t, V)
            next_token = logits[:, -1].argmax(-1)                # (B,)
            next_token = next_token.masked_fill(done, c.pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t+1)
            done |= next_token == eos_id
            if done.all():
                break
        return tokens[:, 1:]
