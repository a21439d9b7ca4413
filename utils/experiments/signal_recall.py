"""A synthetic long-range task (chapter 2): recall a signal token across a lag of
distractors.

A sequence has `max_lag + 1` tokens: random *distractor* tokens with one *signal* token
(one of `num_signals`) placed `lag` steps before the end. After the last token the model
must say which signal it saw. Chance is 1 / num_signals. The only way to solve it is to
carry the signal for `lag` steps, so accuracy against lag measures how far back a
recurrent network remembers. Training mixes every lag from 1 to `max_lag`; evaluation
measures each lag on its own.
"""

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks import check_int
from utils.data import endless_batches
from utils.env import make_generator
from utils.experiments.gradient_flow import lstm_gradient_flow
from utils.train import accuracy


@dataclass
class RecallConfig:
    max_lag: int = 60  # the longest lag; every sequence has max_lag + 1 tokens
    num_signals: int = 4  # classes to remember (chance = 1 / num_signals)
    num_distractors: int = 4  # distractor symbols

    def __post_init__(self):
        for name in ("max_lag", "num_signals", "num_distractors"):
            check_int(name, getattr(self, name))

    @property
    def vocab_size(self) -> int:
        return self.num_signals + self.num_distractors


def signal_recall(
    config: RecallConfig,
    batch_size: int,
    generator: torch.Generator,
    lag: int | None = None,
):
    """One batch: x one-hot (B, max_lag + 1, vocab), y the signal (B,).

    The signal sits `lag` steps before the last token; lag=None draws a lag in
    [1, max_lag] per sequence.
    """
    check_int("batch_size", batch_size)
    if lag is not None and not 0 <= check_int("lag", lag, 0) <= config.max_lag:
        raise ValueError(f"lag must be in [0, max_lag={config.max_lag}], got lag={lag}")
    B, T = batch_size, config.max_lag + 1
    y = torch.randint(config.num_signals, (B,), generator=generator)  # (B,)
    distractors = torch.randint(config.num_distractors, (B, T), generator=generator)
    tokens = config.num_signals + distractors  # (B, T)
    lags = (
        torch.full((B,), lag)
        if lag is not None
        else torch.randint(1, config.max_lag + 1, (B,), generator=generator)
    )  # (B,)
    tokens[torch.arange(B), T - 1 - lags] = y  # (B, T)
    return F.one_hot(tokens, config.vocab_size).float(), y


def recall_batches(config: RecallConfig, batch_size: int = 128, seed=0):
    """Endless training batches of the task, every lag mixed."""
    return endless_batches(partial(signal_recall, config), batch_size, seed)


@torch.no_grad()
def recall_accuracy(
    model: nn.Module,
    config: RecallConfig,
    lag: int,
    num_samples: int = 1000,
    seed=12345,
) -> float:
    """Accuracy on fresh sequences with the signal `lag` steps back.

    Each lag gets its own sequences (seed + lag), so two lags never share a draw.
    """
    x, y = signal_recall(config, num_samples, make_generator(seed + lag), lag=lag)
    return accuracy(model(x), y)


def draw_long_range(
    fig, lag: int = 20, forget_bias: float = 0.0, results: dict | None = None
):
    """Chapter 2's experiment: accuracy against lag, and gradient flow at init.

    Accuracy of the trained models in `results`; gradient flow over `lag` steps at
    initialisation, the RNN's h against the LSTM's cell state.

    `results` maps 'lags' to the evaluated lags, 'rnn' to the RNN's accuracies and
    ('lstm', forget_bias) to the LSTM's.
    """
    if results is None or ("lstm", forget_bias) not in results:
        raise ValueError(f"no trained LSTM with forget_bias={forget_bias} in results")
    check_int("lag", lag)
    axes = fig.subplots(1, 2)
    lags = results["lags"]
    axes[0].plot(lags, results["rnn"], marker="o", ms=4, label="RNN")
    axes[0].plot(
        lags,
        results["lstm", forget_bias],
        marker="s",
        ms=4,
        label=f"LSTM, forget bias {forget_bias:g}",
    )
    axes[0].axhline(results["chance"], color="gray", ls=":", label="chance")
    axes[0].axvline(lag, color="black", lw=0.8)
    axes[0].set(
        xlabel="lag (steps)",
        ylabel="accuracy",
        ylim=(0, 1.45),
        yticks=[0, 0.25, 0.5, 0.75, 1],
        title="Trained: accuracy vs lag",
    )
    # the legend goes in the empty band above accuracy 1, clear of the lines
    axes[0].legend(frameon=False, fontsize=8, loc="upper center", ncols=2)
    distance, rnn_norms, lstm_norms = lstm_gradient_flow(forget_bias, num_steps=lag + 1)
    axes[1].semilogy(distance, rnn_norms, label=r"RNN $\|\partial h_T/\partial h_t\|$")
    axes[1].semilogy(
        distance, lstm_norms, label=r"LSTM $\|\partial c_T/\partial c_t\|$"
    )
    axes[1].set(xlabel="distance T - t", title="Untrained: gradient flow")
    axes[1].legend(frameon=False, fontsize=8, loc="lower left")
    return axes
