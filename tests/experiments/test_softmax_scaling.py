"""utils.experiments.softmax_scaling (chapter 4): unscaled scores saturate the softmax as d_k grows."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments.softmax_scaling import (
    D_K_VALUES,
    draw_scaling,
    softmax_statistics,
)


def test_softmax_statistics_show_saturation_without_scaling():
    raw_small, raw_big = (
        softmax_statistics(4, scaled=False),
        softmax_statistics(512, scaled=False),
    )
    scaled_small, scaled_big = (
        softmax_statistics(4, scaled=True),
        softmax_statistics(512, scaled=True),
    )
    assert (
        raw_big["entropy"] < raw_small["entropy"] / 5
        and raw_big["grad_norm"] < raw_small["grad_norm"] / 50
    )
    assert abs(scaled_big["entropy"] - scaled_small["entropy"]) < 0.2
    assert 0.8 < scaled_big["score_std"] < 1.2 and raw_big["score_std"] > 15
    assert raw_big["max_weight"] > 0.9 > scaled_big["max_weight"]
    assert scaled_small["entropy"] <= math.log(32)  # at most uniform over 32 keys
    example = scaled_small["example"]
    assert example.shape == (32,) and not example.requires_grad
    torch.testing.assert_close(example.sum(), torch.tensor(1.0))


def test_softmax_statistics_are_seeded_and_the_widget_cache_computes_once():
    from utils.experiments.softmax_scaling import _cached_statistics

    other = softmax_statistics(8, True, seed=1)
    assert other["entropy"] != softmax_statistics(8, True)["entropy"]
    fresh = softmax_statistics(8, True, seed=1)  # a new dict each call
    assert fresh is not other and fresh["entropy"] == other["entropy"]  # deterministic
    assert _cached_statistics(8, True) is _cached_statistics(8, True)  # computed once


def test_softmax_statistics_leaves_the_global_random_state_unchanged():
    before = torch.get_rng_state()
    softmax_statistics(16, False, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_softmax_statistics_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d_k=0"):
        softmax_statistics(0, scaled=True)
    with pytest.raises(ValueError, match="d_k must be a positive int"):
        softmax_statistics(2.5, scaled=True)
    with pytest.raises(ValueError, match="scaled must be True or False"):
        softmax_statistics(5, scaled="yes")


def test_softmax_statistics_checks_arguments_even_after_an_equal_call_was_cached():
    softmax_statistics(6, scaled=True)
    with pytest.raises(ValueError, match="scaled must be True or False"):
        softmax_statistics(6, scaled=1)  # 1 == True: the cache answers first


def test_draw_scaling_panels_and_visible_marker():
    fig = plt.figure()
    axes = draw_scaling(fig, d_k=1024)
    assert len(axes) == 3
    for ax in axes[1:]:  # the dashed d_k mark is inside the axes
        low, high = ax.get_xlim()
        assert low < D_K_VALUES[0] and high > D_K_VALUES[-1]
    assert len(draw_scaling(plt.figure(), d_k=16, panels=("example",))) == 1
    assert (
        len(draw_scaling(plt.figure(), d_k=None, panels=("entropy", "gradient"))) == 2
    )
    with pytest.raises(ValueError, match="panels"):
        draw_scaling(plt.figure(), panels=("histogram",))
    with pytest.raises(ValueError, match="panels"):
        draw_scaling(plt.figure(), panels=())
    with pytest.raises(ValueError, match="needs a d_k"):
        draw_scaling(plt.figure(), d_k=None)
    plt.close("all")
