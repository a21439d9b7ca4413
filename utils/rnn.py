"""Recurrent networks from scratch: RNN and LSTM (chapters 1 and 2).

Each cell is one line of algebra applied once per time step, and the multi-layer modules
are an explicit loop over layers and time (the input's part of every step is computed
before the loop, in one product: it does not depend on the state). Parameter names,
shapes and the LSTM's gate order (i, f, g, o) are PyTorch's, so
``ours.load_state_dict(nn_lstm.state_dict())`` works and the tests compare the two
exactly. There is no ``nn.RNN`` or ``nn.LSTM`` in here: the price is speed (a Python
loop against PyTorch's native kernels), measured by ``make bench``.
"""

import math

import torch
import torch.nn as nn

from utils.checks import check_bool, check_choice, check_int, check_tensor
from utils.convert import build_like

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


# --- The equations: one time step ---


def rnn_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity="tanh"):
    """One RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). Used in chapter 1."""
    pre = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, H)
    return NONLINEARITIES[nonlinearity](pre)  # (B, H)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step, gates in PyTorch's order i, f, g, o; returns (h', c')."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    return lstm_update(gates, c)


def lstm_update(gates, c):
    """The new (h, c) from the four gates' pre-activations (B, 4H) and the old c."""
    i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g  # the cell state: forget some of the old, add some new
    h = o * torch.tanh(c)  # the hidden state: a gated view of the cell
    return h, c  # (B, H), (B, H)


# --- Parameters and argument checks shared by every module ----------------------------


def _add_parameters(module, suffix, input_size, hidden_size, gates):
    """Register weight_ih, weight_hh, bias_ih, bias_hh (+ suffix).

    Initialised like PyTorch: uniform in ±1/sqrt(hidden_size).
    """
    bound = 1.0 / math.sqrt(hidden_size)
    shapes = {
        "weight_ih": (gates * hidden_size, input_size),
        "weight_hh": (gates * hidden_size, hidden_size),
        "bias_ih": (gates * hidden_size,),
        "bias_hh": (gates * hidden_size,),
    }
    for name, shape in shapes.items():
        module.register_parameter(
            name + suffix, nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        )


def _check_state(state, name, shape, x):
    check_tensor(name, state, shape)
    if state.dtype != x.dtype or state.device != x.device:
        raise ValueError(
            f"{name} must have the input's dtype and device ({x.dtype} on "
            f"{x.device}), got {state.dtype} on {state.device}"
        )


# --- Cells: one step, the same interface as nn.RNNCell and nn.LSTMCell ----------------


def _check_cell_input(x, input_size):
    check_tensor("x", x, ("B", input_size), floating=True)


class RNNCell(nn.Module):
    """``h' = RNNCell(input_size, hidden_size)(x, h)``: x (B, I), h (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        check_choice("nonlinearity", nonlinearity, tuple(NONLINEARITIES))
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinearity = nonlinearity
        _add_parameters(self, "", input_size, hidden_size, gates=1)

    def forward(self, x, h=None):
        _check_cell_input(x, self.input_size)
        h = x.new_zeros(len(x), self.hidden_size) if h is None else h
        _check_state(h, "h", (len(x), self.hidden_size), x)
        return rnn_cell(
            x,
            h,
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            self.nonlinearity,
        )


class LSTMCell(nn.Module):
    """``(h', c') = LSTMCell(input_size, hidden_size)(x, (h, c))``. Chapter 2."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        _add_parameters(self, "", input_size, hidden_size, gates=4)

    def forward(self, x, state=None):
        _check_cell_input(x, self.input_size)
        zeros = x.new_zeros(len(x), self.hidden_size)
        h, c = (zeros, zeros) if state is None else _pair(state, "state")
        _check_state(h, "h", (len(x), self.hidden_size), x)
        _check_state(c, "c", (len(x), self.hidden_size), x)
        return lstm_cell(
            x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )


def _pair(state, name):
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise ValueError(
            f"the LSTM's {name} must be a pair (h, c), got {type(state).__name__}"
        )
    return state


# --- Multi-layer modules: a loop over layers and time, like nn.RNN and nn.LSTM ---


class _Recurrent(nn.Module):
    """What RNN and LSTM share: parameters per layer, checks, and ``from_torch``."""

    gates = 1
    reference = nn.RNNBase

    def __init__(self, input_size, hidden_size, num_layers=1, *, batch_first=True):
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        check_int("num_layers", num_layers)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = (
            num_layers,
            check_bool("batch_first", batch_first),
        )
        for k in range(num_layers):
            size = input_size if k == 0 else hidden_size
            _add_parameters(self, f"_l{k}", size, hidden_size, self.gates)

    def layer(self, k):
        """The four parameters of layer k: weight_ih, weight_hh, bias_ih, bias_hh."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{name}_l{k}") for name in names)

    def _prepare(self, x):
        """Check x; return it as (B, T, I), and whether it came unbatched."""
        check_tensor("x", x, floating=True)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must be (T, I) or (B, T, I) with I = input_size="
                f"{self.input_size}, got shape {tuple(x.shape)}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(0)
        elif not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I)
        if x.shape[1] == 0:
            raise ValueError(
                "x must have at least one time step, got a sequence of length 0"
            )
        return x, unbatched

    def _initial(self, state, name, batch, unbatched, x):
        """A zero state (L, B, H), or the given one after checking its shape."""
        L, H = self.num_layers, self.hidden_size
        if state is None:
            return x.new_zeros(L, batch, H)
        _check_state(state, name, (L, H) if unbatched else (L, batch, H), x)
        return state.unsqueeze(1) if unbatched else state

    def _finish(self, output, states, unbatched):
        """Undo the batch-first/unbatched layout: output (B, T, H), states (L, B, H)."""
        if unbatched:
            return output.squeeze(0), [s.squeeze(1) for s in states]
        return (output if self.batch_first else output.transpose(0, 1)), states

    @classmethod
    def from_torch(cls, m):
        """The same module, with the weights of PyTorch's ``nn.RNN`` or ``nn.LSTM``."""
        name = cls.reference.__name__
        if type(m) is not cls.reference:
            raise ValueError(f"from_torch needs an nn.{name}, got {type(m).__name__}")
        if not m.bias or m.bidirectional or m.dropout or getattr(m, "proj_size", 0):
            raise ValueError(
                f"from_torch supports nn.{name} with bias=True, "
                "bidirectional=False, dropout=0 and proj_size=0"
            )
        kwargs = {"nonlinearity": m.nonlinearity} if cls is RNN else {}
        ours = build_like(  # its dtype, device and mode; the global RNG untouched
            lambda: cls(
                m.input_size,
                m.hidden_size,
                m.num_layers,
                batch_first=m.batch_first,
                **kwargs,
            ),
            m.weight_ih_l0,
            m.training,
        )
        ours.load_state_dict(m.state_dict())
        return ours


class RNN(_Recurrent):
    """``output, h_n = RNN(input_size, hidden_size, num_layers)(x, h0)``. Chapter 1.

    x is (B, T, I) with ``batch_first=True`` (the default), output (B, T, H), h_n
    (L, B, H). The arguments after `num_layers` are keyword-only.
    """

    reference = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        nonlinearity: str = "tanh",
        batch_first: bool = True,
    ):
        check_choice("nonlinearity", nonlinearity, tuple(NONLINEARITIES))
        super().__init__(input_size, hidden_size, num_layers, batch_first=batch_first)
        self.nonlinearity = nonlinearity

    def forward(self, x, h0=None):
        x, unbatched = self._prepare(x)  # (B, T, I)
        B = x.shape[0]
        h0 = self._initial(h0, "h0", B, unbatched, x)  # (L, B, H)
        act, h_n = NONLINEARITIES[self.nonlinearity], []
        for k in range(self.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = self.layer(k)
            # rnn_cell's sum in two parts. The input's part does not wait for h:
            # one product for all T steps.
            x_parts = (x @ weight_ih.T + bias_ih).unbind(1)  # T tensors (B, H)
            h, outputs = h0[k], []
            # the serial part: each step needs the last h (and back-propagation
            # through time runs this loop backwards)
            for x_part in x_parts:
                h = act(x_part + h @ weight_hh.T + bias_hh)  # (B, H)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            h_n.append(h)
        output, (h_n,) = self._finish(x, [torch.stack(h_n)], unbatched)
        return output, h_n


class LSTM(_Recurrent):
    """``output, (h_n, c_n) = LSTM(input_size, hidden_size, num_layers)(x, (h0, c0))``.

    Used in chapter 2. The arguments after `num_layers` are keyword-only.
    """

    gates = 4
    reference = nn.LSTM

    def forward(self, x, state=None):
        x, unbatched = self._prepare(x)  # (B, T, I)
        B = x.shape[0]
        h0, c0 = (None, None) if state is None else _pair(state, "initial state")
        h0 = self._initial(h0, "h0", B, unbatched, x)  # (L, B, H)
        c0 = self._initial(c0, "c0", B, unbatched, x)  # (L, B, H)
        h_n, c_n = [], []
        for k in range(self.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = self.layer(k)
            # as in RNN: the input's part of all four gates for every step at once
            x_parts = (x @ weight_ih.T + bias_ih).unbind(1)  # T tensors (B, 4H)
            h, c, outputs = h0[k], c0[k], []
            for x_part in x_parts:
                h, c = lstm_update(x_part + h @ weight_hh.T + bias_hh, c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)  # (B, T, H)
            h_n.append(h)
            c_n.append(c)
        output, (h_n, c_n) = self._finish(
            x, [torch.stack(h_n), torch.stack(c_n)], unbatched
        )
        return output, (h_n, c_n)


def set_forget_bias(lstm: nn.Module, value: float) -> nn.Module:
    """Set every LSTM layer's forget-gate bias to `value` (b_ih's f slice; b_hh's to 0).

    Works on our LSTM and LSTMCell and on PyTorch's. Used in chapter 2.
    """
    if not isinstance(lstm, (LSTM, LSTMCell, nn.LSTM, nn.LSTMCell)):
        raise ValueError(
            f"set_forget_bias needs an LSTM or LSTMCell, got {type(lstm).__name__}"
        )
    if getattr(lstm, "bias", True) is False:
        raise ValueError("set_forget_bias needs an LSTM with biases (bias=True)")
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith(("bias_ih", "bias_hh")):
                H = p.shape[0] // 4
                p[H : 2 * H] = value if name.startswith("bias_ih") else 0.0
    return lstm


class LastStepClassifier(nn.Module):
    """A recurrent network read out at the last step: (B, T, I) -> (B, num_classes).

    `cell` is 'rnn' or 'lstm' (our from-scratch modules); `forget_bias` sets the LSTM's.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        forget_bias: float | None = None,
    ):
        super().__init__()
        check_choice("cell", cell, ("rnn", "lstm"))
        check_int("num_classes", num_classes)
        self.recurrent = (RNN if cell == "rnn" else LSTM)(input_size, hidden_size)
        if forget_bias is not None:
            if cell != "lstm":
                raise ValueError("forget_bias is only for cell='lstm'")
            set_forget_bias(self.recurrent, forget_bias)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.recurrent(x)  # (B, T, H)
        return self.head(output[:, -1])  # (B, num_classes)
