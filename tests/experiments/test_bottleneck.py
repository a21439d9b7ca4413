"""utils.experiments.bottleneck (chapter 3): copying random sequences, and the width at
which a model without attention has as many parameters as one with it."""

import itertools

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments.bottleneck import (
    COPY_SYMBOLS,
    COPY_VOCAB,
    copy_accuracy,
    copy_batch,
    copy_batches,
    draw_copy_by_length,
    matched_width,
)
from utils.experiments.number_words import BOS, EOS, PAD, seq2seq_loss
from utils.rnn_seq2seq import RNNSeq2Seq, RNNSeq2SeqConfig
from utils.train import count_parameters


def test_copy_batch_lays_out_source_and_target_like_number_words():
    lengths = [3, 1, 5]
    src, tgt_in, tgt_out = copy_batch(lengths, torch.Generator().manual_seed(0))
    assert src.shape == (3, 5) and tgt_in.shape == tgt_out.shape == (3, 6)
    for row, n in enumerate(lengths):
        symbols = src[row, :n]
        assert ((symbols >= 3) & (symbols < COPY_VOCAB)).all()
        assert (src[row, n:] == PAD).all()
        assert tgt_in[row, 0] == BOS and torch.equal(tgt_in[row, 1 : n + 1], symbols)
        assert torch.equal(tgt_out[row, :n], symbols) and tgt_out[row, n] == EOS
        assert (tgt_in[row, n + 1 :] == PAD).all() and (tgt_out[row, n + 1 :] == PAD).all()


def test_copy_batch_uses_every_symbol():
    src, _, _ = copy_batch([400], torch.Generator().manual_seed(0))
    assert set(src[0].tolist()) == set(range(3, 3 + COPY_SYMBOLS))


@pytest.mark.parametrize("lengths", [[], [2, 0], [2.0]])
def test_copy_batch_refuses_empty_or_non_positive_lengths(lengths):
    with pytest.raises(ValueError, match="length"):
        copy_batch(lengths)


def test_copy_batches_are_seeded_and_keep_the_lengths_in_range():
    first = list(itertools.islice(copy_batches(2, 5, batch_size=64, seed=3), 4))
    again = list(itertools.islice(copy_batches(2, 5, batch_size=64, seed=3), 4))
    other = next(copy_batches(2, 5, batch_size=64, seed=4))
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(first[0][0], other[0])
    lengths = torch.cat([(src != PAD).sum(1) for src, _, _ in first])
    assert lengths.min() == 2 and lengths.max() == 5  # both ends are drawn


def test_copy_batches_refuse_max_below_min():
    with pytest.raises(ValueError, match="max_length must be at least min_length"):
        copy_batches(5, 4)


class _Copier:
    """A stand-in model whose greedy output is the source plus <eos>, with `wrong`
    target positions changed, and possibly stopping early."""

    def __init__(self, wrong=(), stop_after=None):
        self.wrong, self.stop_after = wrong, stop_after

    def eval(self):
        return self

    def greedy_decode(self, src, max_new_tokens):
        out = torch.cat([src, torch.full((len(src), 1), EOS)], dim=1)
        assert out.shape[1] == max_new_tokens
        for position in self.wrong:
            out[:, position] = 3 + (out[:, position] - 2) % COPY_SYMBOLS  # another id
        return out if self.stop_after is None else out[:, : self.stop_after]


def test_copy_accuracy_scores_each_target_position():
    assert copy_accuracy(_Copier(), 4, n=10) == 1.0
    assert copy_accuracy(_Copier(wrong=[1]), 4, n=10) == pytest.approx(4 / 5)
    assert copy_accuracy(_Copier(wrong=[4]), 4, n=10) == pytest.approx(4 / 5)  # <eos>
    # an output that stops short counts its missing positions as wrong
    assert copy_accuracy(_Copier(stop_after=2), 4, n=10) == pytest.approx(2 / 5)


def test_copy_accuracy_is_fixed_by_its_seed():
    torch.manual_seed(0)
    model = RNNSeq2Seq(RNNSeq2SeqConfig(COPY_VOCAB, COPY_VOCAB, hidden_size=8))
    assert copy_accuracy(model, 6, n=50) == copy_accuracy(model, 6, n=50)
    assert 0.0 <= copy_accuracy(model, 6, n=50, seed=1) <= 1.0


@pytest.mark.parametrize("hidden", [16, 64])
def test_matched_width_gives_the_nearest_parameter_count(hidden):
    config = RNNSeq2SeqConfig(COPY_VOCAB, COPY_VOCAB, d_embed=8, hidden_size=hidden)
    target = count_parameters(RNNSeq2Seq(config))
    width = matched_width(config)

    def gap(h):
        plain = RNNSeq2SeqConfig(
            COPY_VOCAB, COPY_VOCAB, d_embed=8, hidden_size=h, attention=False
        )
        return abs(count_parameters(RNNSeq2Seq(plain)) - target)

    assert width > hidden  # attention's extra parameters buy a wider state
    assert gap(width) <= min(gap(width - 1), gap(width + 1))


def test_a_copy_model_learns_short_sequences():
    """The chapter's set-up, small: 120 steps copy 2-3 symbols almost perfectly."""
    torch.manual_seed(0)
    model = RNNSeq2Seq(RNNSeq2SeqConfig(COPY_VOCAB, COPY_VOCAB, hidden_size=32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for batch in itertools.islice(copy_batches(2, 3, batch_size=32, seed=0), 120):
        loss = seq2seq_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert copy_accuracy(model, 2, n=100) > 0.9


def test_draw_copy_by_length_plots_each_models_mean_and_band():
    lengths = [2, 4, 6]
    accuracies = {"a": [[1.0, 0.8, 0.6], [0.9, 0.7, 0.5]], "b": [[1.0, 0.5, 0.3]] * 2}
    fig, ax = plt.subplots()
    draw_copy_by_length(ax, lengths, accuracies)
    lines = [line for line in ax.get_lines() if line.get_label() in accuracies]
    assert [line.get_label() for line in lines] == ["a", "b"]
    assert lines[0].get_ydata() == pytest.approx([0.95, 0.75, 0.55])
    assert len(ax.collections) == 2  # one band per model
    plt.close(fig)
