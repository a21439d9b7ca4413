"""Why divide the scores by √d_k? The softmax's entropy and gradient against d_k.

Chapter 4's experiment: one callback for the widget and the sweep. Random queries and
keys ~ N(0, I): their dot products have variance d_k, so unscaled scores saturate the
softmax as d_k grows, and the gradient reaching the scores vanishes.
"""

import math
from functools import lru_cache

import torch

from utils.checks import check_bool, check_int
from utils.env import make_generator

D_K_VALUES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def softmax_statistics(
    d_k: int, scaled: bool, num_keys: int = 32, num_queries: int = 256, seed: int = 0
) -> dict:
    """Attention over `num_keys` random keys, q and k ~ N(0, I_{d_k}): how peaked is it?

    Returns the standard deviation of the scores, the mean entropy of the weights (in
    nats; a uniform row has log num_keys), the mean largest weight, and the norm of the
    gradient that reaches the scores from a random upstream gradient (median over
    queries; it vanishes when the softmax saturates).
    """
    check_int("d_k", d_k)
    check_bool("scaled", scaled)
    g = make_generator(seed)
    q = torch.randn(num_queries, 1, d_k, generator=g)
    k = torch.randn(num_queries, num_keys, d_k, generator=g)
    upstream = torch.randn(num_queries, num_keys, generator=g)  # ∂loss/∂weights
    scores = (q @ k.transpose(-2, -1)).squeeze(1)  # (N, num_keys), variance d_k
    if scaled:
        scores = scores / math.sqrt(d_k)  # variance 1
    scores.requires_grad_(True)
    weights = torch.softmax(scores, dim=-1)
    (weights * upstream).sum().backward()
    return {
        "score_std": scores.std().item(),
        "entropy": torch.special.entr(weights).sum(-1).mean().item(),
        "max_weight": weights.max(-1).values.mean().item(),
        "grad_norm": scores.grad.norm(dim=-1).median().item(),
        "example": weights[0].detach().clone(),
    }


# The widget redraws often: draw_scaling computes each setting once (typed, so that
# scaled=1 is checked rather than answered as scaled=True).
_cached_statistics = lru_cache(maxsize=None, typed=True)(softmax_statistics)


def draw_scaling(fig, d_k: int | None = 64, panels=("example", "entropy", "gradient")):
    """Chapter 4's experiment: one query's weights, then entropy and gradient vs d_k.

    `panels` picks which of the three to draw (left to right); the entropy and gradient
    curves do not depend on `d_k`, which is only marked on them (dashed; None: no mark).
    """
    unknown = set(panels) - {"example", "entropy", "gradient"}
    if not panels or unknown:
        raise ValueError(
            f"panels must be some of example, entropy, gradient; got {panels!r}"
        )
    if "example" in panels and d_k is None:
        raise ValueError("the 'example' panel needs a d_k")
    curves = {s: [_cached_statistics(d, s) for d in D_K_VALUES] for s in (False, True)}
    style = {
        False: ("unscaled  q·k", "tab:red"),
        True: ("scaled  q·k/√d_k", "tab:blue"),
    }
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    ax = dict(zip(panels, axes))
    n_keys = len(curves[False][0]["example"])
    for scaled, (label, colour) in style.items():
        if "example" in ax:
            example = (
                _cached_statistics(d_k, scaled)["example"].sort(descending=True).values
            )
            ax["example"].plot(
                range(1, n_keys + 1),
                example,
                marker="o",
                ms=3,
                color=colour,
                label=label,
            )
        for name, key in (("entropy", "entropy"), ("gradient", "grad_norm")):
            if name in ax:
                ax[name].plot(
                    D_K_VALUES,
                    [c[key] for c in curves[scaled]],
                    marker="o",
                    ms=3,
                    color=colour,
                    label=label,
                )
    if "example" in ax:
        ax["example"].set(
            title="one query, sorted",
            xlabel="key (rank)",
            ylabel="weight",
            ylim=(0, 1.02),
        )
        ax["example"].legend(frameon=False, fontsize=8)
    if "entropy" in ax:
        ax["entropy"].axhline(math.log(n_keys), color="gray", ls=":", lw=1)
        ax["entropy"].set(
            title="entropy (nats)", xlabel="d_k", ylim=(0, 1.05 * math.log(n_keys))
        )
    if "gradient" in ax:
        ax["gradient"].set(title="gradient to the scores", xlabel="d_k", yscale="log")
    for name in ("entropy", "gradient"):
        if name in ax:
            ax[name].set_xscale("log", base=2)
            ax[name].set_xlim(
                D_K_VALUES[0] / 1.5, D_K_VALUES[-1] * 1.5
            )  # the d_k marker stays visible
            ax[name].set_xticks([1, 8, 64, 512], labels=["1", "8", "64", "512"])
            if d_k is not None:
                ax[name].axvline(d_k, color="black", lw=1, ls="--")
    if "example" not in ax:
        axes[0].legend(frameon=False, fontsize=8)
    return axes
