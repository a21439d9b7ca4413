"""utils.experiments.bigram (chapter 7): the next-token-counts baseline."""

import math

import pytest
import torch

from utils.experiments.bigram import bigram_loss


def test_bigram_loss_matches_counts():
    train = torch.tensor([0, 1, 0, 1, 0, 2])
    val = torch.tensor([0, 1, 0, 2])
    # from the counts: p(1|0) = 2/3, p(0|1) = 1, p(2|0) = 1/3 (no smoothing)
    expected = -(math.log(2 / 3) + math.log(1.0) + math.log(1 / 3)) / 3
    assert abs(bigram_loss(train, val, vocab_size=3, smoothing=0.0) - expected) < 1e-6


def test_smoothing_spreads_mass_over_the_vocabulary():
    train = torch.tensor([0, 1, 0, 1, 0, 2])
    assert (
        bigram_loss(train, torch.tensor([1, 2]), 3, smoothing=0.0) == math.inf
    )  # p(2 | 1) = 0
    # p(2 | 2) = (0 + s) / (0 + 3 s) = 1/3: an unseen context is uniform
    assert bigram_loss(train, torch.tensor([2, 2]), 3, smoothing=1.0) == pytest.approx(
        math.log(3)
    )
    # p(1 | 0) = (2 + 1) / (3 + 3)
    assert bigram_loss(train, torch.tensor([0, 1]), 3, smoothing=1.0) == pytest.approx(
        -math.log(0.5)
    )


@pytest.mark.parametrize(
    "train, val, vocab_size, smoothing, match",
    [
        (
            torch.tensor([0]),
            torch.tensor([0, 1]),
            3,
            0.01,
            "train_ids needs at least 2 tokens",
        ),
        (
            torch.tensor([0, 1]),
            torch.tensor([0, 3]),
            3,
            0.01,
            r"val_ids must be ids in \[0, vocab_size=3\)",
        ),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), 3, 0.01, "train_ids must be ids"),
        (
            torch.tensor([[0, 1]]),
            torch.tensor([0, 1]),
            3,
            0.01,
            r"train_ids must have shape \(N\)",
        ),
        (
            torch.tensor([0.0, 1.0]),
            torch.tensor([0, 1]),
            3,
            0.01,
            "train_ids must have dtype torch.int64",
        ),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), 0, 0.01, "vocab_size"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), 3, -1.0, "smoothing"),
    ],
)
def test_bigram_loss_rejects_bad_input(train, val, vocab_size, smoothing, match):
    with pytest.raises(ValueError, match=match):
        bigram_loss(train, val, vocab_size, smoothing)


def test_smoothing_is_named_in_its_message():
    with pytest.raises(ValueError) as error:
        bigram_loss(torch.tensor([0, 1, 2]), torch.tensor([1, 2]), 3, smoothing=-1.0)
    assert str(error.value) == "smoothing must be in [0, inf], got smoothing=-1.0"
