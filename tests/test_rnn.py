"""Chapters 1 and 2: the from-scratch RNN and LSTM equal nn.RNN and nn.LSTM with the same weights."""

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.rnn import (LSTM, RNN, LSTMCell, RNNCell, count_parameters, lstm_cell, rnn_cell,
                       set_forget_bias)

TOL = dict(rtol=1e-5, atol=1e-5)


def _pair(kind, input_size, hidden_size, num_layers=1, batch_first=True, nonlinearity="tanh", seed=0):
    """A PyTorch module and ours with the same weights (copied with load_state_dict)."""
    torch.manual_seed(seed)
    if kind == "rnn":
        reference = nn.RNN(input_size, hidden_size, num_layers, batch_first=batch_first, nonlinearity=nonlinearity)
        ours = RNN(input_size, hidden_size, num_layers, batch_first=batch_first, nonlinearity=nonlinearity)
    else:
        reference = nn.LSTM(input_size, hidden_size, num_layers, batch_first=batch_first)
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
    loss = (output * weights).sum() + sum((f ** 2).sum() for f in finals)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return output, finals, grads, x.grad


def _assert_same(kind, input_size, hidden_size, num_layers, batch, length, batch_first=True,
                 nonlinearity="tanh", with_state=False, unbatched=False, seed=0):
    reference, ours = _pair(kind, input_size, hidden_size, num_layers, batch_first, nonlinearity, seed)
    g = torch.Generator().manual_seed(seed + 1)
    shape = (length, input_size) if unbatched else (
        (batch, length, input_size) if batch_first else (length, batch, input_size))
    x = torch.randn(shape, generator=g)
    state = None
    if with_state:
        state_shape = (num_layers, hidden_size) if unbatched else (num_layers, batch, hidden_size)
        h0 = torch.randn(state_shape, generator=g)
        state = h0 if kind == "rnn" else (h0, torch.randn(state_shape, generator=g))
    out_ref, finals_ref, grads_ref, xgrad_ref = _run_and_backward(reference, x, state)
    out, finals, grads, xgrad = _run_and_backward(ours, x, state)
    assert out.shape == out_ref.shape
    torch.testing.assert_close(out, out_ref, **TOL)
    for a, b in zip(finals, finals_ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], **TOL, msg=f"gradient of {name}")
    torch.testing.assert_close(xgrad, xgrad_ref, **TOL)


# --- Reference equivalence ----------------------------------------------------------------

CASES = [  # input_size, hidden_size, num_layers, batch, length
    (3, 5, 1, 4, 7),
    (6, 4, 2, 3, 9),
    (2, 8, 3, 2, 5),
    (5, 5, 1, 1, 6),     # batch size 1
    (4, 6, 2, 3, 1),     # length-1 sequence
    (1, 3, 1, 1, 1),     # both
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
@given(kind=st.sampled_from(["rnn", "lstm"]), input_size=st.integers(1, 6), hidden_size=st.integers(1, 6),
       num_layers=st.integers(1, 3), batch=st.integers(1, 4), length=st.integers(1, 8),
       with_state=st.booleans(), seed=st.integers(0, 1000))
def test_equals_pytorch_property(kind, input_size, hidden_size, num_layers, batch, length, with_state, seed):
    _assert_same(kind, input_size, hidden_size, num_layers, batch, length, with_state=with_state, seed=seed)


def test_state_dicts_have_pytorch_names_and_shapes():
    for kind in ("rnn", "lstm"):
        reference, ours = _pair(kind, 3, 5, num_layers=2)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
               {k: v.shape for k, v in reference.state_dict().items()}
    assert "weight_ih_l1" in dict(LSTM(3, 5, 2).named_parameters())


@pytest.mark.parametrize("ours_cls, ref_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell)])
def test_cells_equal_pytorch_cells(ours_cls, ref_cls):
    torch.manual_seed(0)
    reference, ours = ref_cls(4, 6), ours_cls(4, 6)
    ours.load_state_dict(reference.state_dict())
    x, h, c = torch.randn(3, 4), torch.randn(3, 6), torch.randn(3, 6)
    state = h if ours_cls is RNNCell else (h, c)
    a, b = reference(x, state), ours(x, state)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(v, u, **TOL)
    for u, v in zip(*(m(x) if ours_cls is RNNCell else m(x)[0] for m in (reference, ours))):
        torch.testing.assert_close(v, u, **TOL)   # zero initial state by default


def test_no_pytorch_recurrent_modules_inside():
    for module in (RNN(3, 4, 2), LSTM(3, 4, 2), RNNCell(3, 4), LSTMCell(3, 4)):
        assert not any(isinstance(m, (nn.RNNBase, nn.RNNCellBase)) for m in module.modules())


def test_cell_functions_are_the_modules_equations():
    torch.manual_seed(0)
    cell = LSTMCell(2, 3)
    x, h, c = torch.randn(4, 2), torch.randn(4, 3), torch.randn(4, 3)
    h1, c1 = lstm_cell(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    i, f, g, o = (x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh).chunk(4, 1)
    torch.testing.assert_close(c1, torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))
    torch.testing.assert_close(h1, torch.sigmoid(o) * torch.tanh(c1))
    r = RNNCell(2, 3, nonlinearity="relu")
    assert (rnn_cell(x, h, r.weight_ih, r.weight_hh, r.bias_ih, r.bias_hh, "relu") >= 0).all()


# --- Parameter counts and the forget bias -----------------------------------------------------

@pytest.mark.parametrize("input_size, hidden_size, num_layers", [(3, 5, 1), (16, 32, 2), (1, 1, 3)])
def test_lstm_has_exactly_four_times_the_rnn_parameters(input_size, hidden_size, num_layers):
    rnn, lstm = RNN(input_size, hidden_size, num_layers), LSTM(input_size, hidden_size, num_layers)
    for kind in ("weight", "bias", "all"):
        assert count_parameters(lstm, kind) == 4 * count_parameters(rnn, kind)
    reference = nn.LSTM(input_size, hidden_size, num_layers)
    assert count_parameters(lstm) == sum(p.numel() for p in reference.parameters())
    with pytest.raises(ValueError, match="kind must be"):
        count_parameters(rnn, "gates")


def test_set_forget_bias_moves_only_the_forget_slice():
    for module in (LSTM(3, 4, 2), nn.LSTM(3, 4, 2), LSTMCell(3, 4)):
        before = {n: p.detach().clone() for n, p in module.named_parameters()}
        set_forget_bias(module, 2.5)
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                expected = 2.5 if name.startswith("bias_ih") else 0.0
                assert torch.all(p[4:8] == expected)
                assert torch.equal(torch.cat([p[:4], p[8:]]), torch.cat([before[name][:4], before[name][8:]]))
            else:
                assert torch.equal(p, before[name])
    for not_an_lstm in (nn.Linear(2, 2), nn.RNN(3, 4), nn.GRU(3, 4)):  # an RNN's biases have no f slice
        with pytest.raises(ValueError, match="needs an LSTM or LSTMCell"):
            set_forget_bias(not_an_lstm, 1.0)


# --- Bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [RNN, LSTM])
@pytest.mark.parametrize("kwargs, match", [
    (dict(input_size=0, hidden_size=4), "input_size must be a positive int, got input_size=0"),
    (dict(input_size=3, hidden_size=-2), "hidden_size must be a positive int, got hidden_size=-2"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers must be a positive int"),
    (dict(input_size=3.0, hidden_size=4), "input_size must be a positive int"),
])
def test_non_positive_sizes_are_rejected(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_nonlinearity_is_rejected():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got nonlinearity='sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="gelu")


@pytest.mark.parametrize("cls", [RNN, LSTM])
def test_wrong_feature_size_is_rejected(cls):
    with pytest.raises(ValueError, match="x has 5 features, but input_size=3"):
        cls(3, 4)(torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match="x must be a 2-D"):
        cls(3, 4)(torch.randn(3))
    with pytest.raises(ValueError, match="at least one time step"):
        cls(3, 4)(torch.randn(2, 0, 3))


def test_wrong_state_shapes_are_rejected():
    x = torch.randn(2, 6, 3)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        RNN(3, 4, num_layers=2)(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"c0 must have shape \(1, 2, 4\), got \(1, 3, 4\)"):
        LSTM(3, 4)(x, (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="pair"):
        LSTM(3, 4)(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\)"):
        RNNCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, input_size=3\)"):
        LSTMCell(3, 4)(torch.randn(2, 2))


# --- Gradient flow, the recall task and the character model ----------------------------------

def test_state_jacobian_norms_match_the_explicit_jacobian():
    from utils.rnn import scaled_rnn_cell, state_jacobian_norms
    cell = scaled_rnn_cell(5, 1.3, seed=2)
    x = torch.randn(1, 6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    norms = state_jacobian_norms(cell, x)

    def h_T_from(h_t, t):                      # run the cell from step t+1 on, starting at h_t
        h = h_t
        for k in range(t + 1, 6):
            h = cell(x[:, k], h)
        return h[0]

    h = torch.zeros(1, 5, dtype=torch.float64)
    for t in range(6):
        h = cell(x[:, t], h)
        jacobian = torch.autograd.functional.jacobian(lambda s: h_T_from(s, t), h.detach())[:, 0]  # (H, H)
        torch.testing.assert_close(norms[t], torch.linalg.matrix_norm(jacobian, ord=2))


def test_linear_rnn_gradient_is_scale_to_the_distance():
    import utils.rnn as rnn_module
    cell = rnn_module.scaled_rnn_cell(8, 0.8)
    rnn_module.NONLINEARITIES["identity"] = lambda z: z
    try:
        cell.nonlinearity = "identity"
        norms = rnn_module.state_jacobian_norms(cell, torch.randn(2, 10, 1, dtype=torch.float64)).flip(0)
    finally:
        del rnn_module.NONLINEARITIES["identity"]
    torch.testing.assert_close(norms, 0.8 ** torch.arange(10, dtype=torch.float64))


def test_gradient_vanishes_for_small_scale_and_forget_bias_helps():
    from utils.rnn import lstm_gradient_flow, rnn_gradient_flow
    _, small = rnn_gradient_flow(0.5, length=30)
    assert small[29] < 1e-6
    _, rnn_norms, lstm0 = lstm_gradient_flow(0.0, length=30)
    _, _, lstm2 = lstm_gradient_flow(2.0, length=30)
    assert rnn_norms[29] < lstm0[29] < lstm2[29]
    with pytest.raises(ValueError, match="state must be"):
        from utils.rnn import state_jacobian_norms
        state_jacobian_norms(RNNCell(1, 2), torch.randn(1, 3, 1), state="c")


def test_signal_recall_places_the_signal_lag_steps_before_the_end():
    from utils.sequence_tasks import RecallConfig, signal_recall
    config = RecallConfig(max_lag=9, n_signals=3, n_distractors=2)
    x, y = signal_recall(config, 50, torch.Generator().manual_seed(0), lag=4)
    tokens = x.argmax(-1)                                             # (B, T)
    assert x.shape == (50, 10, 5)
    assert torch.equal(tokens[:, 10 - 1 - 4], y)
    others = torch.cat([tokens[:, :5], tokens[:, 6:]], dim=1)
    assert (others >= config.n_signals).all()                        # everything else is a distractor
    with pytest.raises(ValueError, match="lag must be in"):
        signal_recall(config, 2, torch.Generator(), lag=10)
    with pytest.raises(ValueError, match="max_lag must be >= 1"):
        RecallConfig(max_lag=0)


def test_char_tokenizer_round_trip_and_model_shapes():
    from utils.char_lm import CharLM, CharLMConfig, CharTokenizer, generate, random_chunks
    tokenizer = CharTokenizer("in the beginning\n")
    ids = tokenizer.encode("the beginning")
    assert tokenizer.decode(ids) == "the beginning"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.encode("Z")
    x, y = next(random_chunks(tokenizer.encode("in the beginning\n" * 3), batch_size=2, block_size=5))
    assert x.shape == y.shape == (2, 5) and torch.equal(x[:, 1:], y[:, :-1])
    for cell in ("rnn", "lstm"):
        model = CharLM(CharLMConfig(tokenizer.vocab_size, embed_size=4, hidden_size=6, cell=cell))
        assert model(x)[0].shape == (2, 5, tokenizer.vocab_size)
        assert generate(model, tokenizer, "in", length=7).startswith("in") and len(generate(model, tokenizer, "in", 7)) == 9


@pytest.mark.parametrize("scale, nonlinearity", [(0.5, "tanh"), (0.5, "relu"), (2.0, "tanh"), (2.0, "relu")])
def test_draw_rnn_gradients_keeps_both_curves_inside_the_axes(scale, nonlinearity):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.rnn import draw_rnn_gradients
    fig = plt.figure()
    axes = draw_rnn_gradients(fig, scale=scale, nonlinearity=nonlinearity, length=60)
    low, high = axes[0].get_ylim()
    for line in axes[0].get_lines():                   # the measured norms and scale^k
        y = line.get_ydata()
        assert low <= y.min() and y.max() <= high
    plt.close(fig)


def test_count_parameters_by_kind_inside_a_wrapping_module():
    wrapped = nn.Sequential(LSTM(3, 4))                  # names like "0.weight_ih_l0"
    assert count_parameters(wrapped, "weight") == 4 * 4 * (3 + 4)
    assert count_parameters(wrapped, "bias") == 2 * 4 * 4
