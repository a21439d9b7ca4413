"""A character-level language model: read text one character at a time, predict the next one.

Used in chapter 1 with the from-scratch RNN (and reusable with the LSTM of chapter 2).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.rnn import LSTM, RNN


class CharTokenizer:
    """Characters <-> integer ids; the vocabulary is every character of the training text."""

    def __init__(self, text: str):
        if not text:
            raise ValueError("text must not be empty")
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}")
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def random_chunks(ids: torch.Tensor, batch_size: int, block_size: int, seed: int = 0):
    """Endless batches of (x, y): random windows of `block_size` ids and the same shifted by one."""
    if not 1 <= block_size < len(ids):
        raise ValueError(f"block_size must be in [1, {len(ids) - 1}], got block_size={block_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got batch_size={batch_size}")
    g = torch.Generator().manual_seed(seed)
    while True:
        start = torch.randint(len(ids) - block_size, (batch_size,), generator=g)
        offsets = start[:, None] + torch.arange(block_size)          # (B, T)
        yield ids[offsets], ids[offsets + 1]                          # (B, T), (B, T)


@dataclass
class CharLMConfig:
    vocab_size: int
    embed_size: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    cell: str = "rnn"        # "rnn" or "lstm": our from-scratch modules

    def __post_init__(self):
        if self.cell not in ("rnn", "lstm"):
            raise ValueError(f"cell must be 'rnn' or 'lstm', got cell={self.cell!r}")


class CharLM(nn.Module):
    """Embedding -> recurrent network -> linear head: (B, T) ids -> (B, T, vocab) logits."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        recurrent = RNN if config.cell == "rnn" else LSTM
        self.recurrent = recurrent(config.embed_size, config.hidden_size, config.num_layers)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, ids, state=None):
        output, state = self.recurrent(self.embed(ids), state)        # (B, T, H)
        return self.head(output), state                               # (B, T, V)


def next_char_loss(model: CharLM, batch) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of predicting y from x."""
    x, y = batch
    logits, _ = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def generate(model: CharLM, tokenizer: CharTokenizer, prompt: str, length: int = 200,
             temperature: float = 1.0, seed: int = 0) -> str:
    """Continue `prompt` by sampling one character at a time, carrying the recurrent state."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got temperature={temperature}")
    g = torch.Generator().manual_seed(seed)
    ids = tokenizer.encode(prompt)[None]                              # (1, T)
    logits, state = model(ids)
    out = []
    for _ in range(length):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        next_id = torch.multinomial(probs, 1, generator=g)            # (1,)
        out.append(int(next_id))
        logits, state = model(next_id[None], state)                   # one step: (1, 1)
    return prompt + tokenizer.decode(out)
