"""Recurrent networks from scratch: RNN and LSTM (chapters 1 and 2).

Each cell is one line of algebra applied once per time step, and the multi-layer modules are an
explicit loop over layers and time. Parameter names, shapes and the LSTM's gate order (i, f, g, o)
are PyTorch's, so ``ours.load_state_dict(nn_lstm.state_dict())`` works and the tests compare the
two exactly. There is no ``nn.RNN`` or ``nn.LSTM`` in here: the price is speed (a Python loop
against PyTorch's fused kernel), measured by ``make bench``.
"""

import math

import torch
import torch.nn as nn

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


# --- The equations: one time step -----------------------------------------------------------

def rnn_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity="tanh"):
    """One RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). Used in chapter 1."""
    pre = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh       # (B, H)
    return NONLINEARITIES[nonlinearity](pre)                          # (B, H)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step, gates in PyTorch's order i, f, g, o. Returns (h', c'). Used in chapter 2."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh     # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)                                # (B, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g               # the cell state: forget some of the old, add some new
    h = o * torch.tanh(c)           # the hidden state: a gated view of the cell
    return h, c                                                       # (B, H), (B, H)


# --- Parameters and argument checks shared by every module ----------------------------------

def _check_positive(**sizes):
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {name}={value!r}")


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got nonlinearity={nonlinearity!r}")


def _add_parameters(module, suffix, input_size, hidden_size, gates):
    """Register weight_ih, weight_hh, bias_ih, bias_hh (+ suffix), initialised like PyTorch:
    uniform in ±1/sqrt(hidden_size)."""
    bound = 1.0 / math.sqrt(hidden_size)
    shapes = {"weight_ih": (gates * hidden_size, input_size), "weight_hh": (gates * hidden_size, hidden_size),
              "bias_ih": (gates * hidden_size,), "bias_hh": (gates * hidden_size,)}
    for name, shape in shapes.items():
        module.register_parameter(name + suffix, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))


def _check_state(state, name, shape):
    if not isinstance(state, torch.Tensor) or tuple(state.shape) != tuple(shape):
        got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {got}")


def _check_cell_input(x, input_size):
    if x.ndim != 2 or x.shape[1] != input_size:
        raise ValueError(f"x must have shape (batch, input_size={input_size}), got {tuple(x.shape)}")


# --- Cells: one step, the same interface as nn.RNNCell and nn.LSTMCell ----------------------

class RNNCell(nn.Module):
    """``h' = RNNCell(input_size, hidden_size)(x, h)``: x (B, I), h (B, H). Used in chapter 1."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        _check_positive(input_size=input_size, hidden_size=hidden_size)
        _check_nonlinearity(nonlinearity)
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        _add_parameters(self, "", input_size, hidden_size, gates=1)

    def forward(self, x, h=None):
        _check_cell_input(x, self.input_size)
        h = x.new_zeros(len(x), self.hidden_size) if h is None else h
        _check_state(h, "h", (len(x), self.hidden_size))
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)


class LSTMCell(nn.Module):
    """``(h', c') = LSTMCell(input_size, hidden_size)(x, (h, c))``. Used in chapter 2."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_positive(input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        _add_parameters(self, "", input_size, hidden_size, gates=4)

    def forward(self, x, state=None):
        _check_cell_input(x, self.input_size)
        zeros = x.new_zeros(len(x), self.hidden_size)
        h, c = (zeros, zeros) if state is None else state
        _check_state(h, "h", (len(x), self.hidden_size))
        _check_state(c, "c", (len(x), self.hidden_size))
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


# --- Multi-layer modules: a loop over layers and time, the same interface as nn.RNN/nn.LSTM --

class _Recurrent(nn.Module):
    """What RNN and LSTM share: parameters per layer, and checks of the input and initial state."""

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True):
        super().__init__()
        _check_positive(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, batch_first
        for k in range(num_layers):
            _add_parameters(self, f"_l{k}", input_size if k == 0 else hidden_size, hidden_size, self.gates)

    def layer(self, k):
        """The four parameters of layer k: weight_ih, weight_hh, bias_ih, bias_hh."""
        return tuple(getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _prepare(self, x):
        """Check x; return it as (B, T, I), and whether it came without a batch dimension."""
        if not isinstance(x, torch.Tensor) or x.ndim not in (2, 3):
            raise ValueError(f"x must be a 2-D (T, I) or 3-D tensor, got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features, but input_size={self.input_size}")
        unbatched = x.ndim == 2
        x = x.unsqueeze(0) if unbatched else (x if self.batch_first else x.transpose(0, 1))  # (B, T, I)
        if x.shape[1] == 0:
            raise ValueError("x must have at least one time step, got a sequence of length 0")
        return x, unbatched

    def _initial(self, state, name, batch, unbatched, reference):
        """A zero state (L, B, H), or the given one after checking its shape."""
        L, H = self.num_layers, self.hidden_size
        if state is None:
            return reference.new_zeros(L, batch, H)
        _check_state(state, name, (L, H) if unbatched else (L, batch, H))
        return state.unsqueeze(1) if unbatched else state

    def _finish(self, output, states, unbatched):
        """Undo the batch-first/unbatched layout: output (B, T, H) and states (L, B, H)."""
        if unbatched:
            return output.squeeze(0), [s.squeeze(1) for s in states]
        return (output if self.batch_first else output.transpose(0, 1)), states


class RNN(_Recurrent):
    """``output, h_n = RNN(input_size, hidden_size, num_layers)(x, h0)``. Used in chapter 1.

    x is (B, T, I) with ``batch_first=True`` (the default), output (B, T, H), h_n (L, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True,
                 nonlinearity: str = "tanh"):
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, batch_first)
        self.nonlinearity = nonlinearity

    def forward(self, x, h0=None):
        x, unbatched = self._prepare(x)                               # (B, T, I)
        B, T, _ = x.shape
        h0 = self._initial(h0, "h0", B, unbatched, x)                 # (L, B, H)
        h_n = []
        for k in range(self.num_layers):
            h, outputs = h0[k], []
            for t in range(T):                                        # back-propagation through time
                h = rnn_cell(x[:, t], h, *self.layer(k), self.nonlinearity)  # runs this loop backwards
                outputs.append(h)
            x = torch.stack(outputs, dim=1)                           # (B, T, H): next layer's input
            h_n.append(h)
        output, (h_n,) = self._finish(x, [torch.stack(h_n)], unbatched)
        return output, h_n


class LSTM(_Recurrent):
    """``output, (h_n, c_n) = LSTM(input_size, hidden_size, num_layers)(x, (h0, c0))``. Used in chapter 2."""

    gates = 4

    def forward(self, x, state=None):
        x, unbatched = self._prepare(x)                               # (B, T, I)
        B, T, _ = x.shape
        if state is not None and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("the LSTM's initial state must be a pair (h0, c0)")
        h0, c0 = (None, None) if state is None else state
        h0 = self._initial(h0, "h0", B, unbatched, x)                 # (L, B, H)
        c0 = self._initial(c0, "c0", B, unbatched, x)                 # (L, B, H)
        h_n, c_n = [], []
        for k in range(self.num_layers):
            h, c, outputs = h0[k], c0[k], []
            for t in range(T):
                h, c = lstm_cell(x[:, t], h, c, *self.layer(k))
                outputs.append(h)
            x = torch.stack(outputs, dim=1)                           # (B, T, H)
            h_n.append(h)
            c_n.append(c)
        output, (h_n, c_n) = self._finish(x, [torch.stack(h_n), torch.stack(c_n)], unbatched)
        return output, (h_n, c_n)


def set_forget_bias(lstm: nn.Module, value: float) -> nn.Module:
    """Set every LSTM layer's forget-gate bias to `value` (b_ih's f slice; b_hh's f slice to 0).

    Works on our LSTM and LSTMCell and on PyTorch's. Used in chapter 2.
    """
    if not isinstance(lstm, (LSTM, LSTMCell, nn.LSTM, nn.LSTMCell)):
        raise ValueError(f"set_forget_bias needs an LSTM or LSTMCell, got {type(lstm).__name__}")
    found = False
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith(("bias_ih", "bias_hh")):
                H = p.shape[0] // 4
                p[H:2 * H] = value if name.startswith("bias_ih") else 0.0
                found = True
    if not found:
        raise ValueError(f"{type(lstm).__name__} has no LSTM biases (bias_ih*, bias_hh*)")
    return lstm


def count_parameters(module: nn.Module, kind: str = "all") -> int:
    """Number of parameters: kind='all', 'weight' or 'bias' (by name). Used in chapter 2."""
    if kind not in ("all", "weight", "bias"):
        raise ValueError(f"kind must be 'all', 'weight' or 'bias', got kind={kind!r}")
    return sum(p.numel() for name, p in module.named_parameters()
               if kind == "all" or name.rsplit(".", 1)[-1].startswith(kind))


# --- Measuring gradient flow: how much does the state t steps back affect the last one? -----

def state_jacobian_norms(cell: nn.Module, x: torch.Tensor, state: str = "h") -> torch.Tensor:
    """||∂s_T / ∂s_t||_2 (spectral norm) for every step t, where s is the RNN's h or the LSTM's h or c.

    x is (B, T, I); the cell (RNNCell or LSTMCell) starts from a zero state. The Jacobian is exact:
    each sequence is repeated H times and row i back-propagates the one-hot vector e_i from s_T.
    Returns (T,): entry t is the geometric mean over the B sequences, distance T - 1 - t.
    Used in chapters 1 and 2.
    """
    if state not in ("h", "c") or (state == "c" and not isinstance(cell, LSTMCell)):
        raise ValueError(f"state must be 'h', or 'c' for an LSTMCell, got state={state!r}")
    if x.ndim != 3:
        raise ValueError(f"x must be (B, T, I), got shape {tuple(x.shape)}")
    B, T, _ = x.shape
    H = cell.hidden_size
    x = x.repeat_interleave(H, dim=0)                                 # (B·H, T, I)
    h = c = x.new_zeros(B * H, H)
    tracked = []
    for t in range(T):
        if isinstance(cell, LSTMCell):
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        s = h if state == "h" else c
        s.retain_grad()                                               # keep ∂s_T/∂s_t for this t
        tracked.append(s)
    seeds = torch.eye(H, dtype=x.dtype).repeat(B, 1)                  # (B·H, H): row i is e_i
    tracked[-1].backward(seeds)
    jacobians = torch.stack([s.grad.reshape(B, H, H) for s in tracked], dim=1)   # (B, T, H, H)
    norms = torch.linalg.matrix_norm(jacobians, ord=2)                # (B, T)
    return norms.clamp_min(1e-300).log().mean(dim=0).exp()            # (T,)


def scaled_rnn_cell(hidden_size: int, scale: float, nonlinearity: str = "tanh", input_size: int = 1,
                    seed: int = 0) -> RNNCell:
    """An RNNCell (float64) whose W_hh is `scale` × a random orthogonal matrix, so W_hh stretches
    every direction by exactly `scale`; small input weights, zero biases. Used in chapter 1."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got scale={scale}")
    g = torch.Generator().manual_seed(seed)
    cell = RNNCell(input_size, hidden_size, nonlinearity).double()
    q, _ = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64))
    with torch.no_grad():
        cell.weight_hh.copy_(scale * q)
        cell.weight_ih.copy_(torch.randn(hidden_size, input_size, generator=g, dtype=torch.float64) * 0.5)
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    return cell


def rnn_gradient_flow(scale: float, nonlinearity: str = "tanh", length: int = 100, hidden_size: int = 32,
                      batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, ||∂h_T/∂h_{T-distance}||) for an RNN with recurrent scale `scale` on random input:
    two (length,) tensors, distance 0..length-1. Used in chapter 1."""
    _check_positive(length=length, hidden_size=hidden_size, batch=batch)
    cell = scaled_rnn_cell(hidden_size, scale, nonlinearity, seed=seed)
    x = torch.randn(batch, length, 1, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    norms = state_jacobian_norms(cell, x).detach()
    return torch.arange(length), norms.flip(0)                        # distance T-1-t


def draw_rnn_gradients(fig, scale: float = 1.0, nonlinearity: str = "tanh", length: int = 100):
    """Chapter 1's experiment: gradient norm against distance (log scale) and the hidden values."""
    _check_nonlinearity(nonlinearity)
    axes = fig.subplots(1, 2, width_ratios=[1.6, 1])
    distance, norms = rnn_gradient_flow(scale, nonlinearity, length)
    linear = float(scale) ** distance.double()                       # the linear RNN's bound
    axes[0].semilogy(distance, norms, color="C0", lw=2, label=f"scale {scale:g}")
    axes[0].semilogy(distance, linear, color="gray", ls="--", lw=1,
                     label=r"scale$^{\,k}$ (linear RNN)")
    axes[0].set(xlabel="distance k = T - t", ylabel=r"$\|\partial h_T / \partial h_t\|_2$",
                title=f"{nonlinearity} RNN: gradient vs distance")
    # y-limits from both curves, so that neither runs off the axes
    low = max(min(float(norms.min()), float(linear.min())), 1e-300)
    high = max(float(norms.max()), float(linear.max()), 1.0)
    axes[0].set_ylim(low / 10, high * 10)
    axes[0].legend(frameon=False, fontsize=8)
    cell = scaled_rnn_cell(32, scale, nonlinearity)
    x = torch.randn(4, length, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        h, values = x.new_zeros(4, 32), []
        for t in range(length):
            h = cell(x[:, t], h)
            values.append(h)
    values = torch.stack(values).flatten().numpy()
    axes[1].hist(values, bins=40, color="C1")
    axes[1].set(xlabel="hidden values h_t", ylabel="count", title="hidden values")
    if nonlinearity == "relu" and abs(values).max() > 1e3:
        axes[1].set_xscale("symlog")
    return axes


def lstm_gradient_flow(forget_bias: float, length: int = 60, hidden_size: int = 32, input_size: int = 8,
                       batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(distance, RNN ||∂h_T/∂h_t||, LSTM ||∂c_T/∂c_t||) at PyTorch's initialisation, the LSTM with
    forget-gate bias `forget_bias`, on the same random one-hot input (float64). Used in chapter 2."""
    _check_positive(length=length, hidden_size=hidden_size, input_size=input_size, batch=batch)
    torch.manual_seed(seed)
    rnn = RNNCell(input_size, hidden_size).double()
    lstm = set_forget_bias(LSTMCell(input_size, hidden_size).double(), forget_bias)
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(input_size, (batch, length), generator=g)
    x = torch.nn.functional.one_hot(tokens, input_size).double()      # (B, T, I)
    rnn_norms = state_jacobian_norms(rnn, x, "h").detach().flip(0)
    lstm_norms = state_jacobian_norms(lstm, x, "c").detach().flip(0)
    return torch.arange(length), rnn_norms, lstm_norms
