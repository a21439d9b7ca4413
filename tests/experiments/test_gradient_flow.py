"""utils.experiments.gradient_flow (chapters 1, 2): exact Jacobian norms, vanishing gradients."""

import matplotlib.pyplot as plt
import pytest
import torch

import utils.rnn
from utils.experiments.gradient_flow import (
    draw_rnn_gradients,
    lstm_gradient_flow,
    rnn_gradient_flow,
    scaled_rnn_cell,
    state_jacobian_norms,
)
from utils.rnn import LSTMCell, RNNCell


def test_state_jacobian_norms_match_the_explicit_jacobian():
    cell = scaled_rnn_cell(5, 1.3, seed=2)
    x = torch.randn(
        1, 6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    norms = state_jacobian_norms(cell, x)
    assert norms.shape == (6,)

    def h_T_from(h_t, t):  # run the cell from step t+1 on, starting at h_t
        h = h_t
        for k in range(t + 1, 6):
            h = cell(x[:, k], h)
        return h[0]

    h = torch.zeros(1, 5, dtype=torch.float64)
    for t in range(6):
        h = cell(x[:, t], h)
        jacobian = torch.autograd.functional.jacobian(
            lambda s, t=t: h_T_from(s, t), h.detach()
        )[:, 0]  # (H, H)
        torch.testing.assert_close(norms[t], torch.linalg.matrix_norm(jacobian, ord=2))


def test_lstm_cell_state_jacobian_matches_the_explicit_jacobian():
    torch.manual_seed(0)
    cell = LSTMCell(2, 3).double()
    x = torch.randn(
        1, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    norms = state_jacobian_norms(cell, x, "c")

    def c_T_from(
        c_t, o_t, t
    ):  # c_t also reaches the future through h_t = o_t tanh(c_t)
        h, c = o_t * torch.tanh(c_t), c_t
        for k in range(t + 1, 4):
            h, c = cell(x[:, k], (h, c))
        return c[0]

    h = c = torch.zeros(1, 3, dtype=torch.float64)
    for t in range(4):
        gates = (
            x[:, t] @ cell.weight_ih.T
            + cell.bias_ih
            + h @ cell.weight_hh.T
            + cell.bias_hh
        )
        o_t = torch.sigmoid(
            gates.chunk(4, dim=1)[3]
        ).detach()  # the output gate at step t
        h, c = cell(x[:, t], (h, c))
        jacobian = torch.autograd.functional.jacobian(
            lambda s, o_t=o_t, t=t: c_T_from(s, o_t, t), c.detach()
        )[:, 0]
        torch.testing.assert_close(norms[t], torch.linalg.matrix_norm(jacobian, ord=2))


def test_linear_rnn_gradient_is_scale_to_the_distance(monkeypatch):
    monkeypatch.setitem(utils.rnn.NONLINEARITIES, "identity", lambda z: z)
    cell = scaled_rnn_cell(8, 0.8)
    cell.nonlinearity = "identity"
    x = torch.randn(
        2, 10, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    norms = state_jacobian_norms(cell, x).flip(0)
    torch.testing.assert_close(norms, 0.8 ** torch.arange(10, dtype=torch.float64))


def test_scaled_rnn_cell_stretches_every_direction_by_scale():
    cell = scaled_rnn_cell(6, 1.7, nonlinearity="relu", input_size=2, seed=3)
    assert cell.weight_hh.dtype == torch.float64 and cell.nonlinearity == "relu"
    torch.testing.assert_close(
        torch.linalg.svdvals(cell.weight_hh), torch.full((6,), 1.7, dtype=torch.float64)
    )
    assert (
        cell.weight_ih.shape == (6, 2)
        and not cell.bias_ih.any()
        and not cell.bias_hh.any()
    )
    same = scaled_rnn_cell(6, 1.7, nonlinearity="relu", input_size=2, seed=3)
    assert torch.equal(cell.weight_hh, same.weight_hh) and torch.equal(
        cell.weight_ih, same.weight_ih
    )
    with pytest.raises(ValueError, match="scale"):
        scaled_rnn_cell(6, 0.0)


def test_gradient_vanishes_for_small_scale_and_forget_bias_helps():
    distance, small = rnn_gradient_flow(0.5, num_steps=30)
    assert torch.equal(distance, torch.arange(30)) and small.shape == (30,)
    assert small[29] < 1e-6
    _, rnn_norms, lstm0 = lstm_gradient_flow(0.0, num_steps=30)
    _, _, lstm2 = lstm_gradient_flow(2.0, num_steps=30)
    assert rnn_norms[29] < lstm0[29] < lstm2[29]
    with pytest.raises(ValueError, match="num_steps"):
        rnn_gradient_flow(0.5, num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        lstm_gradient_flow(1.0, num_steps=0)


def test_gradient_flow_is_reproducible():
    a, b = (
        rnn_gradient_flow(1.2, num_steps=12, seed=4)[1],
        rnn_gradient_flow(1.2, num_steps=12, seed=4)[1],
    )
    assert torch.equal(a, b)
    assert torch.equal(
        lstm_gradient_flow(1.0, num_steps=8)[2], lstm_gradient_flow(1.0, num_steps=8)[2]
    )


@pytest.mark.parametrize(
    "helper",
    [
        lambda: scaled_rnn_cell(5, 1.1, seed=1),
        lambda: rnn_gradient_flow(0.9, num_steps=10),
        lambda: lstm_gradient_flow(1.0, num_steps=10),
    ],
    ids=["scaled_rnn_cell", "rnn_gradient_flow", "lstm_gradient_flow"],
)
def test_helpers_leave_the_global_random_state_unchanged(helper):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    helper()
    assert torch.equal(torch.get_rng_state(), before)


def test_state_jacobian_norms_rejects_bad_arguments():
    with pytest.raises(ValueError, match="state must be"):
        state_jacobian_norms(RNNCell(1, 2), torch.randn(1, 3, 1), state="c")
    with pytest.raises(ValueError, match="state must be"):
        state_jacobian_norms(LSTMCell(1, 2), torch.randn(1, 3, 1), state="x")
    with pytest.raises(ValueError, match="cell must be an RNNCell or LSTMCell"):
        state_jacobian_norms(torch.nn.RNNCell(1, 2), torch.randn(1, 3, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 1\)"):
        state_jacobian_norms(RNNCell(1, 2), torch.randn(1, 3, 2))


@pytest.mark.parametrize(
    "scale, nonlinearity", [(0.5, "tanh"), (0.5, "relu"), (2.0, "tanh"), (2.0, "relu")]
)
def test_draw_rnn_gradients_keeps_both_curves_inside_the_axes(scale, nonlinearity):
    fig = plt.figure()
    axes = draw_rnn_gradients(fig, scale=scale, nonlinearity=nonlinearity, num_steps=60)
    low, high = axes[0].get_ylim()
    assert len(axes[0].get_lines()) == 2
    for line in axes[0].get_lines():  # the measured norms and scale^k
        y = line.get_ydata()
        assert low <= y.min() and y.max() <= high
    plt.close(fig)


def test_draw_rnn_gradients_rejects_an_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        draw_rnn_gradients(plt.figure(), nonlinearity="sigmoid")
    plt.close("all")


def test_scaled_rnn_cell_has_half_size_input_weights_and_no_bias():
    cell = scaled_rnn_cell(6, scale=2.0, input_size=3, seed=4)
    g = torch.Generator().manual_seed(4)
    torch.randn(6, 6, generator=g, dtype=torch.float64)  # W_hh's draw comes first
    w_ih = torch.randn(6, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(cell.weight_ih, 0.5 * w_ih)
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_clipping_keeps_the_gradient_norm_bounded_and_the_rng_untouched():
    from utils.experiments.gradient_flow import clipping_run

    before = torch.get_rng_state()
    clipped_loss, clipped_norm = clipping_run(max_norm=1.0, steps=20)
    free_loss, free_norm = clipping_run(max_norm=float("inf"), steps=20)
    assert torch.equal(torch.get_rng_state(), before)
    assert clipped_norm[0] == free_norm[0] > 10  # the same start: an exploding norm
    assert clipped_loss[0] == free_loss[0]
    assert clipped_loss[-1] < clipped_loss[0]  # clipped steps make progress
    assert clipping_run(max_norm=1.0, steps=20) == (clipped_loss, clipped_norm)
