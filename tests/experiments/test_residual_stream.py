"""utils.experiments.residual_stream (chapter 6): residuals keep tokens apart and let
the gradient through a deep stack."""

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments import residual_stream as rs


def test_no_residual_connection_is_the_norm_of_the_sublayer():
    layer = rs.encoder_stack("no residual", num_layers=1, d_model=8)[0]
    x = torch.randn(2, 3, 8)
    block = layer.self_attn_sublayer
    assert isinstance(block, rs.NoResidual)
    torch.testing.assert_close(block(x, torch.tanh), block.norm(torch.tanh(x)))


def test_the_variants_differ_only_where_they_should():
    post, pre = (rs.encoder_stack(v, 2, 8) for v in ("post-norm", "pre-norm"))
    assert not post[0].self_attn_sublayer.norm_first
    assert pre[0].self_attn_sublayer.norm_first
    # the same seed gives the same weights, whatever the variant
    for a, b in zip(post.parameters(), pre.parameters()):
        assert torch.equal(a, b)


def test_without_residuals_the_tokens_collapse_and_with_them_they_do_not():
    collapsed = rs.token_similarity("no residual", num_layers=6)
    kept = rs.token_similarity("post-norm", num_layers=6)
    assert min(collapsed[3:]) > 0.99
    assert max(kept) < 0.5
    assert len(collapsed) == len(kept) == 6


def test_gradient_norms_are_one_per_layer_input_and_positive():
    norms = rs.layer_gradient_norms("pre-norm", num_layers=5)
    assert len(norms) == 5 and min(norms) > 0
    # pre-norm: the identity path adds to the gradient on the way down
    assert norms[0] > norms[-1]


def test_the_global_random_state_is_left_alone_and_bad_variants_are_refused():
    state = torch.get_rng_state()
    rs.layer_gradient_norms("post-norm", num_layers=2)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="variant"):
        rs.encoder_stack("post norm")


def test_the_drawing_has_two_panels_with_a_line_per_variant():
    fig = plt.figure()
    rs.draw_residual_stream(fig, num_layers=3)
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    plt.close(fig)
