"""utils.experiments.signal_recall (chapter 2): recall a signal across a lag, RNN against LSTM."""

import itertools

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments.signal_recall import (
    RecallConfig,
    draw_long_range,
    recall_accuracy,
    recall_batches,
    signal_recall,
)
from utils.rnn import LSTM, RNN, LastStepClassifier
from utils.train import classification_loss


def test_signal_recall_places_the_signal_lag_steps_before_the_end():
    config = RecallConfig(max_lag=9, num_signals=3, num_distractors=2)
    assert config.vocab_size == 5
    x, y = signal_recall(config, 50, torch.Generator().manual_seed(0), lag=4)
    tokens = x.argmax(-1)  # (B, T)
    assert x.shape == (50, 10, 5) and y.shape == (50,)
    assert torch.equal(x.sum(-1), torch.ones(50, 10))  # one-hot
    assert torch.equal(tokens[:, 10 - 1 - 4], y)
    others = torch.cat([tokens[:, :5], tokens[:, 6:]], dim=1)
    assert (others >= config.num_signals).all()  # everything else is a distractor
    assert set(y.tolist()) == {0, 1, 2}


def test_signal_recall_mixes_every_lag_when_none_is_given():
    config = RecallConfig(max_lag=5, num_signals=2, num_distractors=3)
    x, y = signal_recall(config, 300, torch.Generator().manual_seed(1))
    tokens = x.argmax(-1)
    signal_positions = (
        (tokens < config.num_signals).int().argmax(-1)
    )  # the only signal token
    lags = config.max_lag - signal_positions
    assert set(lags.tolist()) == {1, 2, 3, 4, 5}
    assert torch.equal(tokens[torch.arange(300), signal_positions], y)


def test_signal_recall_rejects_bad_arguments():
    config = RecallConfig(max_lag=9, num_signals=3, num_distractors=2)
    with pytest.raises(ValueError, match="lag must be in"):
        signal_recall(config, 2, torch.Generator(), lag=10)
    with pytest.raises(ValueError, match="lag must be an int >= 0"):
        signal_recall(config, 2, torch.Generator(), lag=-1)
    with pytest.raises(ValueError, match="batch_size"):
        signal_recall(config, 0, torch.Generator())
    with pytest.raises(
        ValueError, match="max_lag must be a positive int, got max_lag=0"
    ):
        RecallConfig(max_lag=0)
    with pytest.raises(ValueError, match="num_signals"):
        RecallConfig(num_signals=0)
    with pytest.raises(ValueError, match="num_distractors"):
        RecallConfig(num_distractors=1.5)


def test_recall_batches_are_endless_and_seeded():
    config = RecallConfig(max_lag=6)
    a = list(itertools.islice(recall_batches(config, 8, seed=3), 3))
    b = list(itertools.islice(recall_batches(config, 8, seed=3), 3))
    assert all(
        torch.equal(u[0], v[0]) and torch.equal(u[1], v[1]) for u, v in zip(a, b)
    )
    assert a[0][0].shape == (8, 7, config.vocab_size) and not torch.equal(
        a[0][0], a[1][0]
    )


@pytest.mark.parametrize("cell, recurrent", [("rnn", RNN), ("lstm", LSTM)])
def test_last_step_classifier_reads_the_last_step(cell, recurrent):
    torch.manual_seed(0)
    model = LastStepClassifier(cell, input_size=5, hidden_size=6, num_classes=3)
    assert isinstance(model.recurrent, recurrent)
    x = torch.randn(4, 7, 5)
    logits = model(x)
    assert logits.shape == (4, 3)
    output, _ = model.recurrent(x)
    torch.testing.assert_close(logits, model.head(output[:, -1]), atol=0, rtol=0)
    loss = classification_loss(model, (x, torch.tensor([0, 1, 2, 0])))
    assert loss.ndim == 0 and loss > 0


def test_last_step_classifier_sets_the_lstm_forget_bias():
    model = LastStepClassifier("lstm", 5, 4, 2, forget_bias=3.0)
    assert torch.all(model.recurrent.bias_ih_l0[4:8] == 3.0)
    with pytest.raises(ValueError, match="forget_bias is only for cell='lstm'"):
        LastStepClassifier("rnn", 5, 4, 2, forget_bias=1.0)
    with pytest.raises(ValueError, match="cell must be one of"):
        LastStepClassifier("gru", 5, 4, 2)
    with pytest.raises(ValueError, match="num_classes"):
        LastStepClassifier("rnn", 5, 4, 0)


def test_recall_accuracy_is_the_accuracy_on_fresh_sequences():
    config = RecallConfig(max_lag=4, num_signals=2, num_distractors=2)

    class Oracle(torch.nn.Module):  # reads the signal `lag` steps back
        def forward(self, x):
            return x[:, -1 - 2, : config.num_signals]

    assert recall_accuracy(Oracle(), config, lag=2, num_samples=64) == 1.0
    assert (
        recall_accuracy(Oracle(), config, lag=3, num_samples=64) < 1.0
    )  # wrong place: a guess
    torch.manual_seed(0)
    model = LastStepClassifier("rnn", config.vocab_size, 4, config.num_signals)
    assert recall_accuracy(model, config, 2, num_samples=50) == recall_accuracy(
        model, config, 2, num_samples=50
    )


def test_draw_long_range_needs_the_trained_results():
    results = {
        "lags": [1, 5, 10],
        "rnn": [1.0, 0.6, 0.3],
        ("lstm", 1.0): [1.0, 1.0, 0.9],
        "chance": 0.25,
    }
    fig = plt.figure()
    axes = draw_long_range(fig, lag=5, forget_bias=1.0, results=results)
    assert len(axes) == 2 and len(axes[0].get_lines()) >= 2
    with pytest.raises(ValueError, match="no trained LSTM with forget_bias=2.0"):
        draw_long_range(plt.figure(), forget_bias=2.0, results=results)
    plt.close("all")


def test_classifier_names_num_classes_in_its_message():
    with pytest.raises(ValueError) as error:
        LastStepClassifier("rnn", 2, 4, num_classes=0)
    assert str(error.value) == "num_classes must be a positive int, got num_classes=0"
