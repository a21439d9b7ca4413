"""How far back does the gradient reach? ||∂s_T/∂s_t|| in an RNN and an LSTM.

Chapter 1 measures an RNN whose recurrent matrix stretches every direction by `scale`
(vanishing below 1, exploding above); chapter 2 compares the LSTM's cell state.
Every helper here seeds its own generators and leaves the global random state alone.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks import check_choice, check_int, check_positive, check_tensor
from utils.env import make_generator, seeded
from utils.rnn import NONLINEARITIES, RNN, LSTMCell, RNNCell, set_forget_bias


def state_jacobian_norms(
    cell: nn.Module, x: torch.Tensor, state: str = "h"
) -> torch.Tensor:
    """||∂s_T / ∂s_t||_2 (spectral norm) for every step t.

    s is the RNN's h, or the LSTM's h or c.

    x is (B, T, I); the cell (RNNCell or LSTMCell) starts from a zero state. The
    Jacobian is exact: each sequence is repeated H times and row i back-propagates the
    one-hot vector e_i from s_T. Returns (T,): entry t is the geometric mean over the B
    sequences, at distance T - 1 - t. Used in chapters 1 and 2.
    """
    if not isinstance(cell, (RNNCell, LSTMCell)):
        raise ValueError(
            f"cell must be an RNNCell or LSTMCell, got {type(cell).__name__}"
        )
    if state not in ("h", "c") or (state == "c" and not isinstance(cell, LSTMCell)):
        raise ValueError(
            f"state must be 'h', or 'c' for an LSTMCell, got state={state!r}"
        )
    check_tensor("x", x, ("B", "T", cell.input_size), floating=True)
    B, T, _ = x.shape
    H = cell.hidden_size
    x = x.repeat_interleave(H, dim=0)  # (B·H, T, I)
    h = c = x.new_zeros(B * H, H)
    tracked = []
    for t in range(T):
        if isinstance(cell, LSTMCell):
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        s = h if state == "h" else c
        s.retain_grad()  # keep ∂s_T/∂s_t for this t
        tracked.append(s)
    seeds = torch.eye(H, dtype=x.dtype).repeat(B, 1)  # (B·H, H): row i is e_i
    tracked[-1].backward(seeds)
    jacobians = torch.stack(
        [s.grad.reshape(B, H, H) for s in tracked], dim=1
    )  # (B, T, H, H)
    norms = torch.linalg.matrix_norm(jacobians, ord=2)  # (B, T)
    return norms.clamp_min(1e-300).log().mean(dim=0).exp()  # (T,)


def scaled_rnn_cell(
    hidden_size: int,
    scale: float,
    nonlinearity: str = "tanh",
    input_size: int = 1,
    seed: int = 0,
) -> RNNCell:
    """An RNNCell (float64) whose W_hh is `scale` × a random orthogonal matrix.

    So W_hh stretches every direction by exactly `scale`; small input weights, zero
    biases. Used in chapter 1.
    """
    check_positive("scale", scale)
    g = make_generator(seed)
    with torch.random.fork_rng():  # its initial weights are all overwritten below
        cell = RNNCell(input_size, hidden_size, nonlinearity).double()
    q, _ = torch.linalg.qr(
        torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64)
    )
    w_ih = torch.randn(hidden_size, input_size, generator=g, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(scale * q)
        cell.weight_ih.copy_(w_ih * 0.5)
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    return cell


def _random_input(batch_size: int, num_steps: int, seed: int) -> torch.Tensor:
    g = make_generator(seed)
    return torch.randn(batch_size, num_steps, 1, generator=g, dtype=torch.float64)


def rnn_gradient_flow(
    scale: float,
    nonlinearity: str = "tanh",
    num_steps: int = 100,
    hidden_size: int = 32,
    batch_size: int = 4,
    seed: int = 0,
):
    """(distance, ||∂h_T/∂h_{T-distance}||) for an RNN with recurrent scale `scale`.

    On random input: two (num_steps,) tensors, distance 0..num_steps-1. Chapter 1.
    """
    check_int("num_steps", num_steps)
    check_int("batch_size", batch_size)
    cell = scaled_rnn_cell(hidden_size, scale, nonlinearity, seed=seed)
    x = _random_input(batch_size, num_steps, seed + 1)
    norms = state_jacobian_norms(cell, x).detach()
    return torch.arange(num_steps), norms.flip(0)  # distance T-1-t


def draw_rnn_gradients(
    fig, scale: float = 1.0, nonlinearity: str = "tanh", num_steps: int = 100
):
    """Chapter 1's experiment: gradient norm against distance, and hidden values."""
    check_choice("nonlinearity", nonlinearity, tuple(NONLINEARITIES))
    axes = fig.subplots(1, 2, width_ratios=[1.6, 1])
    distance, norms = rnn_gradient_flow(scale, nonlinearity, num_steps)
    linear = float(scale) ** distance.double()  # the linear RNN's bound
    axes[0].semilogy(distance, norms, color="C0", lw=2, label=f"scale {scale:g}")
    axes[0].semilogy(
        distance,
        linear,
        color="gray",
        ls="--",
        lw=1,
        label=r"scale$^{\,k}$ (linear RNN)",
    )
    axes[0].set(
        xlabel="distance k = T - t",
        ylabel=r"$\|\partial h_T / \partial h_t\|_2$",
        title=f"{nonlinearity} RNN: gradient vs distance",
    )
    # y-limits from both curves, so that neither runs off the axes
    low = max(min(float(norms.min()), float(linear.min())), 1e-300)
    high = max(float(norms.max()), float(linear.max()), 1.0)
    axes[0].set_ylim(low / 10, high * 10)
    axes[0].legend(frameon=False, fontsize=8)
    cell = scaled_rnn_cell(32, scale, nonlinearity)
    x = _random_input(4, num_steps, seed=1)
    with torch.no_grad():
        h, values = x.new_zeros(4, 32), []
        for t in range(num_steps):
            h = cell(x[:, t], h)
            values.append(h)
    values = torch.stack(values).flatten().numpy()
    axes[1].hist(values, bins=40, color="C1")
    axes[1].set(xlabel="hidden values h_t", ylabel="count", title="hidden values")
    if nonlinearity == "relu" and abs(values).max() > 1e3:
        axes[1].set_xscale("symlog")
    return axes


def lstm_gradient_flow(
    forget_bias: float,
    num_steps: int = 60,
    hidden_size: int = 32,
    input_size: int = 8,
    batch_size: int = 4,
    seed: int = 0,
):
    """(distance, RNN ||∂h_T/∂h_t||, LSTM ||∂c_T/∂c_t||) at PyTorch's initialisation.

    The LSTM has forget-gate bias `forget_bias`; both read the same random one-hot
    input (float64). Used in chapter 2.
    """
    check_int("num_steps", num_steps)
    check_int("batch_size", batch_size)
    with seeded(seed):  # seeded initialisation, the caller's state untouched
        rnn = RNNCell(input_size, hidden_size).double()
        lstm = set_forget_bias(LSTMCell(input_size, hidden_size).double(), forget_bias)
    tokens = torch.randint(
        input_size, (batch_size, num_steps), generator=make_generator(seed + 1)
    )
    x = F.one_hot(tokens, input_size).double()  # (B, T, I)
    rnn_norms = state_jacobian_norms(rnn, x, "h").detach().flip(0)
    lstm_norms = state_jacobian_norms(lstm, x, "c").detach().flip(0)
    return torch.arange(num_steps), rnn_norms, lstm_norms


def clipping_run(
    max_norm: float,
    scale: float = 2.0,
    length: int = 30,
    steps: int = 50,
    lr: float = 0.1,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """Chapter 1's clipping experiment: the loss and the gradient norm (before
    clipping) at each of `steps` steps of plain gradient descent.

    A tiny regression: an RNN whose W_hh is `scale` × a random orthogonal matrix (its
    gradients explode over `length` steps) predicts the sum of the first three inputs
    from its last state. The gradient is clipped to `max_norm` (inf: not clipped).
    The same run for every COURSE_SEED: it shows a mechanism, not a trained result;
    the global random state is left as it was.
    """
    check_positive("max_norm", max_norm)
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        rnn, head = RNN(1, 32), nn.Linear(32, 1)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
        rnn.weight_hh_l0.copy_(scale * q)  # chaotic: gradients explode
    x = torch.randn(64, length, 1, generator=g)  # (B, T, 1)
    y = x[:, :3].sum(dim=(1, 2))[:, None]  # (B, 1)
    parameters = list(rnn.parameters()) + list(head.parameters())
    losses, norms = [], []
    for _ in range(steps):
        loss = F.mse_loss(head(rnn(x)[0][:, -1]), y)
        for p in parameters:
            p.grad = None
        loss.backward()
        # clip_grad_norm_ returns the norm before clipping
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        norms.append(float(norm))
        losses.append(loss.item())
        with torch.no_grad():
            for p in parameters:
                p -= lr * p.grad  # plain gradient descent
    return losses, norms
