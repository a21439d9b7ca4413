"""utils.experiments.verse_books (chapter 7): the verses, fine-tuning and features."""

import pytest
import torch

from utils.data import CorpusSplit
from utils.experiments.verse_books import (
    character_counts,
    finetune,
    verse_features,
    verse_set,
)
from utils.gpt import GPT, GPTClassifier, GPTConfig
from utils.tokenizers import CharTokenizer
from utils.train import TrainConfig

BOOKS = {
    "A": [f"aa {i} alpha" for i in range(6)],
    "B": [f"bb {i} beta, a much longer verse" for i in range(6)],
}
SPLIT = CorpusSplit("", "", BOOKS, n_test=2)
CHARS = CharTokenizer("".join(v for verses in BOOKS.values() for v in verses))
CONFIG = GPTConfig(vocab_size=CHARS.vocab_size, block_size=16, num_layers=1,
                   num_heads=2, d_model=16)


def test_verse_set_pads_cuts_and_labels():
    test = verse_set(SPLIT, CHARS, "test", length=16)
    assert test.labels.tolist() == [0, 0, 1, 1]
    assert test.lengths.tolist() == [len("aa 0 alpha"), len("aa 1 alpha"), 16, 16]
    assert CHARS.decode(test.ids[0, :10]) == "aa 0 alpha"
    assert test.ids[0, 10:].eq(0).all()  # right padding
    assert CHARS.decode(test.ids[2]) == "bb 0 beta, a muc"  # cut to 16 characters
    train = verse_set(SPLIT, CHARS, "train", 3, length=16)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert CHARS.decode(train.ids[0, :10]) == "aa 2 alpha"  # after the test verses


def test_finetune_follows_its_seed_and_learns_an_easy_split():
    train, test = verse_set(SPLIT, CHARS, "train", 4, 16), verse_set(SPLIT, CHARS, "test", length=16)
    short = TrainConfig(steps=3, lr=1e-2)
    weights = GPT(CONFIG).state_dict()
    run = lambda pretrained, seed: finetune(  # noqa: E731
        CONFIG, pretrained, train, test, seed=seed, finetune_config=short)
    before = torch.get_rng_state()
    assert run(weights, 0) == run(weights, 0)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is untouched
    assert 0 <= run(None, 1) <= 1
    # the two books differ in their first two characters: a longer run learns them
    long = TrainConfig(steps=60, lr=3e-3)
    assert finetune(CONFIG, None, train, test, pooling="last", finetune_config=long) == 1


def test_verse_features_are_the_classifier_features():
    torch.manual_seed(0)
    gpt = GPT(CONFIG).eval()
    verses = verse_set(SPLIT, CHARS, "test", length=16)
    for pooling in ("mean", "last"):
        expected = GPTClassifier(gpt, 2, pooling).features(verses.ids, verses.lengths)
        torch.testing.assert_close(verse_features(gpt, verses, pooling), expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="length must be a positive int"):
        verse_set(SPLIT, CHARS, "test", length=0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        verse_features(GPT(CONFIG), verse_set(SPLIT, CHARS, "test", length=16), "max")


def test_character_counts_are_the_shares_of_the_real_characters():
    verses = verse_set(SPLIT, CHARS, "test", length=16)
    counts = character_counts(verses, CHARS.vocab_size)
    assert counts.shape == (4, CHARS.vocab_size)
    torch.testing.assert_close(counts.sum(1), torch.ones(4))  # padding is not counted
    first = CHARS.decode(verses.ids[0, : verses.lengths[0]])  # "aa 0 alpha"
    a = CHARS.encode("a")[0]
    assert counts[0, a] == first.count("a") / len(first)
