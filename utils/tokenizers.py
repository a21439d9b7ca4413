"""Tokenisers: characters, and a byte-level BPE trained locally (offline) on the corpus.

Used in chapters 1 and 7. Both have the same small interface: ``vocab_size``,
``encode(text)`` -> a 1-D ``torch.long`` tensor of ids, and ``decode(ids)`` -> text. The
BPE wraps the ``tokenizers`` package, whose trainer runs in memory and needs no network.
"""

import numbers

import torch

from utils.checks import check_int


def _id_list(ids, vocab_size: int) -> list[int]:
    """Token ids (a 1-D tensor or a sequence of ints) as a list, checked."""
    if isinstance(ids, torch.Tensor):
        if ids.ndim != 1 or ids.is_floating_point():
            raise ValueError(
                f"ids must be a 1-D tensor of ints, got shape "
                f"{tuple(ids.shape)} and dtype {ids.dtype}"
            )
        ids = ids.tolist()
    ids = [i.item() if isinstance(i, torch.Tensor) and i.ndim == 0 else i for i in ids]
    if not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in ids
    ):
        raise ValueError(f"ids must be ints, got {ids[:5]}")
    ids = [int(i) for i in ids]
    if ids and not 0 <= min(ids) <= max(ids) < vocab_size:
        raise ValueError(
            f"token ids must be in [0, vocab_size={vocab_size}), got ids from "
            f"{min(ids)} to {max(ids)}"
        )
    return ids


class CharTokenizer:
    """Characters <-> ids; the vocabulary is every character of the training text."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError(
                f"text must be a non-empty str (the training text), "
                f"got {type(text).__name__}"
            )
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}")
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in _id_list(ids, self.vocab_size))


class BPETokenizer:
    """Byte-level BPE (GPT-2's): start from the 256 bytes, merge the commonest pairs.

    Every string can be encoded (any byte is a token); decoding gives it back exactly.
    """

    def __init__(self, texts, vocab_size: int = 1000, min_frequency: int = 2):
        from tokenizers import ByteLevelBPETokenizer

        check_int("vocab_size", vocab_size, minimum=257)  # 256 bytes and one merge
        if isinstance(texts, str):
            texts = texts.splitlines(keepends=True)
        self._tokenizer = ByteLevelBPETokenizer()
        self._tokenizer.train_from_iterator(
            texts,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
        )

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor(self._tokenizer.encode(text).ids, dtype=torch.long)

    def encode_batch(self, texts: list[str]) -> list[torch.Tensor]:
        """Encode many texts at once (in parallel, in Rust): one id tensor per text."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of str")
        return [
            torch.tensor(e.ids, dtype=torch.long)
            for e in self._tokenizer.encode_batch(list(texts))
        ]

    def decode(self, ids) -> str:
        ids = _id_list(ids, self.vocab_size)
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The pieces `text` is cut into (a space shows as 'Ġ', a newline as 'Ċ')."""
        return self._tokenizer.encode(text).tokens
