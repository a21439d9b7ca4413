"""Chapters 4-5: the from-scratch multi-head attention against PyTorch, widget budgets.

Target (issue 4): our MultiHeadAttention, forward and backward, within 1.5x of
nn.MultiheadAttention on B=8, T=256, d_model=256, H=8, both returning their weights;
and (issue 16) no slower than PyTorch's fast path when neither does. The other rows
are reported.
"""

from functools import partial

import ipywidgets as widgets
import matplotlib
import torch
import torch.nn as nn

from utils.attention import MultiHeadAttention
from utils.experiments.neighbour_heads import (
    NeighbourModel,
    NeighbourTaskConfig,
    draw_heads,
    multi_head_loop,
    neighbour_difference_batch,
)
from utils.experiments.softmax_scaling import D_K_VALUES, draw_scaling
from utils.widgets import Experiment

from .timing import best_of, callback_row, ratio_result

B, T, D_MODEL, HEADS = 8, 256, 256, 8
SHAPE = f"B={B}, T={T}, d={D_MODEL}, H={HEADS}, fwd+bwd"


def _setup():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
    ours = MultiHeadAttention.from_torch(reference)
    x = torch.randn(B, T, D_MODEL, requires_grad=True)
    return reference, ours, x


def _fwd_bwd(fn, *params):
    def step():
        for p in params:
            p.grad = None
        fn().sum().backward()

    return step


def _time(fn, params, repeat=7):
    return best_of(_fwd_bwd(fn, *params), repeat=repeat, warmup=2)


def bench_multi_head_attention_vs_torch():
    reference, ours, x = _setup()
    params = [x, *ours.parameters(), *reference.parameters()]
    explicit = _time(lambda: ours(x, x, x, need_weights=True)[0], params)
    fused = _time(lambda: ours(x, x, x)[0], params)
    ref = _time(lambda: reference(x, x, x)[0], params)
    ref_fast = _time(lambda: reference(x, x, x, need_weights=False)[0], params)
    return [
        ratio_result(
            f"MHA weights vs nn.MultiheadAttention ({SHAPE})", explicit, ref, limit=1.5
        ),
        ratio_result(
            f"MHA fused vs nn.MHA need_weights=False ({SHAPE})",
            fused,
            ref_fast,
            limit=1.0,
        ),
    ]


def bench_heads_loop_batched_fused():
    _, ours, x = _setup()
    params = [x, *ours.parameters()]
    loop = _time(lambda: multi_head_loop(ours, x, x, x), params, repeat=5)
    explicit = _time(lambda: ours(x, x, x, need_weights=True)[0], params, repeat=5)
    fused = _time(lambda: ours(x, x, x)[0], params, repeat=5)
    return [
        ratio_result("loop over heads vs batched heads (fwd+bwd)", loop, explicit),
        ratio_result("batched explicit vs fused attention (fwd+bwd)", explicit, fused),
    ]


def bench_scaling_widget():
    matplotlib.use("Agg")
    experiment = Experiment(
        draw_scaling,
        figsize=(9.0, 3.0),
        d_k=widgets.SelectionSlider(options=list(D_K_VALUES), value=1024),
    )
    matplotlib.pyplot.close(experiment.figure())  # fills the cache, as the chapter does
    return [callback_row("ch4 widget callback (d_k=1024)", experiment)]


def bench_heads_widget():
    matplotlib.use("Agg")
    config = NeighbourTaskConfig()
    model = NeighbourModel(config)
    generator = torch.Generator().manual_seed(123)
    tokens, _ = neighbour_difference_batch(config, 16, generator)
    experiment = Experiment(
        partial(draw_heads, model=model, tokens=tokens),
        figsize=(8.0, 3.2),
        head=widgets.Dropdown(options=[0, 1], value=1),
        example=widgets.IntSlider(value=15, min=0, max=15),
    )
    return [callback_row("ch5 widget callback", experiment)]
