"""An RNN encoder-decoder, with or without Bahdanau attention (chapter 3).

Without attention (Sutskever et al. 2014, Cho et al. 2014), the encoder's last state is
all the decoder learns of the source: a fixed-size vector, whatever the source's length.
With attention (Bahdanau et al. 2015), each decoder step scores every encoder state
with the additive score of chapter 4, and reads their weighted sum, the *context*.
Both run the course's own ``LSTMCell`` one step at a time.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.attention import AdditiveScore
from utils.beam_search import beam_search_batch
from utils.checks import (
    check_bool,
    check_ids,
    check_int,
    check_same_batch,
    check_special_ids,
)
from utils.rnn import LSTMCell


@dataclass
class RNNSeq2SeqConfig:
    src_vocab_size: int  # source tokens
    tgt_vocab_size: int  # target tokens, including pad, bos and eos
    d_embed: int = 32  # width of the token embeddings
    hidden_size: int = 128  # width of the encoder's and the decoder's LSTM state
    attention: bool = True  # Bahdanau attention (True) or the last state only (False)
    d_attention: int = 64  # hidden width of the additive score
    reverse_source: bool = False  # read it backwards (Sutskever et al. 2014)
    pad_id: int = 0  # padding, in both vocabularies
    bos_id: int = 1  # target: beginning of sequence
    eos_id: int = 2  # target: end of sequence

    def __post_init__(self):
        check_int("src_vocab_size", self.src_vocab_size)
        check_int("tgt_vocab_size", self.tgt_vocab_size, minimum=3)
        for name in ("d_embed", "hidden_size", "d_attention"):
            check_int(name, getattr(self, name))
        check_bool("attention", self.attention)
        check_bool("reverse_source", self.reverse_source)
        check_special_ids(self)


class RNNSeq2Seq(nn.Module):
    """Source ids (B, S) and target ids (B, T) -> next-token logits (B, T, V).

    The decoder state is a tuple ``(h, c, memory, src_real)``: the LSTM's state, the
    encoder's states (B, S, H) and the source's padding mask (B, S), True = real token.
    """

    def __init__(self, config: RNNSeq2SeqConfig):
        super().__init__()
        c = self.config = config
        H, context = c.hidden_size, c.hidden_size if c.attention else 0
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_embed)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_embed)
        self.encoder = LSTMCell(c.d_embed, H)
        self.decoder = LSTMCell(c.d_embed + context, H)
        self.score = AdditiveScore(H, H, c.d_attention) if c.attention else None
        self.head = nn.Linear(H + context, c.tgt_vocab_size)

    def encode(self, src: torch.Tensor):
        """src ids (B, S) -> the decoder's first state. Padded steps change nothing."""
        check_ids("src", src, self.config.src_vocab_size)
        if self.config.reverse_source:  # the padding moves to the front: skipped
            src = src.flip(1)
        src_real = src != self.config.pad_id  # (B, S)
        if not src_real.any(dim=1).all():
            empty = (~src_real.any(dim=1)).nonzero()[:, 0].tolist()
            raise ValueError(f"src rows {empty} are all padding: nothing to encode")
        x = self.src_embedding(src)  # (B, S, d_embed)
        h = c = x.new_zeros(len(src), self.config.hidden_size)  # (B, H)
        states = []
        for t in range(src.shape[1]):
            h_new, c_new = self.encoder(x[:, t], (h, c))
            real = src_real[:, t, None]  # (B, 1): a padded step keeps the old state
            h, c = torch.where(real, h_new, h), torch.where(real, c_new, c)
            states.append(h)
        return h, c, torch.stack(states, dim=1), src_real  # memory: (B, S, H)

    def context(self, h: torch.Tensor, memory: torch.Tensor, src_real: torch.Tensor):
        """Bahdanau's context: the query h (B, H) against every encoder state.

        Returns the context (B, H) and the weights (B, S) over the source.
        """
        scores = self.score(h[:, None], memory)[:, 0]  # (B, S)
        weights = scores.masked_fill(~src_real, float("-inf")).softmax(-1)  # (B, S)
        return (weights[:, :, None] * memory).sum(1), weights  # (B, H), (B, S)

    def step(self, token: torch.Tensor, state):
        """One decoder step: token ids (B,) -> logits (B, V), new state, weights.

        The weights (B, S) are None without attention.
        """
        h, c, memory, src_real = state
        x = self.tgt_embedding(token)  # (B, d_embed)
        weights = None
        if self.score is not None:
            context, weights = self.context(h, memory, src_real)  # query: last state
            x = torch.cat([x, context], dim=-1)  # (B, d_embed + H)
        h, c = self.decoder(x, (h, c))
        out = h if weights is None else torch.cat([h, context], dim=-1)
        return self.head(out), (h, c, memory, src_real), weights

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights=False):
        """Teacher forcing: the decoder reads the true previous token at every step.

        Returns logits (B, T, V), and with ``need_weights=True`` also the attention
        weights (B, T, S) (None without attention).
        """
        check_ids("tgt", tgt, self.config.tgt_vocab_size)
        check_same_batch(src=src, tgt=tgt)
        check_bool("need_weights", need_weights)
        state = self.encode(src)
        logits, weights = [], []
        for t in range(tgt.shape[1]):
            step_logits, state, step_weights = self.step(tgt[:, t], state)
            logits.append(step_logits)
            weights.append(step_weights)
        logits = torch.stack(logits, dim=1)  # (B, T, V)
        if not need_weights:
            return logits
        return logits, None if self.score is None else torch.stack(weights, dim=1)

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, max_new_tokens: int = 16, eos_id: int | None = None
    ) -> torch.Tensor:
        """The most likely token at each step, fed back in (no teacher).

        Returns (B, L), BOS excluded; after a row's end token the rest is ``pad_id``.
        """
        c = self.config
        check_int("max_new_tokens", max_new_tokens)
        if eos_id is None:
            eos_id = c.eos_id
        elif not check_int("eos_id", eos_id, 0) < c.tgt_vocab_size:
            raise ValueError(f"eos_id={eos_id} is not below tgt_vocab_size")
        state = self.encode(src)
        token = torch.full((len(src),), c.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_new_tokens):
            logits, state, _ = self.step(token, state)
            token = logits.argmax(-1).masked_fill(done, c.pad_id)  # (B,)
            out.append(token)
            done |= token == eos_id
            if done.all():
                break
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def beam_decode(
        self, src: torch.Tensor, beam_size: int = 4, max_new_tokens: int = 16
    ) -> torch.Tensor:
        """Beam search for every source row at once: (B, L) ids like
        ``greedy_decode``."""
        c = self.config

        def step(tokens, state):
            logits, state, _ = self.step(tokens, state)
            return logits.log_softmax(-1), state  # (B * beam_size, V)

        found = beam_search_batch(
            step,
            self.encode(src),
            bos_id=c.bos_id,
            eos_id=c.eos_id,
            beam_size=beam_size,
            max_len=max_new_tokens,
        )
        rows = [ids for ids, _ in found]
        longest = max(len(r) for r in rows)
        return torch.tensor([r + [c.pad_id] * (longest - len(r)) for r in rows])
