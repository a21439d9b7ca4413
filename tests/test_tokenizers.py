"""utils.tokenizers: characters and a byte-level BPE, both round-trip exactly."""

import numpy as np
import pytest
import torch

from utils.data import load_corpus
from utils.tokenizers import BPETokenizer, CharTokenizer


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# --- characters -----------------------------------------------------------------------------------


def test_char_tokenizer_round_trip_and_vocabulary():
    tokenizer = CharTokenizer("in the beginning\n")
    assert (
        tokenizer.chars == sorted(set("in the beginning\n"))
        and tokenizer.vocab_size == 9
    )
    ids = tokenizer.encode("the beginning")
    assert ids.dtype == torch.long and ids.shape == (13,)
    assert tokenizer.decode(ids) == "the beginning"
    assert tokenizer.decode(ids.tolist()) == "the beginning"  # a list of ints too
    assert tokenizer.decode([]) == "" and tokenizer.encode("").shape == (0,)
    assert tokenizer.decode(list(ids)) == "the beginning"  # a list of 0-d tensors
    assert tokenizer.decode(np.array(ids.tolist())) == "the beginning"  # NumPy ints


def test_char_tokenizer_round_trip_on_the_corpus(corpus):
    tok = CharTokenizer(corpus)
    sample = corpus[:5000]
    assert tok.decode(tok.encode(sample)) == sample


def test_char_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        CharTokenizer("")
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        CharTokenizer(["a", "b"])
    tokenizer = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['Z'\]"):
        tokenizer.encode("aZ")
    with pytest.raises(ValueError, match="text must be a str"):
        tokenizer.encode(b"ab")
    with pytest.raises(
        ValueError,
        match=r"token ids must be in \[0, vocab_size=3\), got ids from 0 to 3",
    ):
        tokenizer.decode([0, 3])
    with pytest.raises(ValueError, match="got ids from -1"):
        tokenizer.decode(torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="1-D tensor of ints"):
        tokenizer.decode(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D tensor of ints"):
        tokenizer.decode(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="ids must be ints"):
        tokenizer.decode([True, 0])
    with pytest.raises(ValueError, match="ids must be ints"):
        tokenizer.decode([torch.tensor(1.0)])
    with pytest.raises(ValueError, match="ids must be ints"):
        tokenizer.decode([1.0])


# --- byte-level BPE ---------------------------------------------------------------------------------


def test_bpe_round_trip_is_exact_on_the_whole_corpus(corpus):
    bpe = BPETokenizer(corpus[:300_000], vocab_size=600)
    assert bpe.vocab_size == 600
    lines = corpus.splitlines(keepends=True)
    ids = torch.cat(bpe.encode_batch(lines))
    assert len(ids) < len(corpus) / 2  # it compresses (merges were learned)
    assert bpe.decode(ids) == corpus  # every verse of the corpus, exactly
    odd = "Ünïcode ✓, tabs\tand  spaces \n"  # bytes never seen in training still round-trip
    assert bpe.decode(bpe.encode(odd)) == odd
    assert (
        "".join(bpe.tokens("In the beginning")).replace("Ġ", " ") == "In the beginning"
    )
    with pytest.raises(ValueError, match="vocab_size=100"):
        BPETokenizer(corpus[:1000], vocab_size=100)
    with pytest.raises(ValueError, match="vocab_size=600"):
        bpe.decode([600])
    with pytest.raises(ValueError, match="texts must be a list of str"):
        bpe.encode_batch("a string")
    with pytest.raises(ValueError, match="text must be a str"):
        bpe.encode(3)
