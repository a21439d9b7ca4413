"""Chapters 3-4: the from-scratch multi-head attention against PyTorch, and the widget budgets.

Target (issue 4): our batched MultiHeadAttention, forward and backward, within 1.5x of
nn.MultiheadAttention on B=8, T=256, d_model=256, H=8. The other rows are reported.
"""

import ipywidgets as widgets
import matplotlib
import torch
import torch.nn as nn

from utils.attention import (D_K_VALUES, MultiHeadAttention, draw_scaling, multi_head_fused, multi_head_loop)
from utils.widgets import Experiment

from .timing import best_of, ratio_result

B, T, D_MODEL, HEADS = 8, 256, 256, 8


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


def bench_multi_head_attention_vs_torch():
    reference, ours, x = _setup()
    params = [x, *ours.parameters(), *reference.parameters()]
    ours_s = best_of(_fwd_bwd(lambda: ours(x, x, x)[0], *params), repeat=7, warmup=2)
    ref_s = best_of(_fwd_bwd(lambda: reference(x, x, x)[0], *params), repeat=7, warmup=2)
    ref_fast_s = best_of(_fwd_bwd(lambda: reference(x, x, x, need_weights=False)[0], *params), repeat=7, warmup=2)
    shape = f"B={B}, T={T}, d={D_MODEL}, H={HEADS}, fwd+bwd"
    return [ratio_result(f"MultiHeadAttention vs nn.MultiheadAttention ({shape})", ours_s, ref_s, limit=1.5),
            ratio_result(f"MultiHeadAttention vs nn.MultiheadAttention need_weights=False ({shape})",
                         ours_s, ref_fast_s)]


def bench_heads_loop_batched_fused():
    _, ours, x = _setup()
    params = [x, *ours.parameters()]
    loop_s = best_of(_fwd_bwd(lambda: multi_head_loop(ours, x, x, x), *params), repeat=5)
    batched_s = best_of(_fwd_bwd(lambda: ours(x, x, x)[0], *params), repeat=5)
    fused_s = best_of(_fwd_bwd(lambda: multi_head_fused(ours, x, x, x), *params), repeat=5)
    return [ratio_result("loop over heads vs batched heads (fwd+bwd)", loop_s, batched_s),
            ratio_result("batched heads vs F.scaled_dot_product_attention (fwd+bwd)", batched_s, fused_s)]


def bench_scaling_widget():
    matplotlib.use("Agg")
    experiment = Experiment(draw_scaling, figsize=(9.0, 3.0),
                            d_k=widgets.SelectionSlider(options=list(D_K_VALUES), value=1024))
    matplotlib.pyplot.close(experiment.figure())        # fills the cache, as the chapter does
    seconds = best_of(lambda: matplotlib.pyplot.close(experiment.figure()), repeat=3)
    return [{"name": "ch3 widget callback (d_k=1024)", "ours_s": seconds, "reference_s": None,
             "ratio": None, "target": "<= 1.0 s", "ok": seconds <= 1.0}]


def bench_heads_widget():
    from functools import partial

    from utils.toy_tasks import NeighbourModel, NeighbourTaskConfig, draw_heads, neighbour_difference_batch
    matplotlib.use("Agg")
    config = NeighbourTaskConfig()
    model = NeighbourModel(config)
    tokens, _ = neighbour_difference_batch(16, config, torch.Generator().manual_seed(123))
    experiment = Experiment(partial(draw_heads, model=model, tokens=tokens), figsize=(8.0, 3.2),
                            head=widgets.Dropdown(options=[0, 1], value=1),
                            example=widgets.IntSlider(value=15, min=0, max=15))
    seconds = best_of(lambda: matplotlib.pyplot.close(experiment.figure()), repeat=3)
    return [{"name": "ch4 widget callback", "ours_s": seconds, "reference_s": None,
             "ratio": None, "target": "<= 1.0 s", "ok": seconds <= 1.0}]
