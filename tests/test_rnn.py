"""Chapters 1 and 2: the from-scratch RNN and LSTM equal nn.RNN and nn.LSTM with the same weights."""

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.rnn import LSTM, RNN, LSTMCell, RNNCell, lstm_cell, rnn_cell, set_forget_bias
from utils.train import count_parameters

TOL = dict(rtol=1e-5, atol=1e-5)


def _pair(
    kind,
    input_size,
    hidden_size,
    num_layers=1,
    batch_first=True,
    nonlinearity="tanh",
    seed=0,
    from_torch=False,
):
    """A PyTorch module and ours with the same weights (load_state_dict, or from_torch)."""
    torch.manual_seed(seed)
    if kind == "rnn":
        reference = nn.RNN(
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            nonlinearity=nonlinearity,
        )
        if from_torch:
            return reference, RNN.from_torch(reference)
        ours = RNN(
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            nonlinearity=nonlinearity,
        )
    else:
        reference = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=batch_first
        )
        if from_torch:
            return reference, LSTM.from_torch(reference)
        ours = LSTM(input_size, hidden_size, num_layers, batch_first=batch_first)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _run_and_backward(module, x, state):
    """Forward, then backward of a loss that touches the output and every final state."""
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    output, final = module(x, state)
    finals = final if isinstance(final, tuple) else (final,)
    weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape)
    loss = (output * weights).sum() + sum((f**2).sum() for f in finals)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return output, finals, grads, x.grad


def _assert_same(
    kind,
    input_size,
    hidden_size,
    num_layers,
    batch,
    length,
    batch_first=True,
    nonlinearity="tanh",
    with_state=False,
    unbatched=False,
    seed=0,
    from_torch=False,
):
    reference, ours = _pair(
        kind,
        input_size,
        hidden_size,
        num_layers,
        batch_first,
        nonlinearity,
        seed,
        from_torch,
    )
    g = torch.Generator().manual_seed(seed + 1)
    shape = (
        (length, input_size)
        if unbatched
        else (
            (batch, length, input_size) if batch_first else (length, batch, input_size)
        )
    )
    x = torch.randn(shape, generator=g)
    state = None
    if with_state:
        state_shape = (
            (num_layers, hidden_size) if unbatched else (num_layers, batch, hidden_size)
        )
        h0 = torch.randn(state_shape, generator=g)
        state = h0 if kind == "rnn" else (h0, torch.randn(state_shape, generator=g))
    out_ref, finals_ref, grads_ref, xgrad_ref = _run_and_backward(reference, x, state)
    out, finals, grads, xgrad = _run_and_backward(ours, x, state)
    assert out.shape == out_ref.shape
    torch.testing.assert_close(out, out_ref, **TOL)
    for a, b in zip(finals, finals_ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(
            grads[name], grads_ref[name], **TOL, msg=f"gradient of {name}"
        )
    torch.testing.assert_close(xgrad, xgrad_ref, **TOL)


# --- Reference equivalence ----------------------------------------------------------------

CASES = [  # input_size, hidden_size, num_layers, batch, length
    (3, 5, 1, 4, 7),
    (6, 4, 2, 3, 9),
    (2, 8, 3, 2, 5),
    (5, 5, 1, 1, 6),  # batch size 1
    (4, 6, 2, 3, 1),  # length-1 sequence
    (1, 3, 1, 1, 1),  # both
]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("case", CASES)
def test_equals_pytorch_outputs_states_and_gradients(kind, case):
    _assert_same(kind, *case)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("case", CASES)
def test_equals_pytorch_with_a_given_initial_state(kind, case):
    _assert_same(kind, *case, with_state=True, seed=3)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_equals_pytorch_with_time_first_layout(kind):
    _assert_same(kind, 4, 6, 2, 3, 5, batch_first=False, with_state=True)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_equals_pytorch_on_unbatched_input(kind):
    _assert_same(kind, 4, 6, 2, None, 5, with_state=True, unbatched=True)
    _assert_same(kind, 4, 6, 1, None, 3, unbatched=True)


def test_relu_rnn_equals_pytorch():
    _assert_same("rnn", 3, 7, 2, 4, 8, nonlinearity="relu", with_state=True)


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from(["rnn", "lstm"]),
    input_size=st.integers(1, 6),
    hidden_size=st.integers(1, 6),
    num_layers=st.integers(1, 3),
    batch=st.integers(1, 4),
    length=st.integers(1, 8),
    with_state=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_equals_pytorch_property(
    kind, input_size, hidden_size, num_layers, batch, length, with_state, seed
):
    _assert_same(
        kind,
        input_size,
        hidden_size,
        num_layers,
        batch,
        length,
        with_state=with_state,
        seed=seed,
    )


def test_state_dicts_have_pytorch_names_and_shapes():
    for kind in ("rnn", "lstm"):
        reference, ours = _pair(kind, 3, 5, num_layers=2)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()
        }
    assert "weight_ih_l1" in dict(LSTM(3, 5, 2).named_parameters())


# --- from_torch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, num_layers, batch_first, nonlinearity",
    [
        ("rnn", 1, True, "tanh"),
        ("rnn", 3, False, "tanh"),
        ("rnn", 2, True, "relu"),
        ("rnn", 2, False, "relu"),
        ("lstm", 1, True, "tanh"),
        ("lstm", 2, False, "tanh"),
        ("lstm", 3, True, "tanh"),
    ],
)
def test_from_torch_equals_pytorch(kind, num_layers, batch_first, nonlinearity):
    reference, ours = _pair(
        kind, 3, 5, num_layers, batch_first, nonlinearity, from_torch=True
    )
    assert ours.num_layers == num_layers and ours.batch_first is batch_first
    assert getattr(ours, "nonlinearity", "tanh") == nonlinearity
    _assert_same(
        kind,
        3,
        5,
        num_layers,
        2,
        6,
        batch_first=batch_first,
        nonlinearity=nonlinearity,
        with_state=True,
        from_torch=True,
    )


def test_from_torch_keeps_dtype_and_copies_the_weights():
    reference = nn.LSTM(2, 3).double()
    ours = LSTM.from_torch(reference)
    assert ours.weight_ih_l0.dtype == torch.float64
    with torch.no_grad():
        reference.weight_ih_l0.add_(1.0)  # a copy, not shared storage
    assert not torch.equal(ours.weight_ih_l0, reference.weight_ih_l0)


@pytest.mark.parametrize("cls, reference", [(RNN, nn.RNN), (LSTM, nn.LSTM)])
def test_from_torch_copies_float64_weights_exactly(cls, reference):
    torch.manual_seed(0)
    module = reference(2, 3, 2).double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1e-9 * torch.randn_like(p))  # values a float32 cannot hold
    ours = cls.from_torch(module)
    for name, p in module.named_parameters():
        assert torch.equal(getattr(ours, name), p), name


@pytest.mark.parametrize(
    "cls, module",
    [
        (RNN, nn.RNN(3, 4, bidirectional=True)),
        (RNN, nn.RNN(3, 4, 2, dropout=0.5)),
        (RNN, nn.RNN(3, 4, bias=False)),
        (LSTM, nn.LSTM(3, 4, bidirectional=True)),
        (LSTM, nn.LSTM(3, 4, proj_size=2)),
        (LSTM, nn.LSTM(3, 4, 2, dropout=0.5)),
        (LSTM, nn.LSTM(3, 4, bias=False)),
    ],
)
def test_from_torch_rejects_what_it_cannot_copy(cls, module):
    with pytest.raises(
        ValueError, match="bias=True, bidirectional=False, dropout=0 and proj_size=0"
    ):
        cls.from_torch(module)


@pytest.mark.parametrize(
    "cls, module, match",
    [
        (RNN, nn.LSTM(3, 4), "needs an nn.RNN, got LSTM"),
        (LSTM, nn.RNN(3, 4), "needs an nn.LSTM, got RNN"),
        (LSTM, nn.GRU(3, 4), "needs an nn.LSTM, got GRU"),
        (RNN, RNN(3, 4), "needs an nn.RNN, got RNN"),  # ours is not PyTorch's
    ],
)
def test_from_torch_rejects_other_modules(cls, module, match):
    with pytest.raises(ValueError, match=match):
        cls.from_torch(module)


# --- Cells --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours_cls, ref_cls, kwargs",
    [
        (RNNCell, nn.RNNCell, {}),
        (RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
        (LSTMCell, nn.LSTMCell, {}),
    ],
)
def test_cells_equal_pytorch_cells(ours_cls, ref_cls, kwargs):
    torch.manual_seed(0)
    reference, ours = ref_cls(4, 6, **kwargs), ours_cls(4, 6, **kwargs)
    ours.load_state_dict(reference.state_dict())
    x, h, c = torch.randn(3, 4), torch.randn(3, 6), torch.randn(3, 6)
    state = h if ours_cls is RNNCell else (h, c)
    a, b = reference(x, state), ours(x, state)
    for u, v in zip(
        a if isinstance(a, tuple) else (a,),
        b if isinstance(b, tuple) else (b,),
        strict=True,
    ):
        torch.testing.assert_close(v, u, **TOL)
    for u, v in zip(
        *(m(x) if ours_cls is RNNCell else m(x)[0] for m in (reference, ours)),
        strict=True,
    ):
        torch.testing.assert_close(v, u, **TOL)  # zero initial state by default


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_function_equals_nn_rnn_cell(nonlinearity):
    torch.manual_seed(0)
    reference = nn.RNNCell(2, 3, nonlinearity=nonlinearity)
    x, h = torch.randn(4, 2), torch.randn(4, 3)
    got = rnn_cell(
        x,
        h,
        reference.weight_ih,
        reference.weight_hh,
        reference.bias_ih,
        reference.bias_hh,
        nonlinearity,
    )
    torch.testing.assert_close(got, reference(x, h), **TOL)
    if nonlinearity == "relu":
        assert (got == 0).any() and (
            got >= 0
        ).all()  # the relu really clipped something


def test_lstm_cell_function_equals_nn_lstm_cell():
    torch.manual_seed(0)
    reference = nn.LSTMCell(2, 3)
    x, h, c = torch.randn(4, 2), torch.randn(4, 3), torch.randn(4, 3)
    h1, c1 = lstm_cell(
        x,
        h,
        c,
        reference.weight_ih,
        reference.weight_hh,
        reference.bias_ih,
        reference.bias_hh,
    )
    ref_h, ref_c = reference(x, (h, c))
    torch.testing.assert_close(h1, ref_h, **TOL)
    torch.testing.assert_close(c1, ref_c, **TOL)


def test_no_pytorch_recurrent_modules_inside():
    for module in (RNN(3, 4, 2), LSTM(3, 4, 2), RNNCell(3, 4), LSTMCell(3, 4)):
        assert not any(
            isinstance(m, (nn.RNNBase, nn.RNNCellBase)) for m in module.modules()
        )


# --- Parameter counts and the forget bias -----------------------------------------------------


@pytest.mark.parametrize(
    "input_size, hidden_size, num_layers", [(3, 5, 1), (16, 32, 2), (1, 1, 3)]
)
def test_lstm_has_exactly_four_times_the_rnn_parameters(
    input_size, hidden_size, num_layers
):
    rnn, lstm = (
        RNN(input_size, hidden_size, num_layers),
        LSTM(input_size, hidden_size, num_layers),
    )
    for kind in ("weight", "bias", "all"):
        assert count_parameters(lstm, kind) == 4 * count_parameters(rnn, kind)
    reference = nn.LSTM(input_size, hidden_size, num_layers)
    assert count_parameters(lstm) == sum(p.numel() for p in reference.parameters())


def test_set_forget_bias_moves_only_the_forget_slice():
    for module in (LSTM(3, 4, 2), nn.LSTM(3, 4, 2), LSTMCell(3, 4), nn.LSTMCell(3, 4)):
        before = {n: p.detach().clone() for n, p in module.named_parameters()}
        assert set_forget_bias(module, 2.5) is module
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                expected = 2.5 if name.startswith("bias_ih") else 0.0
                assert torch.all(p[4:8] == expected)
                assert torch.equal(
                    torch.cat([p[:4], p[8:]]),
                    torch.cat([before[name][:4], before[name][8:]]),
                )
            else:
                assert torch.equal(p, before[name])
    for not_an_lstm in (
        nn.Linear(2, 2),
        nn.RNN(3, 4),
        nn.GRU(3, 4),
        RNN(3, 4),
    ):  # no f slice
        with pytest.raises(ValueError, match="needs an LSTM or LSTMCell"):
            set_forget_bias(not_an_lstm, 1.0)
    with pytest.raises(ValueError, match="bias=True"):
        set_forget_bias(nn.LSTM(3, 4, bias=False), 1.0)


# --- Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RNN, LSTM])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(input_size=0, hidden_size=4),
            "input_size must be a positive int, got input_size=0",
        ),
        (
            dict(input_size=3, hidden_size=-2),
            "hidden_size must be a positive int, got hidden_size=-2",
        ),
        (
            dict(input_size=3, hidden_size=4, num_layers=0),
            "num_layers must be a positive int",
        ),
        (dict(input_size=3.0, hidden_size=4), "input_size must be a positive int"),
        (
            dict(input_size=3, hidden_size=4, batch_first="yes"),
            "batch_first must be True or False, got batch_first='yes'",
        ),
        (
            dict(input_size=3, hidden_size=4, batch_first=1),
            "batch_first must be True or False",
        ),
    ],
)
def test_bad_sizes_and_flags_are_rejected(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_arguments_after_num_layers_are_keyword_only():
    with pytest.raises(TypeError):
        RNN(3, 4, 1, "relu")
    with pytest.raises(TypeError):
        RNN(3, 4, 1, "tanh", False)
    with pytest.raises(TypeError):
        LSTM(3, 4, 1, False)
    assert RNN(3, 4, 2, nonlinearity="relu", batch_first=False).batch_first is False


def test_bad_nonlinearity_is_rejected():
    with pytest.raises(
        ValueError,
        match="nonlinearity must be one of 'tanh', 'relu'; got nonlinearity='sigmoid'",
    ):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="gelu")


@pytest.mark.parametrize("cls", [RNN, LSTM])
def test_wrong_input_is_rejected(cls):
    with pytest.raises(ValueError, match=r"I = input_size=3, got shape \(2, 6, 5\)"):
        cls(3, 4)(torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match=r"x must be \(T, I\) or \(B, T, I\)"):
        cls(3, 4)(torch.randn(3))
    with pytest.raises(ValueError, match="at least one time step"):
        cls(3, 4)(torch.randn(2, 0, 3))
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        cls(3, 4)(torch.zeros(2, 6, 3, dtype=torch.long))


def test_wrong_state_shapes_are_rejected():
    x = torch.randn(2, 6, 3)
    with pytest.raises(
        ValueError, match=r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"
    ):
        RNN(3, 4, num_layers=2)(x, torch.zeros(1, 2, 4))
    with pytest.raises(
        ValueError, match=r"c0 must have shape \(1, 2, 4\), got \(1, 3, 4\)"
    ):
        LSTM(3, 4)(x, (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="pair"):
        LSTM(3, 4)(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"h0 must have the input's dtype and device"):
        RNN(3, 4)(x, torch.zeros(1, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\)"):
        RNNCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\), got \(2, 2\)"):
        LSTMCell(3, 4)(torch.randn(2, 2))
