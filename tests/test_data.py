"""utils.data: the shipped data sets and the seeded batch streams."""

import itertools

import pytest
import torch

from utils import data

# --- data sets ---------------------------------------------------------------------------------


def test_load_mnist():
    images, labels = data.load_mnist()
    assert images.shape == (5000, 28, 28) and labels.shape == (5000,)
    assert images.dtype == torch.float32 and 0.0 <= images.min() and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))
    assert data.load_mnist(10)[0].shape == (10, 28, 28)
    with pytest.raises(ValueError, match="n must be"):
        data.load_mnist(0)
    with pytest.raises(ValueError, match="n must be between 1 and 5000"):
        data.load_mnist(5001)


def test_load_mnist_returns_copies():
    images, _ = data.load_mnist(2)
    images.zero_()  # the cached arrays must not change
    assert data.load_mnist(2)[0].max() > 0


def test_load_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and images.max() == 1.0 and labels.max() == 9


def test_load_corpus_is_a_real_text_of_over_a_million_characters():
    text = data.load_corpus()
    assert len(text) > 1_000_000
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    genesis = data.load_corpus(["Genesis"])
    assert 100_000 < len(genesis) < len(text)
    with pytest.raises(ValueError, match="Narnia"):
        data.load_corpus(["Narnia"])
    with pytest.raises(ValueError, match="books must be a list of book names"):
        data.load_corpus("Genesis")  # a string, not a list of names


# --- endless_batches ------------------------------------------------------------------------------


def _sample(batch_size, generator):
    return torch.randint(100, (batch_size, 3), generator=generator)


def test_endless_batches_is_endless_and_reproducible_from_the_seed():
    a = list(itertools.islice(data.endless_batches(_sample, 4, seed=1), 5))
    b = list(itertools.islice(data.endless_batches(_sample, 4, seed=1), 5))
    c = list(itertools.islice(data.endless_batches(_sample, 4, seed=2), 5))
    assert all(x.shape == (4, 3) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not torch.equal(a[0], a[1])  # one generator, drawn on: fresh batches


def test_endless_batches_draws_from_a_given_generator_and_not_the_global_one():
    g = torch.Generator().manual_seed(1)
    before = torch.get_rng_state()
    first = next(data.endless_batches(_sample, 4, seed=g))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, next(data.endless_batches(_sample, 4, seed=1)))
    assert not torch.equal(
        next(data.endless_batches(_sample, 4, seed=g)), first
    )  # g moved on


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_endless_batches_rejects_bad_batch_sizes(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        data.endless_batches(_sample, batch_size)


# --- random_chunks --------------------------------------------------------------------------------


def test_random_chunks_are_windows_and_their_next_tokens():
    ids = torch.arange(50)
    x, y = next(data.random_chunks(ids, batch_size=6, block_size=8))
    assert x.shape == y.shape == (6, 8) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # y[b, t] is the id after x[b, t]
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous windows
    assert x.min() >= 0 and y.max() <= 49


def test_random_chunks_are_reproducible_and_seeded():
    ids = torch.randint(10, (200,), generator=torch.Generator().manual_seed(0))
    a = next(data.random_chunks(ids, 3, 5, seed=4))
    b = next(data.random_chunks(ids, 3, 5, seed=4))
    c = next(data.random_chunks(ids, 3, 5, seed=5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_random_chunks_reach_the_last_token():
    ids = torch.arange(6)
    seen = torch.cat([y for _, y in itertools.islice(data.random_chunks(ids, 8, 5), 4)])
    assert seen.max() == 5 and seen.min() == 1  # the only two windows


def test_random_chunks_rejects_bad_arguments():
    ids = torch.arange(10)
    with pytest.raises(ValueError, match=r"block_size must be in \[1, 9\]"):
        data.random_chunks(ids, 2, 10)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        data.random_chunks(ids, 2, 0)
    with pytest.raises(ValueError, match="ids must have dtype torch.int64"):
        data.random_chunks(ids.float(), 2, 3)
    with pytest.raises(ValueError, match=r"ids must have shape \(N\)"):
        data.random_chunks(ids.view(2, 5), 2, 3)
    with pytest.raises(ValueError, match="batch_size"):
        data.random_chunks(ids, 0, 3)


def test_split_corpus_holds_the_test_verses_out_of_both_texts():
    split = data.split_corpus(n_test=20, val_share=0.1, seed=3)
    assert list(split.book_verses) == list(data.BOOKS)
    test, labels = split.labelled("test")
    assert len(test) == 4 * 20 and labels.tolist() == [0] * 20 + [1] * 20 + [2] * 20 + [3] * 20
    train_lines = set(split.train_text.splitlines())
    val_lines = set(split.val_text.splitlines())
    assert not (set(test) & (train_lines | val_lines))
    # every other line is in exactly one text (some verses repeat word for word)
    kept = [line for line in data.load_corpus().splitlines() if line not in set(test)]
    n_kept = len(split.train_text.splitlines()) + len(split.val_text.splitlines())
    assert n_kept == len(kept)
    assert 0.08 < len(split.val_text.splitlines()) / n_kept < 0.12
    train, train_labels = split.labelled("train", 5)
    assert train == [v for verses in split.book_verses.values() for v in verses[20:25]]
    assert train_labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    again = data.split_corpus(n_test=20, val_share=0.1, seed=3)
    assert again.train_text == split.train_text  # seeded
    with pytest.raises(ValueError, match="part"):
        split.labelled("validation")
    with pytest.raises(ValueError, match="n_per_book"):
        split.labelled("train")
