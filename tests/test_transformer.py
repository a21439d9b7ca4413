"""utils.transformer (chapter 5): equals nn.Transformer with copied weights; causality; padding."""

import math

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from utils.attention import causal_mask
from utils.transformer import (DecoderLayer, EncoderLayer, Seq2Seq, Seq2SeqConfig, Transformer,
                               sinusoidal_positional_encoding)

ATOL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor")


def _torch_transformer(d_model=32, nhead=4, n_enc=2, n_dec=2, ff=64, norm_first=False, seed=0):
    torch.manual_seed(seed)
    return nn.Transformer(d_model, nhead, n_enc, n_dec, ff, dropout=0.0, batch_first=True,
                          norm_first=norm_first)


def _padding(lengths, T):
    return torch.arange(T) < torch.tensor(lengths)[:, None]          # (B, T), True = real token


# --- positional encoding ---

def test_positional_encoding_matches_the_formula():
    T, d = 11, 8
    pe = sinusoidal_positional_encoding(T, d)
    for t in (0, 3, 10):
        for i in range(d // 2):
            angle = t / 10000 ** (2 * i / d)
            assert pe[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("T, d_model, match", [(0, 8, "T must be"), (4, 7, "d_model must be"), (4, 0, "d_model")])
def test_positional_encoding_rejects_bad_sizes(T, d_model, match):
    with pytest.raises(ValueError, match=match):
        sinusoidal_positional_encoding(T, d_model)


# --- reference equivalence ---

@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("n_enc, n_dec", [(1, 1), (2, 3)])
def test_equals_nn_transformer_with_all_masks(norm_first, n_enc, n_dec):
    reference = _torch_transformer(n_enc=n_enc, n_dec=n_dec, norm_first=norm_first)
    ours = Transformer.from_torch(reference)
    torch.manual_seed(1)
    B, S, T = 3, 7, 5
    src, tgt = torch.randn(B, S, 32), torch.randn(B, T, 32)
    src_mask = (torch.rand(S, S) > 0.3) | torch.eye(S, dtype=torch.bool)   # every query keeps one key
    tgt_mask = causal_mask(T)
    memory_mask = torch.rand(T, S) > 0.3
    memory_mask[:, 0] = True
    src_real, tgt_real = _padding([7, 4, 2], S), _padding([5, 3, 5], T)
    # PyTorch's boolean masks mean True = masked out, ours True = may attend: pass the complement.
    expected = reference(src, tgt, src_mask=~src_mask, tgt_mask=~tgt_mask, memory_mask=~memory_mask,
                         src_key_padding_mask=~src_real, tgt_key_padding_mask=~tgt_real,
                         memory_key_padding_mask=~src_real)
    got = ours(src, tgt, src_mask=src_mask, tgt_mask=tgt_mask, memory_mask=memory_mask,
               src_key_padding_mask=src_real, tgt_key_padding_mask=tgt_real, memory_key_padding_mask=src_real)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_equals_nn_transformer_without_masks_and_gradients_agree(norm_first):
    reference = _torch_transformer(norm_first=norm_first)
    ours = Transformer.from_torch(reference)
    torch.manual_seed(2)
    src, tgt = torch.randn(2, 6, 32), torch.randn(2, 4, 32)
    expected, got = reference(src, tgt), ours(src, tgt)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    expected.pow(2).sum().backward()
    got.pow(2).sum().backward()
    torch.testing.assert_close(ours.encoder_layers[0].feed_forward.linear1.weight.grad,
                               reference.encoder.layers[0].linear1.weight.grad, atol=1e-4, rtol=1e-4)


def test_final_layer_norms_are_copied():
    reference = _torch_transformer()
    with torch.no_grad():
        reference.encoder.norm.weight.uniform_(0.5, 1.5)
        reference.decoder.norm.bias.uniform_(-1, 1)
    ours = Transformer.from_torch(reference)
    src, tgt = torch.randn(2, 5, 32), torch.randn(2, 3, 32)
    torch.testing.assert_close(ours(src, tgt), reference(src, tgt), atol=ATOL, rtol=0)


def test_layers_alone_equal_torch_layers():
    reference = _torch_transformer()
    ours = Transformer.from_torch(reference)
    x, memory = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    assert isinstance(ours.encoder_layers[0], EncoderLayer) and isinstance(ours.decoder_layers[0], DecoderLayer)
    torch.testing.assert_close(ours.encoder_layers[0](x), reference.encoder.layers[0](x), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.decoder_layers[1](x, memory), reference.decoder.layers[1](x, memory),
                               atol=ATOL, rtol=0)


def test_from_torch_rejects_other_modules_and_batch_first_false():
    with pytest.raises(ValueError, match="nn.Transformer"):
        Transformer.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="batch_first=True"):
        Transformer.from_torch(nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=False))
    with pytest.raises(ValueError, match="relu"):
        Transformer.from_torch(nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=True, activation="gelu"))


# --- bad input ---

def test_rejects_mismatched_d_model():
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(ValueError, match=r"src must be \(B, T, d_model=16\)"):
        model(torch.randn(2, 5, 8), torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match=r"tgt must be \(B, T, d_model=16\)"):
        model(torch.randn(2, 5, 16), torch.randn(2, 3, 12))


def test_rejects_empty_sequences():
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(ValueError, match="src is an empty sequence"):
        model(torch.randn(2, 0, 16), torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="tgt is an empty sequence"):
        model(torch.randn(2, 4, 16), torch.randn(2, 0, 16))


@pytest.mark.parametrize("kwargs, match", [
    ({"tgt_mask": causal_mask(4)}, r"tgt_mask must be a boolean \(T_q, T_k\) = \(3, 3\)"),
    ({"src_mask": torch.ones(5, 5)}, "src_mask must be a boolean"),
    ({"memory_mask": torch.ones(5, 3, dtype=torch.bool)}, r"memory_mask must be a boolean \(T_q, T_k\) = \(3, 5\)"),
    ({"src_key_padding_mask": torch.ones(2, 3, dtype=torch.bool)}, r"src_key_padding_mask must be a boolean \(B, T_k\) = \(2, 5\)"),
    ({"tgt_key_padding_mask": torch.ones(3, 3, dtype=torch.bool)}, "tgt_key_padding_mask must be"),
])
def test_rejects_masks_of_the_wrong_shape(kwargs, match):
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(ValueError, match=match):
        model(torch.randn(2, 5, 16), torch.randn(2, 3, 16), **kwargs)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        Transformer(10, 3, 1, 1, 16)
    with pytest.raises(ValueError, match="num_encoder_layers"):
        Transformer(16, 2, 0, 1, 16)
    with pytest.raises(ValueError, match="dropout must be in"):
        Transformer(16, 2, 1, 1, 16, dropout=1.5)


# --- properties of the Seq2Seq model ---

def _seq2seq(seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=9, d_model=16, num_heads=2,
                                 dim_feedforward=32, max_len=16)).eval()


@settings(max_examples=30, deadline=None)
@given(t=st.integers(0, 6), seed=st.integers(0, 10_000))
def test_causality_later_target_tokens_do_not_change_earlier_outputs(t, seed):
    model = _seq2seq()
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 12, (2, 5), generator=g)
    tgt = torch.randint(3, 9, (2, 7), generator=g)
    changed = tgt.clone()
    changed[:, t + 1:] = torch.randint(3, 9, changed[:, t + 1:].shape, generator=g)
    with torch.no_grad():
        before, after = model(src, tgt), model(src, changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=ATOL, rtol=0)
    if t < 6 and not torch.equal(changed, tgt):      # the check can fail: later positions do change
        assert not torch.allclose(after[:, t + 1:], before[:, t + 1:], atol=ATOL)


@settings(max_examples=30, deadline=None)
@given(src_len=st.integers(1, 6), tgt_len=st.integers(1, 5), extra=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_padding_changes_nothing_for_real_tokens(src_len, tgt_len, extra, seed):
    model = _seq2seq()
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 12, (1, src_len), generator=g)
    tgt = torch.randint(3, 9, (1, tgt_len), generator=g)
    pad = model.config.pad_id
    src_padded = torch.cat([src, torch.full((1, extra), pad)], dim=1)
    tgt_padded = torch.cat([tgt, torch.full((1, extra), pad)], dim=1)
    with torch.no_grad():
        alone = model(src, tgt)
        padded = model(src_padded, tgt_padded)
    torch.testing.assert_close(padded[:, :tgt_len], alone, atol=ATOL, rtol=0)


def test_padding_in_a_batch_changes_nothing_and_removing_the_mask_would():
    model = _seq2seq()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    tgt = torch.tensor([[1, 4, 5], [1, 6, 0]])
    with torch.no_grad():
        batched = model(src, tgt)
        second = model(src[1:, :2], tgt[1:, :2])
        torch.testing.assert_close(batched[1:, :2], second, atol=ATOL, rtol=0)
        model.config.pad_id = 11                            # now token 0 counts as a real token
        assert not torch.allclose(model(src, tgt)[1:, :2], second, atol=ATOL)


def test_target_padding_mask_is_redundant_before_right_padding_under_a_causal_mask():
    """Chapter 5, exercise 3: right padding is invisible to earlier causal queries."""
    model = Transformer(16, 2, 1, 2, 32, dropout=0.0)
    src, tgt = torch.randn(2, 4, 16), torch.randn(2, 5, 16)
    tgt_real = _padding([5, 2], 5)
    with torch.no_grad():
        masked = model(src, tgt, tgt_mask=causal_mask(5), tgt_key_padding_mask=tgt_real)
        unmasked = model(src, tgt, tgt_mask=causal_mask(5))
        no_memory_mask = model(src, tgt, tgt_mask=causal_mask(5),
                               memory_key_padding_mask=_padding([4, 2], 4))
    torch.testing.assert_close(masked[0], unmasked[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(masked[1, :2], unmasked[1, :2], atol=ATOL, rtol=0)
    assert not torch.allclose(masked[1, 2:], unmasked[1, 2:], atol=ATOL)   # only padding moves
    assert not torch.allclose(no_memory_mask[1], unmasked[1], atol=ATOL)   # source padding matters


def test_greedy_decode_matches_step_by_step_argmax_and_stops_at_eos():
    model = _seq2seq()
    src = torch.randint(3, 12, (3, 5), generator=torch.Generator().manual_seed(0))
    out = model.greedy_decode(src, max_len=6, eos_id=4)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 6
    tokens = torch.full((3, 1), model.config.bos_id)
    with torch.no_grad():
        for step in range(out.shape[1]):                    # the first token of each row, unmasked
            tokens = torch.cat([tokens, model(src, tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    for row, ref in zip(out.tolist(), tokens[:, 1:].tolist()):
        end = row.index(4) + 1 if 4 in row else len(row)
        assert row[:end] == ref[:end]
        assert all(t == model.config.pad_id for t in row[end:])


def test_seq2seq_rejects_bad_input():
    model = _seq2seq()
    with pytest.raises(ValueError, match="src must be a non-empty"):
        model(torch.zeros(2, 0, dtype=torch.long), torch.ones(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len=16"):
        model(torch.ones(1, 17, dtype=torch.long), torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len must be between 1 and 15, got max_len=40"):
        model.greedy_decode(torch.ones(1, 3, dtype=torch.long), max_len=40)
    with pytest.raises(ValueError, match="tgt_vocab_size"):
        Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=2)
