"""A character-level language model: read text one character at a time, predict the
next.

Used in chapter 1 with the from-scratch RNN (and reusable with the LSTM of chapter 2).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks import check_choice, check_ids, check_int, check_positive
from utils.env import make_generator
from utils.rnn import LSTM, RNN
from utils.sampling import sample_next
from utils.tokenizers import CharTokenizer
from utils.train import cross_entropy


@dataclass
class CharLMConfig:
    vocab_size: int  # distinct characters
    d_embed: int = 32  # width of each character's embedding
    hidden_size: int = 128  # width of the recurrent state
    num_layers: int = 1  # stacked recurrent layers
    cell: str = "rnn"  # "rnn" or "lstm": our from-scratch modules

    def __post_init__(self):
        for name in ("vocab_size", "d_embed", "hidden_size", "num_layers"):
            check_int(name, getattr(self, name))
        check_choice("cell", self.cell, ("rnn", "lstm"))


class CharLM(nn.Module):
    """Embedding -> recurrent network -> linear head: (B, T) ids -> (B, T, vocab)
    logits.
    """

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        recurrent = RNN if config.cell == "rnn" else LSTM
        self.recurrent = recurrent(
            config.d_embed, config.hidden_size, config.num_layers
        )
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, ids, state=None):
        check_ids("ids", ids, self.config.vocab_size)
        output, state = self.recurrent(self.embed(ids), state)  # (B, T, H)
        return self.head(output), state  # (B, T, V)


def next_char_loss(model: CharLM, batch) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of predicting y from x."""
    x, y = batch
    return cross_entropy(model(x)[0], y)


@torch.no_grad()
def generate(
    model: CharLM,
    tokenizer: CharTokenizer,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed=0,
) -> str:
    """Continue `prompt` by sampling one character at a time, carrying the state."""
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    check_positive("temperature", temperature)
    if not prompt:
        raise ValueError("prompt must not be empty: the model needs a first character")
    generator = make_generator(seed)
    ids = tokenizer.encode(prompt)[None]  # (1, T)
    logits, state = model(ids)
    out = []
    for _ in range(max_new_tokens):
        next_id = sample_next(logits[:, -1], generator, temperature, top_k)  # (1, 1)
        out.append(int(next_id))
        logits, state = model(next_id, state)  # one step: (1, 1)
    return prompt + tokenizer.decode(out)
