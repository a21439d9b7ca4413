"""Chapters 1 and 2: the from-scratch LSTM against nn.LSTM, and the widget callbacks'
budget.

The from-scratch LSTM is expected to be slower: it runs a Python loop of small
operations per time step, forward and backward, where nn.LSTM runs one fused kernel. The
ratio is reported, not required.
"""

import functools

import ipywidgets as widgets
import matplotlib
import torch

from utils.experiments.gradient_flow import draw_rnn_gradients
from utils.experiments.signal_recall import draw_long_range
from utils.rnn import LSTM
from utils.widgets import Experiment

from .timing import best_of, callback_row, forward_backward, ratio_result


def bench_lstm_forward_backward():
    torch.manual_seed(0)
    reference = torch.nn.LSTM(64, 128, batch_first=True)
    ours = LSTM(64, 128)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(32, 100, 64)  # (B, T, I)
    ours_s = best_of(forward_backward(ours, x), repeat=3)
    reference_s = best_of(forward_backward(reference, x), repeat=3)
    return [
        ratio_result(
            "ch2 from-scratch LSTM / nn.LSTM, fwd+bwd (B=32, T=100, I=64, H=128)",
            ours_s,
            reference_s,
            limit=None,
        )
    ]


def bench_rnn_widgets():
    matplotlib.use("Agg")
    ch1 = Experiment(
        draw_rnn_gradients,
        scale=widgets.FloatSlider(value=2.0, min=0.5, max=2.0, step=0.1),
        nonlinearity=widgets.Dropdown(options=["tanh", "relu"], value="relu"),
        num_steps=widgets.IntSlider(value=200, min=20, max=200, step=20),
    )
    lags = [1, 5, 10, 20, 30, 40, 50, 60]
    results = {
        "lags": lags,
        "chance": 0.25,
        "rnn": [0.25] * len(lags),
        ("lstm", 2.0): [1.0] * len(lags),
    }
    ch2 = Experiment(
        functools.partial(draw_long_range, results=results),
        lag=widgets.SelectionSlider(options=lags, value=60),
        forget_bias=widgets.Dropdown(options=[2.0], value=2.0),
    )
    return [
        callback_row("ch1 widget callback (worst setting)", ch1),
        callback_row("ch2 widget callback (worst setting)", ch2),
    ]
