"""Tokenisers: characters, and a byte-level BPE trained locally (offline) on the corpus.

Used in chapter 6. Both have the same small interface: ``vocab_size``, ``encode(text)`` -> a 1-D
``torch.long`` tensor of ids, and ``decode(ids)`` -> text. The character tokeniser is chapter 1's
(:class:`utils.char_lm.CharTokenizer`); the BPE wraps the ``tokenizers`` package, whose trainer
runs in memory and needs no network.
"""

import torch

from utils.char_lm import CharTokenizer

__all__ = ["CharTokenizer", "BPETokenizer"]


class BPETokenizer:
    """Byte-level BPE (GPT-2's scheme): start from the 256 bytes, merge the most frequent pairs.

    Every string can be encoded (any byte is a token), and decoding gives it back exactly.
    """

    def __init__(self, texts, vocab_size: int = 1000, min_frequency: int = 2):
        from tokenizers import ByteLevelBPETokenizer
        if not isinstance(vocab_size, int) or vocab_size < 257:
            raise ValueError(f"vocab_size must be an int >= 257 (the 256 bytes and at least one merge), "
                             f"got vocab_size={vocab_size!r}")
        if isinstance(texts, str):
            texts = texts.splitlines(keepends=True)
        self._tokenizer = ByteLevelBPETokenizer()
        self._tokenizer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                                            show_progress=False)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor(self._tokenizer.encode(text).ids, dtype=torch.long)

    def encode_batch(self, texts: list[str]) -> list[torch.Tensor]:
        """Encode many texts at once (in parallel, in Rust): one id tensor per text."""
        return [torch.tensor(e.ids, dtype=torch.long) for e in self._tokenizer.encode_batch(list(texts))]

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]
        if ids and not 0 <= min(ids) <= max(ids) < self.vocab_size:
            raise ValueError(f"token ids must be in [0, vocab_size={self.vocab_size}), got ids from "
                             f"{min(ids)} to {max(ids)}")
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The pieces `text` is cut into, as readable strings (a space shows as 'Ġ', a newline as 'Ċ')."""
        return self._tokenizer.encode(text).tokens
