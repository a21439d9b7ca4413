"""The Transformer: positional encodings, encoder and decoder layers, the model and a
sequence-to-sequence model built on it.

Used in chapter 6 (and by the GPT, BERT and ViT chapters after it). Built on
:mod:`utils.attention`, so every mask here follows its convention:

* **True = may attend** for ``src_mask``, ``tgt_mask`` and ``memory_mask``, each
  (T_q, T_k);
* **True = a real token** for the key-padding masks, each (B, T_k).

``nn.Transformer`` uses the opposite convention for boolean masks (True = masked out),
so a PyTorch mask ``m`` is passed to this module as ``~m``.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.attention import MultiHeadAttention, causal_mask
from utils.checks import (
    check_bool,
    check_choice,
    check_divisible,
    check_ids,
    check_int,
    check_probability,
    check_special_ids,
    check_tensor,
)
from utils.convert import build_like


def sinusoidal_positional_encoding(T: int, d_model: int) -> torch.Tensor:
    """(T, d_model) table: PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos.

    Both use the same angle t / 10000^(2i/d).
    """
    check_int("T", T)
    if check_int("d_model", d_model) % 2:
        raise ValueError(f"d_model must be even (sin, cos), got d_model={d_model}")
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    i2 = torch.arange(0, d_model, 2)  # 2i
    frequency = torch.exp(-math.log(10000.0) * i2 / d_model)  # (d/2,)
    angle = position * frequency  # (T, d/2)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe  # (T, d)


def normal_init(module: nn.Module) -> None:
    """GPT-2's and BERT's initialisation, for ``model.apply``: normal(0, 0.02)
    weights of linear layers and embeddings, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _check_input(name: str, x: torch.Tensor, d_model: int) -> None:
    check_tensor(name, x, ("B", "T", d_model), floating=True)
    if x.shape[1] == 0:
        raise ValueError(
            f"{name} is an empty sequence (T=0), got shape {tuple(x.shape)}"
        )


def combine_masks(
    attn_mask,
    key_padding_mask,
    B: int,
    T_q: int,
    T_k: int,
    names=("mask", "key_padding_mask"),
):
    """One boolean mask (True = may attend) broadcastable to (B, H, T_q, T_k), or None.

    attn_mask: (T_q, T_k), True = may attend. key_padding_mask: (B, T_k), True = real
    token.
    """
    mask = None
    for name, given, shape in (
        (names[0], attn_mask, (T_q, T_k)),
        (names[1], key_padding_mask, (B, T_k)),
    ):
        if given is not None:
            if not isinstance(given, torch.Tensor) or given.dtype != torch.bool:
                raise ValueError(
                    f"{name} must be a boolean tensor (the course's convention:"
                    f" True = may attend / real token), got "
                    f"{getattr(given, 'dtype', type(given).__name__)}"
                )
            check_tensor(name, given, shape)
    if attn_mask is not None:
        mask = attn_mask  # (T_q, T_k)
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]  # (B, 1, 1, T_k)
        mask = padding if mask is None else mask & padding  # (B, 1, T_q, T_k)
    return mask


def _check_sizes(d_model, num_heads, dim_feedforward, dropout):
    check_int("d_model", d_model)
    check_int("num_heads", num_heads)
    check_int("dim_feedforward", dim_feedforward)
    check_divisible("d_model", d_model, "num_heads", num_heads)
    check_probability("dropout", dropout)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear -> activation -> dropout -> Linear."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        activation: str = "relu",
    ):
        super().__init__()
        check_choice("activation", activation, tuple(ACTIVATIONS))
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))  # (B, T, d)


class SublayerConnection(nn.Module):
    """A residual connection around a sub-layer, with its LayerNorm and dropout.

    The one place where post-norm and pre-norm differ:
    post-norm (the 2017 paper): ``norm(x + dropout(sublayer(x)))``;
    pre-norm (``norm_first=True``): ``x + dropout(sublayer(norm(x)))``.
    """

    def __init__(
        self,
        d_model: int,
        dropout: float,
        norm_first: bool,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = check_bool("norm_first", norm_first)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))  # (B, T, d_model)


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward; each inside a SublayerConnection."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        *,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        activation: str = "relu",
    ):
        super().__init__()
        _check_sizes(d_model, num_heads, dim_feedforward, dropout)
        self.d_model = d_model
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, dim_feedforward, dropout, activation)
        sublayer = (d_model, dropout, norm_first, layer_norm_eps)
        self.self_attn_sublayer = SublayerConnection(*sublayer)
        self.feed_forward_sublayer = SublayerConnection(*sublayer)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """x: (B, T, d); mask broadcastable to (B, H, T, T), True = may attend."""
        x = self.self_attn_sublayer(x, lambda h: self.self_attn(h, h, h, mask)[0])
        return self.feed_forward_sublayer(x, self.feed_forward)  # (B, T, d_model)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder, feed-forward.

    The cross-attention's **queries come from the decoder** and its **keys and values
    from the encoder's output** (``memory``): each target position looks up the source.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        *,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        activation: str = "relu",
    ):
        super().__init__()
        _check_sizes(d_model, num_heads, dim_feedforward, dropout)
        self.d_model = d_model
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, dim_feedforward, dropout, activation)
        sublayer = (d_model, dropout, norm_first, layer_norm_eps)
        self.self_attn_sublayer = SublayerConnection(*sublayer)
        self.cross_attn_sublayer = SublayerConnection(*sublayer)
        self.feed_forward_sublayer = SublayerConnection(*sublayer)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, T_tgt, d), memory: (B, T_src, d); masks: True = may attend."""
        x = self.self_attn_sublayer(x, lambda h: self.self_attn(h, h, h, mask)[0])
        # queries: the decoder; keys and values: the encoder's output
        x = self.cross_attn_sublayer(
            x, lambda h: self.cross_attn(h, memory, memory, memory_mask)[0]
        )
        return self.feed_forward_sublayer(x, self.feed_forward)  # (B, T_tgt, d_model)


class Transformer(nn.Module):
    """Encoder-decoder Transformer on embedded inputs, laid out like ``nn.Transformer``.

    Each stack ends with a LayerNorm, as in ``nn.Transformer``. Masks follow this
    module's convention (True = may attend; key padding: True = real token); PyTorch's
    boolean masks mean the opposite, so pass ``~m`` for a PyTorch mask ``m``.
    """

    def __init__(
        self,
        d_model: int = 512,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        *,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        check_int("num_encoder_layers", num_encoder_layers)
        check_int("num_decoder_layers", num_decoder_layers)
        _check_sizes(d_model, num_heads, dim_feedforward, dropout)
        self.d_model, self.num_heads = d_model, num_heads
        args = (d_model, num_heads, dim_feedforward, dropout)
        kwargs = dict(norm_first=norm_first, layer_norm_eps=layer_norm_eps)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(*args, **kwargs) for _ in range(num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(*args, **kwargs) for _ in range(num_decoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.decoder_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def encode(self, src, src_mask=None, src_key_padding_mask=None) -> torch.Tensor:
        """src: (B, T_src, d_model) -> memory (B, T_src, d_model)."""
        _check_input("src", src, self.d_model)
        B, T, _ = src.shape
        mask = combine_masks(
            src_mask,
            src_key_padding_mask,
            B,
            T,
            T,
            ("src_mask", "src_key_padding_mask"),
        )
        x = src
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def decode(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ) -> torch.Tensor:
        """tgt (B, T_tgt, d), memory (B, T_src, d) -> (B, T_tgt, d) with d = d_model."""
        _check_input("tgt", tgt, self.d_model)
        _check_input("memory", memory, self.d_model)
        (B, T_tgt, _), T_src = tgt.shape, memory.shape[1]
        if memory.shape[0] != B:
            raise ValueError(
                f"memory and tgt must have the same batch size, "
                f"got {memory.shape[0]} and {B} (no broadcasting)"
            )
        self_mask = combine_masks(
            tgt_mask,
            tgt_key_padding_mask,
            B,
            T_tgt,
            T_tgt,
            ("tgt_mask", "tgt_key_padding_mask"),
        )
        cross_mask = combine_masks(
            memory_mask,
            memory_key_padding_mask,
            B,
            T_tgt,
            T_src,
            ("memory_mask", "memory_key_padding_mask"),
        )
        x = tgt
        for layer in self.decoder_layers:
            x = layer(x, memory, self_mask, cross_mask)
        return self.decoder_norm(x)

    def forward(
        self,
        src,
        tgt,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ):
        """src: (B, T_src, d_model), tgt: (B, T_tgt, d_model) -> (B, T_tgt, d).

        src_mask (T_src, T_src), tgt_mask (T_tgt, T_tgt) and memory_mask
        (T_tgt, T_src): True = may attend. Key-padding masks (B, T): True = real
        token. For a causal decoder pass ``tgt_mask=causal_mask(T_tgt)``.
        """
        memory = self.encode(src, src_mask, src_key_padding_mask)
        return self.decode(
            tgt,
            memory,
            tgt_mask,
            memory_mask,
            tgt_key_padding_mask,
            memory_key_padding_mask,
        )

    @classmethod
    def from_torch(cls, m: nn.Transformer) -> "Transformer":
        """Our module with the weights of ``nn.Transformer(..., batch_first=True)``."""
        if not isinstance(m, nn.Transformer):
            raise ValueError(
                f"from_torch needs an nn.Transformer, got {type(m).__name__}"
            )
        first = m.encoder.layers[0]
        if not first.self_attn.batch_first:
            raise ValueError(
                "from_torch needs nn.Transformer(..., batch_first=True), "
                "got batch_first=False"
            )
        if first.activation_relu_or_gelu != 1 or first.linear1.bias is None:
            raise ValueError("from_torch supports activation='relu' and bias=True only")
        if m.encoder.norm is None or m.decoder.norm is None:
            raise ValueError("from_torch needs the final LayerNorm of both stacks")
        ours = build_like(  # its dtype, device and mode; the global RNG untouched
            lambda: cls(
                m.d_model,
                m.nhead,
                len(m.encoder.layers),
                len(m.decoder.layers),
                first.linear1.out_features,
                first.dropout.p,
                norm_first=first.norm_first,
                layer_norm_eps=first.norm1.eps,
            ),
            first.linear1.weight,
            m.training,
        )
        pairs = [
            (ours.encoder_norm, m.encoder.norm),
            (ours.decoder_norm, m.decoder.norm),
        ]
        for mine, theirs in zip(ours.encoder_layers, m.encoder.layers):
            mine.self_attn = MultiHeadAttention.from_torch(theirs.self_attn)
            pairs += [
                (mine.self_attn_sublayer.norm, theirs.norm1),
                (mine.feed_forward_sublayer.norm, theirs.norm2),
            ]
        for mine, theirs in zip(ours.decoder_layers, m.decoder.layers):
            mine.self_attn = MultiHeadAttention.from_torch(theirs.self_attn)
            mine.cross_attn = MultiHeadAttention.from_torch(theirs.multihead_attn)
            pairs += [
                (mine.self_attn_sublayer.norm, theirs.norm1),
                (mine.cross_attn_sublayer.norm, theirs.norm2),
                (mine.feed_forward_sublayer.norm, theirs.norm3),
            ]
        for mine, theirs in zip(
            [*ours.encoder_layers, *ours.decoder_layers],
            [*m.encoder.layers, *m.decoder.layers],
        ):
            pairs += [
                (mine.feed_forward.linear1, theirs.linear1),
                (mine.feed_forward.linear2, theirs.linear2),
            ]
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())
        return ours


# --- A small sequence-to-sequence model: embeddings, positions, a Transformer, a head -


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int  # source tokens
    tgt_vocab_size: int  # target tokens, including pad, bos and eos
    d_model: int = 64  # width of every token's representation
    num_heads: int = 4  # attention heads per layer
    num_encoder_layers: int = 2  # encoder layers
    num_decoder_layers: int = 2  # decoder layers
    dim_feedforward: int = 256  # hidden units of each feed-forward network
    dropout: float = 0.0  # dropout probability everywhere
    norm_first: bool = False  # pre-norm (True) or the paper's post-norm (False)
    causal_decoder: bool = True  # False: the decoder also sees later targets (ch. 6)
    block_size: int = 64  # longest source or target sequence (the position table)
    pad_id: int = 0  # padding, in both vocabularies
    bos_id: int = 1  # target: beginning of sequence
    eos_id: int = 2  # target: end of sequence

    def __post_init__(self):
        check_int("src_vocab_size", self.src_vocab_size)
        check_int("tgt_vocab_size", self.tgt_vocab_size, minimum=3)
        check_int("block_size", self.block_size)
        _check_sizes(self.d_model, self.num_heads, self.dim_feedforward, self.dropout)
        check_bool("norm_first", self.norm_first)
        check_bool("causal_decoder", self.causal_decoder)
        check_special_ids(self)


class Seq2Seq(nn.Module):
    """Token ids in, next-token logits out.

    Embeddings · √d + sinusoidal positions -> Transformer -> linear head. Padding
    (``pad_id``) is masked out of every attention, so padded positions change nothing
    for the real tokens.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model)
        positions = sinusoidal_positional_encoding(c.block_size, c.d_model)
        self.register_buffer("positions", positions, persistent=False)
        self.transformer = Transformer(
            c.d_model,
            c.num_heads,
            c.num_encoder_layers,
            c.num_decoder_layers,
            c.dim_feedforward,
            c.dropout,
            norm_first=c.norm_first,
        )
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size)

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor, name: str):
        check_ids(name, ids, embedding.num_embeddings)
        if not 1 <= ids.shape[1] <= self.config.block_size:
            raise ValueError(
                f"{name} must have 1 to block_size={self.config.block_size} "
                f"tokens, got {ids.shape[1]}"
            )
        x = embedding(ids) * math.sqrt(self.config.d_model)  # (B, T, d_model)
        return x + self.positions[: ids.shape[1]]  # (B, T, d_model)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src ids (B, T_src) -> memory (B, T_src, d_model), padding mask (B, T_src)."""
        src_real = src != self.config.pad_id  # (B, T_src), True = real token
        memory = self.transformer.encode(
            self._embed(self.src_embedding, src, "src"), src_key_padding_mask=src_real
        )
        return memory, src_real

    def decode(
        self, tgt: torch.Tensor, memory: torch.Tensor, src_real: torch.Tensor
    ) -> torch.Tensor:
        """tgt ids (B, T_tgt), starting with BOS -> logits (B, T_tgt, V), causally."""
        x = self._embed(self.tgt_embedding, tgt, "tgt")
        causal = causal_mask(tgt.shape[1], device=tgt.device)  # (T_tgt, T_tgt)
        h = self.transformer.decode(
            x,
            memory,
            tgt_mask=causal if self.config.causal_decoder else None,
            tgt_key_padding_mask=tgt != self.config.pad_id,
            memory_key_padding_mask=src_real,
        )
        return self.head(h)  # (B, T_tgt, tgt_vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing, every target position in one pass -> (B, T_tgt, V)."""
        memory, src_real = self.encode(src)
        return self.decode(tgt, memory, src_real)

    @torch.no_grad()
    def greedy_decode(
        self,
        src: torch.Tensor,
        max_new_tokens: int | None = None,
        eos_id: int | None = None,
    ) -> torch.Tensor:
        """Generate one token at a time, each time the most likely one (serial).

        Returns the generated ids (B, L), BOS excluded; after a sequence's end token
        the rest of its row is ``pad_id``. Stops when every sequence has ended or after
        `max_new_tokens` tokens (default: block_size - 1).
        """
        c = self.config
        max_new_tokens = c.block_size - 1 if max_new_tokens is None else max_new_tokens
        eos_id = c.eos_id if eos_id is None else eos_id
        if not 1 <= check_int("max_new_tokens", max_new_tokens) <= c.block_size - 1:
            raise ValueError(
                f"max_new_tokens must be between 1 and block_size - 1 = "
                f"{c.block_size - 1}, got max_new_tokens={max_new_tokens}"
            )
        memory, src_real = self.encode(src)
        B = src.shape[0]
        tokens = torch.full((B, 1), c.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for _ in range(max_new_tokens):
            logits = self.decode(tokens, memory, src_real)  # (B, t, V)
            next_token = logits[:, -1].argmax(-1).masked_fill(done, c.pad_id)  # (B,)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t+1)
            done |= next_token == eos_id
            if done.all():
                break
        return tokens[:, 1:]
