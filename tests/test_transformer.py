"""utils.transformer (chapter 6): equals nn.Transformer with copied weights; causality; padding."""

import math
import re
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.attention import MultiHeadAttention, causal_mask
from utils.transformer import (
    DecoderLayer,
    EncoderLayer,
    FeedForward,
    Seq2Seq,
    Seq2SeqConfig,
    SublayerConnection,
    Transformer,
    combine_masks,
    sinusoidal_positional_encoding,
)

ATOL = 1e-5
TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor")


def _torch_transformer(
    d_model=32, nhead=4, n_enc=2, n_dec=2, ff=64, norm_first=False, seed=0
):
    torch.manual_seed(seed)
    return nn.Transformer(
        d_model,
        nhead,
        n_enc,
        n_dec,
        ff,
        dropout=0.0,
        batch_first=True,
        norm_first=norm_first,
    )


def _padding(lengths, T):
    return torch.arange(T) < torch.tensor(lengths)[:, None]  # (B, T), True = real token


# Where each of our parameters lives in nn.Transformer; W_q, W_k, W_v are the three thirds of in_proj.
_RENAMES = [
    (r"^encoder_layers\.", "encoder.layers."),
    (r"^decoder_layers\.", "decoder.layers."),
    (r"^encoder_norm\.", "encoder.norm."),
    (r"^decoder_norm\.", "decoder.norm."),
    (r"\.cross_attn\.", ".multihead_attn."),
    (r"\.w_o\.", ".out_proj."),
    (r"\.feed_forward\.", "."),
    (r"\.self_attn_sublayer\.norm\.", ".norm1."),
    (r"(encoder\.layers\.\d+)\.feed_forward_sublayer\.norm\.", r"\1.norm2."),
    (r"\.cross_attn_sublayer\.norm\.", ".norm2."),
    (r"(decoder\.layers\.\d+)\.feed_forward_sublayer\.norm\.", r"\1.norm3."),
]


def _reference_gradients(ours: nn.Module, reference: nn.Module) -> dict:
    """The gradient of every one of our parameters, read from the reference's (by name)."""
    theirs = dict(reference.named_parameters())
    grads = {}
    for name, _ in ours.named_parameters():
        ref_name = name
        for pattern, replacement in _RENAMES:
            ref_name = re.sub(pattern, replacement, ref_name)
        projection = re.search(r"\.w_([qkv])\.(weight|bias)$", ref_name)
        if projection:
            which, kind = projection.groups()
            in_proj = theirs[ref_name[: projection.start()] + f".in_proj_{kind}"].grad
            grads[name] = in_proj.chunk(3)["qkv".index(which)]
        else:
            grads[name] = theirs[ref_name].grad
    return grads


# --- positional encoding ---


def test_positional_encoding_matches_the_formula():
    T, d = 11, 8
    pe = sinusoidal_positional_encoding(T, d)
    assert pe.shape == (T, d)
    for t in (0, 3, 10):
        for i in range(d // 2):
            angle = t / 10000 ** (2 * i / d)
            assert pe[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize(
    "T, d_model, match",
    [
        (0, 8, "T must be"),
        (4, 7, "d_model must be"),
        (4, 0, "d_model"),
        (4.0, 8, "T must be"),
    ],
)
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
    src_mask = (torch.rand(S, S) > 0.3) | torch.eye(
        S, dtype=torch.bool
    )  # every query keeps one key
    tgt_mask = causal_mask(T)
    memory_mask = torch.rand(T, S) > 0.3
    memory_mask[:, 0] = True
    src_real, tgt_real = _padding([7, 4, 2], S), _padding([5, 3, 5], T)
    # PyTorch's boolean masks mean True = masked out, ours True = may attend: pass the complement.
    expected = reference(
        src,
        tgt,
        src_mask=~src_mask,
        tgt_mask=~tgt_mask,
        memory_mask=~memory_mask,
        src_key_padding_mask=~src_real,
        tgt_key_padding_mask=~tgt_real,
        memory_key_padding_mask=~src_real,
    )
    got = ours(
        src,
        tgt,
        src_mask=src_mask,
        tgt_mask=tgt_mask,
        memory_mask=memory_mask,
        src_key_padding_mask=src_real,
        tgt_key_padding_mask=tgt_real,
        memory_key_padding_mask=src_real,
    )
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "norm_first, masked", [(False, False), (True, False), (False, True)]
)
def test_equals_nn_transformer_and_every_gradient_agrees(norm_first, masked):
    reference = _torch_transformer(n_enc=2, n_dec=2, norm_first=norm_first)
    ours = Transformer.from_torch(reference)
    torch.manual_seed(2)
    src, tgt = torch.randn(2, 6, 32), torch.randn(2, 4, 32)
    masks, theirs = {}, {}
    if masked:
        src_real = _padding([6, 3], 6)
        masks = dict(
            tgt_mask=causal_mask(4),
            src_key_padding_mask=src_real,
            memory_key_padding_mask=src_real,
        )
        theirs = {name: ~mask for name, mask in masks.items()}
    src_ref, tgt_ref = (
        src.clone().requires_grad_(True),
        tgt.clone().requires_grad_(True),
    )
    src_ours, tgt_ours = (
        src.clone().requires_grad_(True),
        tgt.clone().requires_grad_(True),
    )
    expected, got = (
        reference(src_ref, tgt_ref, **theirs),
        ours(src_ours, tgt_ours, **masks),
    )
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(3))
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(
        src_ours.grad, src_ref.grad, **TOL, msg="gradient of src"
    )
    torch.testing.assert_close(
        tgt_ours.grad, tgt_ref.grad, **TOL, msg="gradient of tgt"
    )
    reference_grads = _reference_gradients(ours, reference)
    parameters = dict(ours.named_parameters())
    assert len(parameters) == len(reference_grads) and len(parameters) > 50
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    for name, p in parameters.items():
        assert p.grad is not None, name
        torch.testing.assert_close(
            p.grad, reference_grads[name], **TOL, msg=f"gradient of {name}"
        )


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
    assert isinstance(ours.encoder_layers[0], EncoderLayer) and isinstance(
        ours.decoder_layers[0], DecoderLayer
    )
    torch.testing.assert_close(
        ours.encoder_layers[0](x), reference.encoder.layers[0](x), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        ours.decoder_layers[1](x, memory),
        reference.decoder.layers[1](x, memory),
        atol=ATOL,
        rtol=0,
    )


def _copy_layer(ours, theirs):
    """Copy an nn.TransformerEncoderLayer or nn.TransformerDecoderLayer into ours."""
    ours.self_attn = MultiHeadAttention.from_torch(theirs.self_attn)
    pairs = [
        (ours.feed_forward.linear1, theirs.linear1),
        (ours.feed_forward.linear2, theirs.linear2),
        (ours.self_attn_sublayer.norm, theirs.norm1),
    ]
    if isinstance(ours, DecoderLayer):
        ours.cross_attn = MultiHeadAttention.from_torch(theirs.multihead_attn)
        pairs += [
            (ours.cross_attn_sublayer.norm, theirs.norm2),
            (ours.feed_forward_sublayer.norm, theirs.norm3),
        ]
    else:
        pairs += [(ours.feed_forward_sublayer.norm, theirs.norm2)]
    for mine, reference in pairs:
        mine.load_state_dict(reference.state_dict())
    return ours


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_layers_with_each_activation_and_norm_placement_equal_torch_layers(
    activation, norm_first
):
    torch.manual_seed(0)
    kwargs = dict(
        dropout=0.0, activation=activation, norm_first=norm_first, layer_norm_eps=1e-6
    )
    enc_ref = nn.TransformerEncoderLayer(16, 2, 24, batch_first=True, **kwargs)
    dec_ref = nn.TransformerDecoderLayer(16, 2, 24, batch_first=True, **kwargs)
    enc = _copy_layer(EncoderLayer(16, 2, 24, **kwargs), enc_ref)
    dec = _copy_layer(DecoderLayer(16, 2, 24, **kwargs), dec_ref)
    assert enc.self_attn_sublayer.norm.eps == 1e-6 and isinstance(
        enc.feed_forward.activation, nn.GELU if activation == "gelu" else nn.ReLU
    )
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    torch.testing.assert_close(
        enc(x, causal_mask(5)), enc_ref(x, src_mask=~causal_mask(5)), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        dec(x, memory, causal_mask(5)),
        dec_ref(x, memory, tgt_mask=~causal_mask(5)),
        atol=ATOL,
        rtol=0,
    )


def test_layers_have_named_sublayers_and_keep_no_attention_state():
    enc, dec = EncoderLayer(8, 2, 16, 0.0), DecoderLayer(8, 2, 16, 0.0)
    assert {n for n, _ in enc.named_children()} == {
        "self_attn",
        "feed_forward",
        "self_attn_sublayer",
        "feed_forward_sublayer",
    }
    assert {n for n, _ in dec.named_children()} == {
        "self_attn",
        "cross_attn",
        "feed_forward",
        "self_attn_sublayer",
        "cross_attn_sublayer",
        "feed_forward_sublayer",
    }
    assert not isinstance(dec, EncoderLayer)
    x = torch.randn(1, 3, 8)
    enc(x)
    dec(x, x)
    for layer in (enc, dec):
        assert not hasattr(layer, "attention") and not hasattr(layer, "cross_attention")


def test_layer_options_after_dropout_are_keyword_only():
    with pytest.raises(TypeError):
        EncoderLayer(8, 2, 16, 0.0, True)
    with pytest.raises(TypeError):
        DecoderLayer(8, 2, 16, 0.0, True)
    with pytest.raises(TypeError):
        Transformer(8, 2, 1, 1, 16, 0.0, True)
    with pytest.raises(ValueError, match="norm_first must be True or False"):
        EncoderLayer(8, 2, 16, 0.0, norm_first="yes")
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'gelu'"):
        DecoderLayer(8, 2, 16, 0.0, activation="tanh")


def test_sublayer_connection_places_the_norm():
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(2, 4, 8)
    for norm_first in (False, True):
        sub = SublayerConnection(8, dropout=0.0, norm_first=norm_first)
        with torch.no_grad():
            sub.norm.weight.uniform_(0.5, 1.5)
        zero = sub(x, lambda h: torch.zeros_like(h))  # a sub-layer that adds nothing
        torch.testing.assert_close(
            zero, x if norm_first else sub.norm(x), atol=ATOL, rtol=0
        )
        seen = []

        def record(h, seen=seen):
            seen.append(h)
            return h

        sub(x, record)
        torch.testing.assert_close(
            seen[0], sub.norm(x) if norm_first else x, atol=0, rtol=0
        )


def test_feed_forward():
    torch.manual_seed(0)
    ff = FeedForward(8, 16, 0.0, "gelu")
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(
        ff(x), ff.linear2(nn.functional.gelu(ff.linear1(x))), atol=0, rtol=0
    )
    assert ff.linear1.out_features == 16
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(8, 16, 0.0, "swish")


def test_from_torch_rejects_other_modules_and_batch_first_false():
    with pytest.raises(ValueError, match="nn.Transformer"):
        Transformer.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="batch_first=True"):
        Transformer.from_torch(
            nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=False)
        )
    with pytest.raises(ValueError, match="relu"):
        Transformer.from_torch(
            nn.Transformer(
                16, 2, 1, 1, 32, dropout=0.0, batch_first=True, activation="gelu"
            )
        )
    with pytest.raises(ValueError, match="bias=True"):
        Transformer.from_torch(
            nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=True, bias=False)
        )


# --- bad input ---


def test_rejects_mismatched_d_model():
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(
        ValueError, match=r"src must have shape \(B, T, 16\), got \(2, 5, 8\)"
    ):
        model(torch.randn(2, 5, 8), torch.randn(2, 3, 16))
    with pytest.raises(
        ValueError, match=r"tgt must have shape \(B, T, 16\), got \(2, 3, 12\)"
    ):
        model(torch.randn(2, 5, 16), torch.randn(2, 3, 12))
    with pytest.raises(
        ValueError, match="memory and tgt must have the same batch size"
    ):
        model.decode(torch.randn(2, 3, 16), torch.randn(3, 5, 16))


def test_rejects_empty_sequences():
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(ValueError, match="src is an empty sequence"):
        model(torch.randn(2, 0, 16), torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="tgt is an empty sequence"):
        model(torch.randn(2, 4, 16), torch.randn(2, 0, 16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"tgt_mask": causal_mask(4)},
            r"tgt_mask must have shape \(3, 3\), got \(4, 4\)",
        ),
        (
            {"src_mask": torch.ones(5, 5)},
            "src_mask must be a boolean tensor .*True = may attend",
        ),
        (
            {"memory_mask": torch.ones(5, 3, dtype=torch.bool)},
            r"memory_mask must have shape \(3, 5\), got \(5, 3\)",
        ),
        (
            {"src_key_padding_mask": torch.ones(2, 3, dtype=torch.bool)},
            r"src_key_padding_mask must have shape \(2, 5\), got \(2, 3\)",
        ),
        (
            {"tgt_key_padding_mask": torch.ones(3, 3, dtype=torch.bool)},
            "tgt_key_padding_mask must have shape",
        ),
        (
            {"memory_key_padding_mask": torch.ones(2, 5)},
            "memory_key_padding_mask must be a boolean",
        ),
    ],
)
def test_rejects_masks_of_the_wrong_shape_or_dtype(kwargs, match):
    model = Transformer(16, 2, 1, 1, 32, dropout=0.0)
    with pytest.raises(ValueError, match=match):
        model(torch.randn(2, 5, 16), torch.randn(2, 3, 16), **kwargs)


def test_combine_masks():
    attn, padding = causal_mask(3), _padding([3, 1], 3)
    assert combine_masks(None, None, 2, 3, 3) is None
    assert combine_masks(attn, None, 2, 3, 3) is attn
    assert combine_masks(None, padding, 2, 3, 3).shape == (2, 1, 1, 3)
    both = combine_masks(attn, padding, 2, 3, 3)
    assert torch.equal(both, attn & padding[:, None, None, :])


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
    return Seq2Seq(
        Seq2SeqConfig(
            src_vocab_size=12,
            tgt_vocab_size=9,
            d_model=16,
            num_heads=2,
            dim_feedforward=32,
            block_size=16,
        )
    ).eval()


@settings(max_examples=30, deadline=None)
@given(t=st.integers(0, 6), seed=st.integers(0, 10_000))
def test_causality_later_target_tokens_do_not_change_earlier_outputs(t, seed):
    model = _seq2seq()
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 12, (2, 5), generator=g)
    tgt = torch.randint(3, 9, (2, 7), generator=g)
    changed = tgt.clone()
    changed[:, t + 1 :] = torch.randint(3, 9, changed[:, t + 1 :].shape, generator=g)
    with torch.no_grad():
        before, after = model(src, tgt), model(src, changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=ATOL, rtol=0)
    if t < 6 and not torch.equal(
        changed, tgt
    ):  # the check can fail: later positions do change
        assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :], atol=ATOL)


def test_a_decoder_without_its_causal_mask_sees_later_targets():
    model = _seq2seq()
    peeking = Seq2Seq(replace(model.config, causal_decoder=False)).eval()
    peeking.load_state_dict(model.state_dict())
    src = torch.randint(3, 12, (2, 5), generator=torch.Generator().manual_seed(0))
    tgt = torch.tensor([[1, 4, 5, 6], [1, 6, 7, 8]])
    changed = tgt.clone()
    changed[:, 3] = 3  # only the last target changes
    with torch.no_grad():
        assert not torch.allclose(peeking(src, tgt)[:, 0], peeking(src, changed)[:, 0])
        torch.testing.assert_close(model(src, tgt)[:, 0], model(src, changed)[:, 0])


@settings(max_examples=30, deadline=None)
@given(
    src_len=st.integers(1, 6),
    tgt_len=st.integers(1, 5),
    extra=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
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


def test_padding_in_a_batch_changes_nothing_and_removing_the_mask_would(monkeypatch):
    model = _seq2seq()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    tgt = torch.tensor([[1, 4, 5], [1, 6, 0]])
    with torch.no_grad():
        batched = model(src, tgt)
        second = model(src[1:, :2], tgt[1:, :2])
        torch.testing.assert_close(batched[1:, :2], second, atol=ATOL, rtol=0)
        monkeypatch.setattr(
            model.config, "pad_id", 11
        )  # now token 0 counts as a real token
        assert not torch.allclose(model(src, tgt)[1:, :2], second, atol=ATOL)


def test_target_padding_mask_is_redundant_before_right_padding_under_a_causal_mask():
    """Chapter 6, exercise 3: right padding is invisible to earlier causal queries."""
    model = Transformer(16, 2, 1, 2, 32, dropout=0.0)
    src, tgt = torch.randn(2, 4, 16), torch.randn(2, 5, 16)
    tgt_real = _padding([5, 2], 5)
    with torch.no_grad():
        masked = model(src, tgt, tgt_mask=causal_mask(5), tgt_key_padding_mask=tgt_real)
        unmasked = model(src, tgt, tgt_mask=causal_mask(5))
        no_memory_mask = model(
            src,
            tgt,
            tgt_mask=causal_mask(5),
            memory_key_padding_mask=_padding([4, 2], 4),
        )
    torch.testing.assert_close(masked[0], unmasked[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(masked[1, :2], unmasked[1, :2], atol=ATOL, rtol=0)
    assert not torch.allclose(
        masked[1, 2:], unmasked[1, 2:], atol=ATOL
    )  # only padding moves
    assert not torch.allclose(
        no_memory_mask[1], unmasked[1], atol=ATOL
    )  # source padding matters


def test_greedy_decode_matches_step_by_step_argmax_and_stops_at_eos():
    model = _seq2seq()
    src = torch.randint(3, 12, (3, 5), generator=torch.Generator().manual_seed(0))
    out = model.greedy_decode(src, max_new_tokens=6, eos_id=4)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 6
    tokens = torch.full((3, 1), model.config.bos_id)
    with torch.no_grad():
        for _ in range(out.shape[1]):  # the first token of each row, unmasked
            tokens = torch.cat(
                [tokens, model(src, tokens)[:, -1].argmax(-1, keepdim=True)], dim=1
            )
    for row, ref in zip(out.tolist(), tokens[:, 1:].tolist(), strict=True):
        end = row.index(4) + 1 if 4 in row else len(row)
        assert row[:end] == ref[:end]
        assert all(t == model.config.pad_id for t in row[end:])


def test_greedy_decode_defaults_to_the_config():
    model = _seq2seq()
    with torch.no_grad():
        model.head.bias[model.config.eos_id] = 1e4  # the end comes at once
    assert model.greedy_decode(torch.tensor([[3, 4]])).tolist() == [
        [model.config.eos_id]
    ]
    with torch.no_grad():
        model.head.bias[
            model.config.eos_id
        ] = -1e4  # it never comes: block_size - 1 tokens
    assert model.greedy_decode(torch.tensor([[3, 4]])).shape == (1, 15)


def test_seq2seq_rejects_bad_input():
    model = _seq2seq()
    with pytest.raises(
        ValueError, match="src must have 1 to block_size=16 tokens, got 0"
    ):
        model(torch.zeros(2, 0, dtype=torch.long), torch.ones(2, 1, dtype=torch.long))
    with pytest.raises(
        ValueError, match="src must have 1 to block_size=16 tokens, got 17"
    ):
        model(torch.ones(1, 17, dtype=torch.long), torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"tgt must be token ids in \[0, vocab_size=9\)"
    ):
        model(torch.ones(1, 3, dtype=torch.long), torch.full((1, 2), 9))
    with pytest.raises(
        ValueError,
        match="max_new_tokens must be between 1 and block_size - 1 = 15, got max_new_tokens=40",
    ):
        model.greedy_decode(torch.ones(1, 3, dtype=torch.long), max_new_tokens=40)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.greedy_decode(torch.ones(1, 3, dtype=torch.long), max_new_tokens=0)
    with pytest.raises(
        ValueError, match="tgt_vocab_size must be an int >= 3, got tgt_vocab_size=2"
    ):
        Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=2)
    with pytest.raises(
        ValueError, match="eos_id must be a target id below tgt_vocab_size=3"
    ):
        Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=3, eos_id=3)
    with pytest.raises(ValueError, match="block_size"):
        Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=3, block_size=0)


def test_seq2seq_embeds_with_the_sqrt_d_scale_and_the_sinusoidal_positions():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=11, tgt_vocab_size=9, d_model=16,
                                  num_heads=2, dim_feedforward=32, block_size=12)).eval()
    src = torch.randint(3, 11, (2, 7))
    expected = (model.src_embedding(src) * math.sqrt(16)
                + sinusoidal_positional_encoding(7, 16))
    torch.testing.assert_close(model._embed(model.src_embedding, src, "src"), expected)
    assert "positions" not in model.state_dict()  # a fixed table, not a weight


def test_seq2seq_target_padding_does_not_change_the_real_positions():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=11, tgt_vocab_size=9, d_model=16,
                                  num_heads=2, dim_feedforward=32, block_size=12)).eval()
    src = torch.randint(3, 11, (1, 6))
    tgt = torch.tensor([[1, 5, 6, 7]])
    padded = torch.tensor([[1, 5, 6, 7, 0, 0]])  # pad_id = 0 on the right
    with torch.no_grad():
        torch.testing.assert_close(model(src, padded)[:, :4], model(src, tgt), atol=1e-5,
                                   rtol=1e-5)


def test_defaults_are_nn_transformers():
    ours, theirs = Transformer(), nn.Transformer()
    layer, their_layer = ours.encoder_layers[0], theirs.encoder.layers[0]
    assert (ours.d_model, len(ours.encoder_layers), len(ours.decoder_layers)) == (512, 6, 6)
    assert layer.feed_forward.linear1.out_features == their_layer.linear1.out_features
    assert layer.self_attn.num_heads == their_layer.self_attn.num_heads == 8
    assert layer.self_attn_sublayer.dropout.p == their_layer.dropout1.p == 0.1
    assert layer.self_attn_sublayer.norm.eps == their_layer.norm1.eps == 1e-5
    assert not layer.self_attn_sublayer.norm_first
    assert ours.encoder_norm.eps == 1e-5 and ours.decoder_norm.eps == 1e-5
    decoder = DecoderLayer(8, 2)
    assert decoder.feed_forward.linear1.out_features == 2048
    assert not decoder.self_attn_sublayer.norm_first
    assert decoder.self_attn.dropout == decoder.cross_attn.dropout == 0.1
    encoder = EncoderLayer(8, 2)
    assert encoder.d_model == 8 and encoder.self_attn.dropout == 0.1
    assert isinstance(FeedForward(8, 16).activation, nn.ReLU)
    assert FeedForward(8, 16).dropout.p == 0.0
