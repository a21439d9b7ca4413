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
import torch.nn.functional as F

from utils.attention import MultiHeadAttention, attend
from utils.experiments.neighbour_heads import (
    NeighbourModel,
    NeighbourTaskConfig,
    draw_heads,
    multi_head_loop,
    neighbour_difference_batch,
)
from utils.experiments.softmax_scaling import D_K_VALUES, draw_scaling
from utils.widgets import Experiment

from .timing import best_of, callback_row, interleaved_medians, ratio_result

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


def bench_attend_path_choice():
    """attend()'s choice on the CPU for short sequences, against the path it did not
    take (at most 1.0x): chapter 7's GPT (B=32, H=4, T=64, d_k=24, causal) without
    gradients (explicit) and in training (fused); chapter 10's ViT (B=64, H=4, T=17,
    d_k=8, not causal) in training (explicit). q, k and v are head views of one
    projection, as in the models."""
    torch.manual_seed(0)
    rows = []
    for label, (B, H, T, d), causal, grad in (
        ("GPT T=64, no gradients", (32, 4, 64, 24), True, False),
        ("GPT T=64, fwd+bwd", (32, 4, 64, 24), True, True),
        ("ViT T=17, fwd+bwd", (64, 4, 17, 8), False, True),
    ):
        x = torch.randn(B, T, 3 * H * d, requires_grad=True)  # (B, T, 3·H·d_k)

        def run(path, x=x, B=B, H=H, T=T, d=d, causal=causal, grad=grad):
            def step():
                with torch.set_grad_enabled(grad):
                    q, k, v = (
                        t.view(B, T, H, d).transpose(1, 2) for t in x.split(H * d, 2)
                    )  # (B, H, T, d_k) each
                    if path == "fused":
                        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    else:  # need_weights=True: always the explicit product
                        out = attend(
                            q, k, v, causal=causal, need_weights=path == "explicit"
                        )[0]
                    if grad:
                        out.sum().backward()

            return step

        seconds = interleaved_medians(
            {path: run(path) for path in ("chosen", "explicit", "fused")}, repeat=30
        )
        other = "explicit" if causal and grad else "fused"
        rows.append(
            ratio_result(
                f"attend {label}: chosen / {other}",
                seconds["chosen"],
                seconds[other],
                limit=1.0,
            )
        )
    return rows


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
