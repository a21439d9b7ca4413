"""utils.experiments.linear_probe (chapters 7 and 9)."""

import pytest
import torch
import torch.nn.functional as F

from utils.experiments.linear_probe import probe_accuracy


def test_probe_accuracy_is_seeded_and_reads_linearly_separable_features():
    torch.manual_seed(0)
    labels = torch.arange(200) % 4
    x = F.one_hot(labels, 4).float() + 0.1 * torch.randn(200, 4)
    acc = probe_accuracy(x[:100], labels[:100], x[100:], labels[100:], 40, seed=0)
    assert acc == 1.0
    noise = torch.randn(200, 4)
    a = probe_accuracy(noise[:100], labels[:100], noise[100:], labels[100:], 30, seed=1)
    assert a == probe_accuracy(noise[:100], labels[:100], noise[100:], labels[100:],
                               30, seed=1)
    assert a < 0.6
    with pytest.raises(ValueError, match="n_labels"):
        probe_accuracy(x[:100], labels[:100], x[100:], labels[100:], 101)


def test_probe_accuracy_needs_two_labels_of_two_classes():
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"n_labels must be in \[2, 6\], got 1"):
        probe_accuracy(x, y, x, y, n_labels=1)
    with pytest.raises(ValueError, match="all of one class"):
        probe_accuracy(x, torch.zeros(6, dtype=torch.long), x, y, n_labels=3)
    assert 0 <= probe_accuracy(x, y, x, y, n_labels=6) <= 1
