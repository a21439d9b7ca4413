"""Chapters 4-5: attention equals PyTorch's (copied weights, 1e-5), and its properties hold."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import attention
from utils.attention import (
    SHORT_KEYS,
    AdditiveScore,
    MultiHeadAttention,
    SelfAttention,
    attend,
    causal_mask,
    merge_heads,
    padding_mask,
    record_attention,
    scaled_dot_product_attention,
    split_heads,
)
from utils.gpt import GPT, GPTConfig
from utils.transformer import Transformer

ATOL = 1e-5


def _to_torch_masks(mask_keep_qk, lengths, T_k):
    """Our 'True = may attend' masks as nn.MultiheadAttention's 'True = ignore' arguments."""
    attn_mask = None if mask_keep_qk is None else ~mask_keep_qk
    key_padding_mask = None if lengths is None else ~padding_mask(lengths, T_k)
    return attn_mask, key_padding_mask


def _no_hooks(model):
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# --- scaled_dot_product_attention --------------------------------------------------------


@pytest.mark.parametrize(
    "shape_q, shape_kv, d_v",
    [
        ((1, 5, 8), (1, 5, 8), 8),  # batch 1, self-attention shapes
        ((3, 4, 8), (3, 7, 8), 6),  # T_q != T_k, d_v != d_k
        ((2, 4, 6, 16), (2, 4, 9, 16), 16),  # with a head dimension
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_equals_torch(shape_q, shape_kv, d_v, masked):
    torch.manual_seed(0)
    q = torch.randn(shape_q, requires_grad=True)
    k = torch.randn(shape_kv, requires_grad=True)
    v = torch.randn(shape_kv[:-1] + (d_v,), requires_grad=True)
    mask = None
    if masked:
        mask = torch.rand(shape_q[-2], shape_kv[-2]) > 0.4
        mask[:, 0] = True  # every query may attend somewhere
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    ours_grads = torch.autograd.grad((ours * torch.cos(ours)).sum(), (q, k, v))
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref_grads = torch.autograd.grad((reference * torch.cos(reference)).sum(), (q, k, v))
    torch.testing.assert_close(ours, reference, atol=ATOL, rtol=0)
    for g, r in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=ATOL, rtol=0)
    assert weights.shape == shape_q[:-1] + (shape_kv[-2],)


def test_sdpa_weights_are_the_softmax_of_scaled_scores():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    _, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(
        torch.einsum("bqd,bkd->bqk", q, k) / 2.0, dim=-1
    )  # sqrt(4) = 2
    torch.testing.assert_close(weights, expected, atol=ATOL, rtol=0)


def test_fully_masked_rows_give_zero_output_and_finite_gradients():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, requires_grad=True)
    k, v = (
        torch.randn(2, 5, 4, requires_grad=True),
        torch.randn(2, 5, 4, requires_grad=True),
    )
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of sequence 0 sees nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    out.sum().backward()
    assert torch.equal(out[0, 1], torch.zeros(4)) and torch.equal(
        weights[0, 1], torch.zeros(5)
    )
    assert torch.equal(q.grad[0, 1], torch.zeros(4))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    torch.testing.assert_close(
        weights[mask.any(-1)].sum(-1), torch.ones(5), atol=ATOL, rtol=0
    )
    # PyTorch's fused kernel agrees (it also returns zeros for such rows)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=ATOL, rtol=0
    )


def test_sdpa_rejects_bad_input():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"q.shape\[-1\]=6 and k.shape\[-1\]=4"):
        scaled_dot_product_attention(torch.randn(2, 3, 6), k, v)
    with pytest.raises(ValueError, match=r"k and v must have the same leading shape"):
        scaled_dot_product_attention(q, k, torch.randn(2, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"mask of shape \(4, 5\) cannot broadcast to the scores of shape \(2, 3, 5\)",
    ):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"\(2, 1, 1, 5\) cannot broadcast"
    ):  # would silently grow the batch
        scaled_dot_product_attention(q, k, v, padding_mask([5, 5], 5)[:, None, None, :])
    with pytest.raises(ValueError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        scaled_dot_product_attention(torch.randn(4), k, v)
    with pytest.raises(ValueError, match="dropout_p=1.0"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    with pytest.raises(ValueError, match="q and k must have the same batch dimensions"):
        scaled_dot_product_attention(torch.randn(1, 3, 4), k, v)
    with pytest.raises(ValueError, match="q, k and v must share dtype and device"):
        scaled_dot_product_attention(q.double(), k.double(), v)
    with pytest.raises(ValueError, match="q must be a floating-point tensor"):
        scaled_dot_product_attention(q.long(), k, v)


@pytest.mark.parametrize(
    "float_mask",
    [torch.ones(3, 5), torch.zeros(3, 5), torch.full((3, 5), float("-inf"))],
)
@pytest.mark.parametrize("need_weights", [False, True])
def test_float_masks_are_refused_naming_the_convention(float_mask, need_weights):
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises(
        ValueError,
        match=r"mask must be a boolean tensor, True = may attend .*got torch.float32",
    ):
        attend(q, k, v, float_mask, need_weights=need_weights)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="True = may attend"):
        mha(x, x, x, torch.zeros(3, 3), need_weights=need_weights)


# --- attend: PyTorch's fused kernel and the explicit form agree ------------------------------


def _forward_backward(q, k, v, **kwargs):
    """attend's output and the gradients of q, k, v for a fixed random upstream gradient."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out, weights = attend(q, k, v, **kwargs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(99))
    (out * upstream).sum().backward()
    return out, weights, (q.grad, k.grad, v.grad)


def _mask_kinds():
    g = torch.Generator().manual_seed(3)
    B, H, T, T_k = 3, 2, 6, 9
    random_mask = torch.rand(B, H, T, T, generator=g) > 0.5
    random_mask[0, 1, 2] = False  # fully masked rows
    random_mask[2, 0, 5] = False
    cross_mask = torch.rand(B, 1, T, T_k, generator=g) > 0.4
    cross_mask[1, 0, 0] = False
    padding = padding_mask([6, 4, 0], T)[
        :, None, None, :
    ]  # (B, 1, 1, T): sequence 2 is all padding
    return {  # name: (T_q, T_k, attend's keyword arguments)
        "no mask": (T, T, {}),
        "causal=True": (T, T, dict(causal=True)),
        "causal mask": (T, T, dict(mask=causal_mask(T))),
        "padding": (T, T, dict(mask=padding)),
        "causal & padding": (T, T, dict(mask=causal_mask(T) & padding)),
        "causal=True with padding": (T, T, dict(mask=padding, causal=True)),
        "random, fully masked rows": (T, T, dict(mask=random_mask)),
        "T_q != T_k, no mask": (T, T_k, {}),
        "T_q != T_k, random mask": (T, T_k, dict(mask=cross_mask)),
        "T_q != T_k, padding": (
            T,
            T_k,
            dict(mask=padding_mask([9, 3, 1], T_k)[:, None, None, :]),
        ),
    }


MASK_KINDS = _mask_kinds()


@pytest.mark.parametrize("short_keys", [SHORT_KEYS, 0], ids=["short", "fused"])
@pytest.mark.parametrize("T_q, T_k, kwargs", MASK_KINDS.values(), ids=MASK_KINDS.keys())
def test_attend_fast_path_equals_explicit_path_forward_and_backward(
    T_q, T_k, kwargs, short_keys, monkeypatch
):
    # short_keys=0 sends every call without weights to PyTorch's fused kernel
    monkeypatch.setattr(attention, "SHORT_KEYS", short_keys)
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(3, 2, T_q, 4, generator=g),
        torch.randn(3, 2, T_k, 4, generator=g),
        torch.randn(3, 2, T_k, 5, generator=g),
    )
    fast, no_weights, fast_grads = _forward_backward(q, k, v, **kwargs)
    explicit, weights, explicit_grads = _forward_backward(
        q, k, v, need_weights=True, **kwargs
    )
    assert no_weights is None and weights.shape == (3, 2, T_q, T_k)
    assert torch.isfinite(fast).all() and all(
        torch.isfinite(g).all() for g in fast_grads
    )
    torch.testing.assert_close(fast, explicit, atol=ATOL, rtol=0)
    for name, a, b in zip("qkv", fast_grads, explicit_grads, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=f"gradient of {name}")
    # queries that may attend to nothing: zero output and zero gradient, on both paths
    mask = kwargs.get("mask")
    if kwargs.get("causal"):
        mask = causal_mask(T_q) if mask is None else mask & causal_mask(T_q)
    if mask is not None:
        blocked = ~torch.broadcast_to(mask, weights.shape).any(-1)  # (B, H, T_q)
        for out, grads in ((fast, fast_grads), (explicit, explicit_grads)):
            assert (out[blocked] == 0).all() and (grads[0][blocked] == 0).all()
        torch.testing.assert_close(
            weights.sum(-1)[~blocked],
            torch.ones(int((~blocked).sum())),
            atol=ATOL,
            rtol=0,
        )
        assert (weights.sum(-1)[blocked] == 0).all()


def test_mask_kinds_include_fully_masked_rows():
    names = (
        "random, fully masked rows",
        "padding",
        "causal & padding",
        "T_q != T_k, random mask",
    )
    for name in names:  # so the zero-output checks above are not vacuous
        T_q, T_k, kwargs = MASK_KINDS[name]
        assert (~kwargs["mask"].any(-1)).any(), name


def test_attend_without_weights_calls_the_fused_kernel(monkeypatch):
    calls = []
    fused = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return fused(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    q = torch.randn(1, SHORT_KEYS + 1, 8)
    attend(q, q, q, causal=True)
    assert (
        len(calls) == 1 and calls[0]["is_causal"] is True
    )  # the kernel's own causal mask
    attend(q, q, q, causal=True, need_weights=True)  # the explicit path: no call
    short = q[:, :SHORT_KEYS]
    with torch.no_grad():  # short, no gradients: explicit, the faster there
        out, weights = attend(short, short, short, causal=True)
    assert len(calls) == 1 and weights is None
    torch.testing.assert_close(out, F.scaled_dot_product_attention(
        short, short, short, is_causal=True))
    attend(short, short, short, causal=True)  # gradients: the fused kernel's backward
    assert len(calls) == 3 and calls[2]["is_causal"] is True  # [1]: the check above


def test_attend_rejects_bad_arguments():
    q, k = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="causal=True needs T_q == T_k"):
        attend(q, k, k, causal=True)
    with pytest.raises(ValueError, match="causal must be True or False"):
        attend(q, q, q, causal=1)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\) cannot broadcast"):
        attend(q, k, k, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="dropout_p"):
        attend(q, k, k, dropout_p=1.0)
    with pytest.raises(ValueError, match=r"q.shape\[-1\]=6 and k.shape\[-1\]=4"):
        attend(torch.randn(2, 3, 6), k, k)


def test_attend_dropout_only_drops_with_a_positive_probability():
    q = torch.randn(1, 2, 6, 4)
    torch.manual_seed(0)
    a, _ = attend(q, q, q, dropout_p=0.0)
    b, _ = attend(q, q, q, dropout_p=0.5)
    assert not torch.allclose(a, b)
    _, weights = attend(q, q, q, dropout_p=0.5, need_weights=True)
    assert (weights == 0).any()


# --- masks --------------------------------------------------------------------------------


def test_causal_mask():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert mask[i, j].item() == (j <= i)
    assert causal_mask(3, device="cpu").device.type == "cpu"
    assert causal_mask(3, torch.device("cpu")).shape == (3, 3)
    with pytest.raises(ValueError, match="T=0"):
        causal_mask(0)


def test_causal_mask_means_no_peeking():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4)
    out, _ = scaled_dot_product_attention(x, x, x, causal_mask(6))
    x2 = x.clone()
    x2[0, 4:] = torch.randn(2, 4)  # change the future
    out2, _ = scaled_dot_product_attention(x2, x2, x2, causal_mask(6))
    torch.testing.assert_close(out[0, :4], out2[0, :4], atol=ATOL, rtol=0)
    assert not torch.allclose(out[0, 4:], out2[0, 4:])


def test_padding_mask():
    mask = padding_mask([2, 0, 3], 3)
    assert (
        mask.shape == (3, 3) and mask.dtype == torch.bool
    )  # (B, T), True = a real token
    assert mask.tolist() == [
        [True, True, False],
        [False, False, False],
        [True, True, True],
    ]
    assert torch.equal(
        padding_mask(torch.tensor([1, 2]), 2),
        torch.tensor([[True, False], [True, True]]),
    )
    assert padding_mask([2, 1], 3)[:, None, None, :].shape == (
        2,
        1,
        1,
        3,
    )  # for scores (B, H, T_q, T_k)
    with pytest.raises(ValueError, match=r"lengths=\[4\]"):
        padding_mask([4], 3)
    with pytest.raises(ValueError, match=r"lengths=\[-1\]"):
        padding_mask([-1], 3)
    with pytest.raises(ValueError, match="1-D"):
        padding_mask([[1]], 3)
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        padding_mask([1.5], 3)
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        padding_mask([True], 3)
    with pytest.raises(ValueError, match="T=0"):
        padding_mask([0], 0)


# --- multi-head attention against nn.MultiheadAttention ----------------------------------

CASES = {  # name: B, T_q, T_k, d_model, H, cross, attention mask, key lengths, bias
    "self, batch 1, one head": (1, 5, 5, 8, 1, False, False, None, True),
    "self, several heads, causal": (2, 6, 6, 16, 4, False, True, None, True),
    "self, key padding": (3, 6, 6, 16, 2, False, False, [6, 3, 1], True),
    "self, causal and padding": (3, 7, 7, 12, 3, False, True, [7, 4, 2], True),
    "cross, T_q != T_k": (2, 4, 9, 16, 4, True, False, None, True),
    "cross, padding and mask, no bias": (2, 3, 8, 24, 8, True, True, [8, 5], False),
}


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_multi_head_attention_equals_torch(case, need_weights):
    B, T_q, T_k, d, H, cross, use_mask, lengths, bias = case
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(d, H, bias=bias, batch_first=True)
    ours = MultiHeadAttention.from_torch(ref)
    query = torch.randn(B, T_q, d, requires_grad=True)
    key = torch.randn(B, T_k, d, requires_grad=True) if cross else query
    value = torch.randn(B, T_k, d, requires_grad=True) if cross else query
    keep_qk = None
    if use_mask:
        keep_qk = causal_mask(T_q) if not cross else torch.rand(T_q, T_k) > 0.3
        keep_qk[:, 0] = True  # no fully masked rows in the reference
    mask = keep_qk
    if lengths is not None:
        padding = padding_mask(lengths, T_k)[:, None, None, :]
        mask = padding if mask is None else mask & padding
    attn_mask, key_padding_mask = _to_torch_masks(keep_qk, lengths, T_k)

    out, weights = ours(query, key, value, mask, need_weights=need_weights)
    ref_out, ref_weights = ref(
        query,
        key,
        value,
        attn_mask=attn_mask,
        key_padding_mask=key_padding_mask,
        need_weights=True,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
    if need_weights:
        torch.testing.assert_close(weights, ref_weights, atol=ATOL, rtol=0)
        assert weights.shape == (B, H, T_q, T_k)
    else:
        assert weights is None

    inputs = [query] + ([key, value] if cross else [])
    g_ours = torch.autograd.grad((out**2).sum(), inputs + list(ours.parameters()))
    ref_params = [ref.in_proj_weight, ref.out_proj.weight] + (
        [ref.in_proj_bias, ref.out_proj.bias] if bias else []
    )
    g_ref = torch.autograd.grad((ref_out**2).sum(), inputs + ref_params)
    for a, b in zip(g_ours[: len(inputs)], g_ref[: len(inputs)], strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    grads = dict(
        zip([n for n, _ in ours.named_parameters()], g_ours[len(inputs) :], strict=True)
    )
    ref_grads = dict(
        zip(
            ["in_proj_weight", "out_proj.weight", "in_proj_bias", "out_proj.bias"],
            g_ref[len(inputs) :],
        )
    )
    for kind in ("weight", "bias") if bias else ("weight",):
        in_proj = torch.cat([grads[f"w_{p}.{kind}"] for p in "qkv"])
        torch.testing.assert_close(
            in_proj, ref_grads[f"in_proj_{kind}"], atol=ATOL, rtol=0
        )
        torch.testing.assert_close(
            grads[f"w_o.{kind}"], ref_grads[f"out_proj.{kind}"], atol=ATOL, rtol=0
        )


def test_equals_torch_fast_path_in_eval_mode():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = torch.randn(3, 10, 32)
    lengths = [10, 6, 2]
    with torch.no_grad():
        ref_out, _ = ref(
            x, x, x, key_padding_mask=~padding_mask(lengths, 10), need_weights=False
        )
        out, _ = ours(x, x, x, padding_mask(lengths, 10)[:, None, None, :])
    for b, n in enumerate(
        lengths
    ):  # the fast path may leave padded query rows arbitrary: compare real ones
        torch.testing.assert_close(out[b, :n], ref_out[b, :n], atol=ATOL, rtol=0)


MHA_MASKS = {
    "none": lambda B, T: dict(),
    "causal=True": lambda B, T: dict(causal=True),
    "padding": lambda B, T: dict(mask=padding_mask([T, 2, 0][:B], T)[:, None, None, :]),
    "causal & padding": lambda B, T: dict(
        mask=padding_mask([T, 2, 1][:B], T)[:, None, None, :], causal=True
    ),
}


@pytest.mark.parametrize("make_mask", MHA_MASKS.values(), ids=MHA_MASKS.keys())
def test_multi_head_attention_need_weights_does_not_change_output_or_gradients(
    make_mask,
):
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3)
    x = torch.randn(3, 5, 12)
    results = []
    for need_weights in (False, True):
        mha.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        out, weights = mha(inp, inp, inp, need_weights=need_weights, **make_mask(3, 5))
        assert (weights is None) != need_weights
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        results.append((out, inp.grad, {n: p.grad for n, p in mha.named_parameters()}))
    (out_a, x_a, p_a), (out_b, x_b, p_b) = results
    torch.testing.assert_close(out_a, out_b, atol=ATOL, rtol=0)
    torch.testing.assert_close(x_a, x_b, atol=ATOL, rtol=0)
    assert p_a.keys() == p_b.keys()
    for name in p_a:
        torch.testing.assert_close(
            p_a[name], p_b[name], atol=ATOL, rtol=0, msg=f"gradient of {name}"
        )


def test_split_and_merge_heads_are_inverse():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[:, 1], x[..., 4:8])  # head 1 gets features 4..7
    assert torch.equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="num_heads=5"):
        split_heads(x, 5)


@pytest.mark.parametrize("H", [1, 2, 4, 8])
def test_parameter_count_does_not_depend_on_heads(H):
    d = 64
    assert sum(p.numel() for p in MultiHeadAttention(d, H).parameters()) == 4 * (
        d * d + d
    )


def test_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(1, 6, 8)
    mha.eval()
    a, _ = mha(x, x, x)
    b, _ = mha(x, x, x)
    assert torch.equal(a, b)
    mha.train()
    c, w = mha(x, x, x, need_weights=True)
    assert not torch.allclose(a, c) and (w == 0).any()
    assert not torch.allclose(a, mha(x, x, x)[0])  # the fused path drops too


def test_self_attention_module():
    torch.manual_seed(0)
    layer = SelfAttention(8, d_k=4)
    x = torch.randn(2, 5, 8)
    out, weights = layer(x, causal_mask(5))
    expected, _ = scaled_dot_product_attention(
        layer.w_q(x), layer.w_k(x), layer.w_v(x), causal_mask(5)
    )
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    assert out.shape == (2, 5, 4) and torch.equal(weights[0].triu(1), torch.zeros(5, 5))
    assert layer(x)[1] is not None  # always explicit: weights come back
    with pytest.raises(ValueError, match="d_k=0"):
        SelfAttention(8, d_k=0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 8\)"):
        layer(torch.randn(2, 5, 6))


def test_self_attention_defaults_and_its_arguments_named_in_errors():
    default = SelfAttention(8)  # d_k defaults to d_model; no biases unless asked
    assert default.w_q.weight.shape == (8, 8) and default.w_q.bias is None
    biased = SelfAttention(8, 4, bias=True)
    assert all(w.bias is not None and w.bias.shape == (4,)
               for w in (biased.w_q, biased.w_k, biased.w_v))
    for call, words in [
        (lambda: SelfAttention(8.0), "d_model=8.0"),
        (lambda: SelfAttention(8, bias="yes"), "bias="),
        (lambda: default(torch.ones(2, 5, 8, dtype=torch.long)), "x must be a floating"),
        (lambda: default(torch.randn(2, 5, 4)), r"x must have shape \(B, T, 8\)"),
        (lambda: AdditiveScore(4, 0, 8), "d_k=0"),
        (lambda: AdditiveScore(4, 4, 0), "d_attention=0"),
        (lambda: AdditiveScore(0, 4, 4), "d_q=0"),
    ]:
        with pytest.raises(ValueError, match=words):
            call()
    score = AdditiveScore(4, 6, 8)
    assert all(layer.bias is None for layer in (score.w_q, score.w_k, score.w))


def test_multi_head_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="num_heads=0"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="dropout=1.5"):
        MultiHeadAttention(8, 2, dropout=1.5)
    with pytest.raises(ValueError, match="bias must be True or False"):
        MultiHeadAttention(8, 2, bias=1)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(
        ValueError, match=r"key must have shape \(B, T, 8\), got \(2, 4, 6\)"
    ):
        mha(x, torch.randn(2, 4, 6), x)
    with pytest.raises(
        ValueError, match="query, key and value must have the same batch size"
    ):
        mha(x, torch.randn(3, 4, 8), torch.randn(3, 4, 8))
    with pytest.raises(
        ValueError,
        match=r"mask of shape \(3, 4\) cannot broadcast to the scores of shape \(2, 2, 4, 4\)",
    ):
        mha(x, x, x, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"\(2, 4\) cannot broadcast"
    ):  # a (B, T) padding mask needs [:, None, None, :]
        mha(x, x, x, padding_mask([4, 2], 4))
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2))
    with pytest.raises(ValueError, match="kdim"):
        MultiHeadAttention.from_torch(
            nn.MultiheadAttention(8, 2, kdim=4, batch_first=True)
        )
    with pytest.raises(ValueError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))


# --- record_attention ---------------------------------------------------------------------------


def test_record_attention_on_a_transformer():
    torch.manual_seed(0)
    model = Transformer(16, 2, 2, 3, 32, dropout=0.0).eval()
    src, tgt = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    src_real = padding_mask([7, 4], 7)
    with torch.no_grad():
        plain = model(
            src,
            tgt,
            tgt_mask=causal_mask(5),
            src_key_padding_mask=src_real,
            memory_key_padding_mask=src_real,
        )
        with record_attention(model) as maps:
            recorded = model(
                src,
                tgt,
                tgt_mask=causal_mask(5),
                src_key_padding_mask=src_real,
                memory_key_padding_mask=src_real,
            )
    torch.testing.assert_close(
        recorded, plain, atol=ATOL, rtol=0
    )  # explicit path inside, same output
    expected = [f"encoder_layers.{i}.self_attn" for i in range(2)] + [
        f"decoder_layers.{i}.{kind}"
        for i in range(3)
        for kind in ("self_attn", "cross_attn")
    ]
    assert list(maps) == expected  # one per module, in call order
    for name, weights in maps.items():
        T_q, T_k = (
            (7, 7)
            if name.startswith("encoder")
            else (5, 5)
            if name.endswith("self_attn")
            else (5, 7)
        )
        assert weights.shape == (2, 2, T_q, T_k) and not weights.requires_grad
        torch.testing.assert_close(
            weights.sum(-1), torch.ones(2, 2, T_q), atol=ATOL, rtol=0
        )
        if T_k == 7:
            assert (weights[1, ..., 4:] == 0).all()  # source padding gets nothing
    assert (maps["decoder_layers.0.self_attn"].triu(1) == 0).all()  # causal
    assert _no_hooks(model)


def test_record_attention_on_a_gpt():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=20, block_size=8, num_layers=3, num_heads=2, d_model=16)
    ).eval()
    idx = torch.randint(20, (2, 8))
    with torch.no_grad(), record_attention(model) as maps:
        model(idx)
    assert list(maps) == [f"transformer.h.{i}.attn" for i in range(3)]
    for weights in maps.values():
        assert weights.shape == (2, 2, 8, 8)
        torch.testing.assert_close(
            weights.sum(-1), torch.ones(2, 2, 8), atol=ATOL, rtol=0
        )
        assert (weights.triu(1) == 0).all()
    assert _no_hooks(model)


def test_record_attention_removes_its_hooks_after_an_error_and_needs_attention_layers():
    model = Transformer(8, 2, 1, 1, 16, dropout=0.0)
    with pytest.raises(RuntimeError, match="boom"):
        with record_attention(model):
            raise RuntimeError("boom")
    assert _no_hooks(model)
    with pytest.raises(ValueError, match="Linear has no attention layers to record"):
        with record_attention(nn.Linear(2, 2)):
            pass


def test_record_attention_on_one_module_keeps_its_last_call():
    mha = MultiHeadAttention(8, 2)
    x, y = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    with record_attention(mha) as maps:
        mha(x, x, x)
        out, weights = mha(y, y, y)
    assert list(maps) == ["MultiHeadAttention"] and maps[
        "MultiHeadAttention"
    ].shape == (1, 2, 4, 4)
    assert torch.equal(maps["MultiHeadAttention"], weights)


# --- properties (hypothesis) --------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


@settings(max_examples=50, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 7),
    H=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_self_attention_without_positions_is_permutation_equivariant(
    B, T, H, seed, data
):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(4 * H, H)
    x = torch.randn(B, T, 4 * H)
    perm = torch.tensor(data.draw(st.permutations(range(T))), dtype=torch.long)
    out, weights = mha(x, x, x, need_weights=True)
    out_p, weights_p = mha(x[:, perm], x[:, perm], x[:, perm], need_weights=True)
    torch.testing.assert_close(out_p, out[:, perm], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(
        weights_p, weights[:, :, perm][..., perm], atol=ATOL, rtol=1e-5
    )
    fast, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(fast, out[:, perm], atol=ATOL, rtol=1e-5)


@settings(max_examples=50, deadline=None)
@given(
    T_q=dims,
    T_k=dims,
    d=dims,
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 30.0),
    data=st.data(),
)
def test_masked_keys_get_zero_weight_and_rows_sum_to_one(
    T_q, T_k, d, seed, scale, data
):
    torch.manual_seed(seed)
    q, k, v = (
        scale * torch.randn(2, T_q, d),
        scale * torch.randn(2, T_k, d),
        torch.randn(2, T_k, d),
    )
    bits = data.draw(
        st.lists(st.booleans(), min_size=2 * T_q * T_k, max_size=2 * T_q * T_k)
    )
    mask = torch.tensor(bits).reshape(2, T_q, T_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and (weights >= 0).all()
    assert torch.equal(weights[~mask], torch.zeros_like(weights[~mask]))
    rows = mask.any(-1)
    sums = weights.sum(-1)
    torch.testing.assert_close(
        sums[rows], torch.ones_like(sums[rows]), atol=ATOL, rtol=0
    )
    assert torch.equal(
        sums[~rows], torch.zeros_like(sums[~rows])
    )  # nowhere to look: zero
    fast, _ = attend(q, k, v, mask)  # the fused kernel agrees
    torch.testing.assert_close(fast, out, atol=1e-4 * max(1.0, scale), rtol=1e-4)


@settings(max_examples=50, deadline=None)
@given(
    B=st.integers(1, 3),
    T=dims,
    H=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_multi_head_weights_rows_sum_to_one(B, T, H, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(2 * H, H)
    x = 5 * torch.randn(B, T, 2 * H)
    _, weights = mha(x, x, x, causal_mask(T), need_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T), atol=ATOL, rtol=0)
    assert math.isclose(
        float(weights[..., 0, 0].min().detach()), 1.0, abs_tol=1e-6
    )  # the first token sees only itself


# --- Bahdanau's additive score ---


def test_additive_score_equals_its_formula_pair_by_pair():
    torch.manual_seed(0)
    score = AdditiveScore(d_q=3, d_k=5, d_attention=7)
    assert [p.shape for p in score.parameters()] == [(7, 3), (7, 5), (1, 7)]  # no biases
    q, k = torch.randn(2, 4, 3), torch.randn(2, 6, 5)
    got = score(q, k)
    assert got.shape == (2, 4, 6)
    W_q, W_k, w = score.w_q.weight, score.w_k.weight, score.w.weight[0]
    for b in range(2):
        for i in range(4):
            for j in range(6):
                expected = w @ torch.tanh(W_q @ q[b, i] + W_k @ k[b, j])
                torch.testing.assert_close(got[b, i, j], expected)


def test_additive_score_refuses_bad_sizes_and_inputs():
    with pytest.raises(ValueError, match="d_attention"):
        AdditiveScore(3, 5, 0)
    with pytest.raises(ValueError, match="^d_q must be a positive int"):
        AdditiveScore(3.0, 5, 7)
    score = AdditiveScore(3, 5, 7)
    with pytest.raises(ValueError, match="q must be"):
        score(torch.randn(2, 4, 5), torch.randn(2, 6, 5))      # q has the key's size
    with pytest.raises(ValueError, match="q must be"):
        score(torch.randn(2, 4, 3), torch.randn(3, 6, 5))      # batches differ
    with pytest.raises(ValueError, match="^q must be a floating"):
        score(torch.ones(2, 4, 3, dtype=torch.long), torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match="^k must be a floating"):
        score(torch.randn(2, 4, 3), torch.ones(2, 6, 5, dtype=torch.long))


def test_additive_score_works_without_a_batch_dimension():
    torch.manual_seed(0)
    score = AdditiveScore(3, 5, 7)
    q, k = torch.randn(4, 3), torch.randn(6, 5)
    torch.testing.assert_close(score(q, k), score(q[None], k[None])[0])


def _zeros(*shape):
    return torch.zeros(*shape)


@pytest.mark.parametrize("call, message", [
    (lambda: split_heads(_zeros(2, 8), 2), "x must have shape (B, T, H·d_k), got (2, 8)"),
    (lambda: split_heads(_zeros(1, 2, 8), 3),
     "feature size=8 is not divisible by num_heads=3"),
    (lambda: split_heads(_zeros(1, 2, 8), 2.0),
     "num_heads must be a positive int, got num_heads=2.0"),
    (lambda: merge_heads(_zeros(2, 3, 4)),
     "x must have shape (B, H, T, d_k), got (2, 3, 4)"),
    (lambda: scaled_dot_product_attention(_zeros(4), _zeros(1, 4), _zeros(1, 4)),
     "q needs at least 2 dimensions (T, d), got shape (4,)"),
    (lambda: scaled_dot_product_attention(_zeros(1, 4), _zeros(4), _zeros(1, 4)),
     "k needs at least 2 dimensions (T, d), got shape (4,)"),
    (lambda: scaled_dot_product_attention(_zeros(1, 4), _zeros(1, 4), _zeros(4)),
     "v needs at least 2 dimensions (T, d), got shape (4,)"),
    (lambda: attend(_zeros(1, 4), _zeros(1, 4), _zeros(1, 4), dropout_p=1.5),
     "dropout_p must be in [0, 1), got dropout_p=1.5"),
    (lambda: scaled_dot_product_attention(_zeros(2, 4), _zeros(2, 4), _zeros(2, 4),
                                          mask=[[True, True]] * 2),
     "mask must be a boolean tensor, True = may attend (the course's convention; "
     "a float mask would be added to the scores), got list"),
    (lambda: MultiHeadAttention(8.0, 2), "d_model must be a positive int, got d_model=8.0"),
    (lambda: MultiHeadAttention(8, 2)(_zeros(2, 8), _zeros(1, 2, 8), _zeros(1, 2, 8)),
     "query must have shape (B, T, 8), got (2, 8)"),
    (lambda: MultiHeadAttention(8, 2)(_zeros(1, 2, 8), _zeros(2, 8), _zeros(1, 2, 8)),
     "key must have shape (B, T, 8), got (2, 8)"),
    (lambda: MultiHeadAttention(8, 2)(_zeros(1, 2, 8), _zeros(1, 2, 8), _zeros(2, 8)),
     "value must have shape (B, T, 8), got (2, 8)"),
    (lambda: MultiHeadAttention.from_torch(
        nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)),
     "from_torch supports kdim == vdim == embed_dim, add_bias_kv=False and "
     "add_zero_attn=False"),
], ids=['split-2d', 'split-indivisible', 'split-float-heads', 'merge-3d', 'q-1d',
    'k-1d', 'v-1d', 'attend-dropout', 'mask-list', 'mha-float-d_model', 'mha-query',
    'mha-key', 'mha-value', 'from-torch-bias-kv'])
def test_refusals_name_the_argument_exactly(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_unbatched_two_dimensional_q_k_v_are_accepted():
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert weights.shape == (3, 5)


def test_dropout_p_is_the_share_of_weights_dropped_in_both_paths():
    q = k = v = torch.randn(1, 200, 8)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        _, weights = scaled_dot_product_attention(q, k, v, dropout_p=0.2)
        dropped = (weights == 0).float().mean().item()
        fused = attend(q, k, v, mask=torch.ones(200, 200, dtype=torch.bool),
                       dropout_p=0.5)[0]
    assert abs(dropped - 0.2) < 0.01  # 40,000 weights: the standard error is 0.002
    assert not torch.allclose(fused, attend(q, k, v)[0])


def test_a_query_with_no_allowed_key_gives_zero_output_in_both_paths():
    q, k, v = torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[0] = False  # the first query may attend to nothing; the others to every key
    fused, _ = attend(q, k, v, mask)
    explicit, _ = attend(q, k, v, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit)
    assert torch.equal(fused[0, 0], torch.zeros(4)) and fused[0, 1:].abs().sum() > 0


def test_projection_biases_follow_the_bias_argument():
    assert SelfAttention(8, 4).w_k.bias is None and SelfAttention(8, 4).w_v.bias is None
    with_bias = SelfAttention(8, 4, bias=True)
    assert with_bias.w_k.bias is not None and with_bias.w_v.bias is not None
    mha = MultiHeadAttention(8, 2, bias=False)
    assert all(w.bias is None for w in (mha.w_q, mha.w_k, mha.w_v, mha.w_o))
    x = torch.randn(1, 3, 8)
    assert MultiHeadAttention(8, 2)(x, x, x)[1] is None  # weights only when asked


def test_from_torch_keeps_the_dropout_and_the_dtype():
    reference = nn.MultiheadAttention(8, 2, dropout=0.25, batch_first=True).double()
    ours = MultiHeadAttention.from_torch(reference)
    assert ours.dropout == 0.25 and ours.w_q.weight.dtype == torch.float64
    assert torch.equal(ours.w_q.weight, reference.in_proj_weight[:8])


def test_a_nan_query_is_refused_on_the_fused_path_and_propagates_on_the_explicit():
    # PyTorch's fused CPU kernel returns zeros for a query row with NaN: silent
    q, k = torch.randn(1, 2, SHORT_KEYS + 1, 4), torch.randn(1, 2, SHORT_KEYS + 1, 4)
    q[0, 0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="q must be finite, got 1 NaN"):
        attend(q, k, k)  # long: fused
    out, _ = attend(q, k, k, need_weights=True)  # explicit: NaN in, NaN out
    assert out[0, 0, 3].isnan().all()


@pytest.mark.parametrize("causal", [False, True], ids=["long keys", "causal training"])
def test_attend_applies_dropout_on_the_fused_path(causal):
    T = 8 if causal else SHORT_KEYS + 1  # both take the fused kernel
    q = torch.randn(1, 2, T, 8, requires_grad=True)
    without, _ = attend(q, q, q, causal=causal)
    torch.manual_seed(0)
    dropped, _ = attend(q, q, q, causal=causal, dropout_p=0.5)
    torch.manual_seed(0)
    again, _ = attend(q, q, q, causal=causal, dropout_p=0.5)
    assert not torch.allclose(dropped, without)  # dropout reached the kernel
    torch.testing.assert_close(dropped, again)  # drawn from the global generator
