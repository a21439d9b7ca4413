"""BERT: an encoder-only Transformer, pretrained by masked-language modelling.

Used in chapter 8. A BERT layer *is* chapter 6's post-norm :class:`EncoderLayer`, with
GELU (erf) and LayerNorm eps 1e-12; the model adds BERT's three embeddings (word,
position, token type) and a LayerNorm in front, and no causal mask: every token sees
every other real token. :meth:`Bert.from_hf` copies a Hugging Face ``BertModel`` one
tensor at a time; :data:`HF_NAMES` lists where each of its tensors goes.

Masks follow the course's convention, which is also Hugging Face's for BERT:
``attention_mask`` is (B, T) with True (or 1) for a real token and False (or 0) for
padding. BERT's corruption for masked-language modelling is
:func:`utils.data.mask_tokens`; the mean of its features over the real tokens is
:func:`utils.pooling.mean_pool`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from utils import convert
from utils.checks import (
    check_attention_mask,
    check_divisible,
    check_ids,
    check_int,
    check_number,
    check_probability,
    check_tensor,
)
from utils.convert import build_like, check_source, check_supported, copy_weights
from utils.train import cross_entropy
from utils.transformer import EncoderLayer, normal_init


@dataclass
class BertConfig:
    vocab_size: int = 1000  # distinct tokens, special ones included
    block_size: int = 128  # longest sequence it reads (learned positions)
    type_vocab_size: int = 2  # segment ids (sentence A and B)
    num_layers: int = 4  # encoder layers
    num_heads: int = 4  # attention heads per layer
    d_model: int = 128  # width of every token's representation
    dim_feedforward: int = 512  # hidden width of the feed-forward sub-layer
    dropout: float = 0.0  # dropout probability everywhere (BERT: 0.1)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon

    def __post_init__(self):
        for name in (
            "vocab_size",
            "block_size",
            "type_vocab_size",
            "num_layers",
            "num_heads",
            "d_model",
            "dim_feedforward",
        ):
            check_int(name, getattr(self, name))
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        check_probability("dropout", self.dropout)
        check_number("layer_norm_eps", self.layer_norm_eps, low=0, low_open=True)


class BertEmbeddings(nn.Module):
    """word + position + token type, then LayerNorm and dropout: (B, T) -> (B, T, d)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        d = config.d_model
        self.word = nn.Embedding(config.vocab_size, d)
        self.position = nn.Embedding(config.block_size, d)
        self.token_type = nn.Embedding(config.type_vocab_size, d)
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids, token_type_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))  # (B, T, d)


class Bert(nn.Module):
    """Embeddings, then post-norm encoder layers with full (bidirectional) attention.

    forward(input_ids (B, T), attention_mask (B, T) or None, token_type_ids (B, T) or
    None) -> the last hidden state (B, T, d). For each layer's attention weights, use
    ``record_attention(model)``.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.d_model,
                config.num_heads,
                config.dim_feedforward,
                config.dropout,
                layer_norm_eps=config.layer_norm_eps,
                activation="gelu",
            )
            for _ in range(config.num_layers)
        )
        self.apply(normal_init)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        self._check_inputs(input_ids, attention_mask, token_type_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # every token in segment A
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, d)
        mask = None
        if attention_mask is not None:  # keys that are padding are hidden from all
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, mask)
        return x  # (B, T, d)

    def _check_inputs(self, input_ids, attention_mask, token_type_ids) -> None:
        config = self.config
        check_ids("input_ids", input_ids, config.vocab_size)
        B, T = input_ids.shape
        if not 1 <= T <= config.block_size:
            raise ValueError(
                f"sequence length {T} must be between 1 and "
                f"block_size={config.block_size}"
            )
        if token_type_ids is not None:
            check_tensor("token_type_ids", token_type_ids, (B, T), dtype=torch.long)
            if (
                token_type_ids.min() < 0
                or token_type_ids.max() >= config.type_vocab_size
            ):
                raise ValueError(
                    f"token_type_ids must be in [0, type_vocab_size="
                    f"{config.type_vocab_size}), got {token_type_ids.unique().tolist()}"
                )
        if attention_mask is not None:
            check_attention_mask(attention_mask, (B, T))

    @classmethod
    def from_hf(cls, model) -> "Bert":
        """The same encoder, with the weights of a Hugging Face ``BertModel`` (see
        :func:`bert_from_hf`). Its pooler is not needed: the chapters pool."""
        check_source(model, "BertModel")
        return bert_from_hf(cls, model.config.to_dict(), model.state_dict(), model)

    @classmethod
    def from_files(cls, directory) -> "Bert":
        """A BERT from a folder with Hugging Face's ``config.json`` and
        ``model.safetensors`` (e.g. a model shipped inside a Python package), of a
        ``BertModel`` or of a model that has one under ``bert.``. In eval mode."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise ValueError(
                f"from_files needs a BERT (model_type 'bert' in config.json), got "
                f"model_type={config.get('model_type')!r}"
            )
        weights = load_file(directory / "model.safetensors")
        if "bert.embeddings.word_embeddings.weight" in weights:  # e.g. an MLM's
            weights = {k.removeprefix("bert."): w for k, w in weights.items()}
        return bert_from_hf(cls, config, weights, None)


class MaskedLMHead(nn.Module):
    """BERT's MLM head: dense, GELU, LayerNorm, then a decoder to the vocabulary whose
    weight is the word embedding (tied) and whose bias is its own."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        d = config.d_model
        self.dense = nn.Linear(d, d)
        self.activation = nn.GELU()
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(d, config.vocab_size)
        self.decoder.weight = word_embeddings.weight  # weight tying

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.activation(self.dense(h))))  # (B, T, V)


class BertForMaskedLM(nn.Module):
    """`Bert` plus the MLM head.

    forward(input_ids, attention_mask=None, token_type_ids=None, labels=None) returns
    (logits (B, T, vocab_size), loss), like :class:`GPT`: the loss is the mean
    cross-entropy at the positions whose label is not -100, or None without labels.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.head = MaskedLMHead(config, self.bert.embeddings.word)
        normal_init(self.head.dense)  # (the decoder's weight is the embedding's)
        nn.init.zeros_(self.head.decoder.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        logits = self.head(self.bert(input_ids, attention_mask, token_type_ids))
        loss = None if labels is None else cross_entropy(logits, labels)
        return logits, loss  # (B, T, V), scalar or None

    @classmethod
    def from_hf(cls, model) -> "BertForMaskedLM":
        """The same model, with the weights of a Hugging Face ``BertForMaskedLM``."""
        check_source(model, "BertForMaskedLM")
        theirs = model.state_dict()
        word = theirs["bert.embeddings.word_embeddings.weight"]
        if not torch.equal(theirs["cls.predictions.decoder.weight"], word):
            raise ValueError(
                "from_hf needs the MLM decoder tied to the word embeddings "
                "(tie_word_embeddings=True): ours is tied"
            )
        return bert_from_hf(cls, model.config.to_dict(), theirs, model)


# Where each of Hugging Face's tensors goes: (their name, ours), per layer and outside.
HF_NAMES = {
    "layer": [
        ("attention.self.query", "self_attn.w_q"),
        ("attention.self.key", "self_attn.w_k"),
        ("attention.self.value", "self_attn.w_v"),
        ("attention.output.dense", "self_attn.w_o"),
        ("attention.output.LayerNorm", "self_attn_sublayer.norm"),
        ("intermediate.dense", "feed_forward.linear1"),
        ("output.dense", "feed_forward.linear2"),
        ("output.LayerNorm", "feed_forward_sublayer.norm"),
    ],
    "model": [
        ("embeddings.word_embeddings", "embeddings.word"),
        ("embeddings.position_embeddings", "embeddings.position"),
        ("embeddings.token_type_embeddings", "embeddings.token_type"),
        ("embeddings.LayerNorm", "embeddings.norm"),
        ("cls.predictions.transform.dense", "head.dense"),
        ("cls.predictions.transform.LayerNorm", "head.norm"),
        ("cls.predictions.bias", "head.decoder.bias"),
    ],
}


def hf_name(ours: str, prefix: str = "") -> str:
    """Hugging Face's name for one of our tensors, e.g. 'layers.0.self_attn.w_q.weight'
    -> 'encoder.layer.0.attention.self.query.weight'. `prefix` is 'bert.' for an MLM,
    whose head is outside it."""
    outside = [
        (t if t.startswith("cls.") else prefix + t, m) for t, m in HF_NAMES["model"]
    ]
    table = {"layer": HF_NAMES["layer"], "model": outside}
    return convert.hf_name(
        ours.removeprefix("bert."), table, prefix + "encoder.layer.{}."
    )


def bert_from_hf(cls, hf: dict, theirs: dict, source: nn.Module | None):
    """Our `cls` (:class:`Bert` or :class:`BertForMaskedLM`) from a Hugging Face
    config dict, with the tensors `theirs` copied in, in the mode of the `source`
    model (eval mode without one)."""
    check_supported(
        {
            "hidden_act": (hf.get("hidden_act"), "gelu"),
            "position_embedding_type": (
                hf.get("position_embedding_type", "absolute"),
                "absolute",
            ),
            "is_decoder": (hf.get("is_decoder", False), False),
            "add_cross_attention": (hf.get("add_cross_attention", False), False),
            "attention_probs_dropout_prob": (
                hf.get("attention_probs_dropout_prob"),
                hf.get("hidden_dropout_prob"),
            ),
        },
        "ours has one dropout, GELU with erf, absolute positions and no decoder",
    )
    config = BertConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf["max_position_embeddings"],
        type_vocab_size=hf["type_vocab_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        d_model=hf["hidden_size"],
        dim_feedforward=hf["intermediate_size"],
        dropout=hf["hidden_dropout_prob"],
        layer_norm_eps=hf["layer_norm_eps"],
    )
    prefix = "bert." if cls is BertForMaskedLM else ""
    word = theirs[prefix + "embeddings.word_embeddings.weight"]
    training = source is not None and source.training
    ours = build_like(lambda: cls(config), word, training)
    return copy_weights(
        ours, theirs, lambda name: hf_name(name, prefix), skip=("head.decoder.weight",)
    )
