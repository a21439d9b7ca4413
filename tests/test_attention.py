"""Chapters 3-4: attention equals PyTorch's (copied weights, 1e-5), and its properties hold."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.attention import (MultiHeadAttention, SelfAttention, causal_mask, merge_heads, multi_head_fused,
                             multi_head_loop, padding_mask, scaled_dot_product_attention, softmax_statistics,
                             split_heads)
from utils.toy_tasks import (NeighbourModel, NeighbourTaskConfig, attention_by_offset, draw_heads,
                             neighbour_difference_batch)

ATOL = 1e-5


def _to_torch_masks(mask_keep_qk, lengths, T_k):
    """Our 'True = may attend' masks as nn.MultiheadAttention's 'True = ignore' arguments."""
    attn_mask = None if mask_keep_qk is None else ~mask_keep_qk
    key_padding_mask = None if lengths is None else ~padding_mask(lengths, T_k)[:, 0, 0]
    return attn_mask, key_padding_mask


# --- scaled_dot_product_attention --------------------------------------------------------

@pytest.mark.parametrize("shape_q, shape_kv, d_v", [
    ((1, 5, 8), (1, 5, 8), 8),          # batch 1, self-attention shapes
    ((3, 4, 8), (3, 7, 8), 6),          # T_q != T_k, d_v != d_k
    ((2, 4, 6, 16), (2, 4, 9, 16), 16),  # with a head dimension
])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_equals_torch(shape_q, shape_kv, d_v, masked):
    torch.manual_seed(0)
    q = torch.randn(shape_q, requires_grad=True)
    k = torch.randn(shape_kv, requires_grad=True)
    v = torch.randn(shape_kv[:-1] + (d_v,), requires_grad=True)
    mask = None
    if masked:
        mask = torch.rand(shape_q[-2], shape_kv[-2]) > 0.4
        mask[:, 0] = True                                   # every query may attend somewhere
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    ours_grads = torch.autograd.grad((ours * torch.cos(ours)).sum(), (q, k, v))
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref_grads = torch.autograd.grad((reference * torch.cos(reference)).sum(), (q, k, v))
    torch.testing.assert_close(ours, reference, atol=ATOL, rtol=0)
    for g, r in zip(ours_grads, ref_grads):
        torch.testing.assert_close(g, r, atol=ATOL, rtol=0)
    assert weights.shape == shape_q[:-1] + (shape_kv[-2],)


def test_sdpa_weights_are_the_softmax_of_scaled_scores():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    _, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(torch.einsum("bqd,bkd->bqk", q, k) / 2.0, dim=-1)   # sqrt(4) = 2
    torch.testing.assert_close(weights, expected, atol=ATOL, rtol=0)


def test_fully_masked_rows_give_zero_output_and_finite_gradients():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, requires_grad=True)
    k, v = torch.randn(2, 5, 4, requires_grad=True), torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, 1] = False                                      # query 1 of sequence 0 sees nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    out.sum().backward()
    assert torch.equal(out[0, 1], torch.zeros(4)) and torch.equal(weights[0, 1], torch.zeros(5))
    assert torch.equal(q.grad[0, 1], torch.zeros(4))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    torch.testing.assert_close(weights[mask.any(-1)].sum(-1), torch.ones(5), atol=ATOL, rtol=0)
    # PyTorch's fused kernel agrees (it also returns zeros for such rows)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=ATOL, rtol=0)


def test_sdpa_rejects_bad_input():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"q.shape\[-1\]=6 and k.shape\[-1\]=4"):
        scaled_dot_product_attention(torch.randn(2, 3, 6), k, v)
    with pytest.raises(ValueError, match=r"k.shape\[-2\]=5 and v.shape\[-2\]=4"):
        scaled_dot_product_attention(q, k, torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\) cannot broadcast to the scores of shape \(2, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(2, 1, 1, 5\) cannot broadcast"):  # would silently grow the batch
        scaled_dot_product_attention(q, k, v, padding_mask([5, 5], 5))
    with pytest.raises(ValueError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        scaled_dot_product_attention(torch.randn(4), k, v)
    with pytest.raises(ValueError, match="dropout_p=1.0"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0)


# --- masks --------------------------------------------------------------------------------

def test_causal_mask():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert mask[i, j].item() == (j <= i)
    with pytest.raises(ValueError, match="T=0"):
        causal_mask(0)


def test_causal_mask_means_no_peeking():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4)
    out, _ = scaled_dot_product_attention(x, x, x, causal_mask(6))
    x2 = x.clone()
    x2[0, 4:] = torch.randn(2, 4)                           # change the future
    out2, _ = scaled_dot_product_attention(x2, x2, x2, causal_mask(6))
    torch.testing.assert_close(out[0, :4], out2[0, :4], atol=ATOL, rtol=0)
    assert not torch.allclose(out[0, 4:], out2[0, 4:])


def test_padding_mask():
    mask = padding_mask([2, 0, 3], 3)
    assert mask.shape == (3, 1, 1, 3)
    assert mask[:, 0, 0].tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    with pytest.raises(ValueError, match=r"lengths=\[4\]"):
        padding_mask([4], 3)
    with pytest.raises(ValueError, match="1-D"):
        padding_mask([[1]], 3)
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


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_multi_head_attention_equals_torch(case):
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
        keep_qk[:, 0] = True                                 # no fully masked rows in the reference
    mask = keep_qk
    if lengths is not None:
        mask = padding_mask(lengths, T_k) if mask is None else mask & padding_mask(lengths, T_k)
    attn_mask, key_padding_mask = _to_torch_masks(keep_qk, lengths, T_k)

    out, weights = ours(query, key, value, mask)
    ref_out, ref_weights = ref(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                               need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights, ref_weights, atol=ATOL, rtol=0)
    assert weights.shape == (B, H, T_q, T_k)

    inputs = [query] + ([key, value] if cross else [])
    g_ours = torch.autograd.grad((out ** 2).sum(), inputs + list(ours.parameters()))
    g_ref = torch.autograd.grad((ref_out ** 2).sum(), inputs + [ref.in_proj_weight, ref.out_proj.weight])
    for a, b in zip(g_ours[:len(inputs)], g_ref[:len(inputs)]):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    w_grads = [p for name, p in zip([n for n, _ in ours.named_parameters()], g_ours[len(inputs):])
               if name.endswith("weight")]
    torch.testing.assert_close(torch.cat(w_grads[:3]), g_ref[len(inputs)], atol=ATOL, rtol=0)
    torch.testing.assert_close(w_grads[3], g_ref[len(inputs) + 1], atol=ATOL, rtol=0)


def test_equals_torch_fast_path_in_eval_mode():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = torch.randn(3, 10, 32)
    lengths = [10, 6, 2]
    with torch.no_grad():
        ref_out, _ = ref(x, x, x, key_padding_mask=~padding_mask(lengths, 10)[:, 0, 0], need_weights=False)
        out, _ = ours(x, x, x, padding_mask(lengths, 10))
    for b, n in enumerate(lengths):    # the fast path may leave padded query rows arbitrary: compare real ones
        torch.testing.assert_close(out[b, :n], ref_out[b, :n], atol=ATOL, rtol=0)


def test_loop_and_fused_variants_equal_the_batched_module():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = padding_mask([7, 4], 7) & (torch.rand(5, 7) > 0.3)
    mask[..., 0] = True
    out, _ = mha(x, memory, memory, mask)
    torch.testing.assert_close(multi_head_loop(mha, x, memory, memory, mask), out, atol=ATOL, rtol=0)
    torch.testing.assert_close(multi_head_fused(mha, x, memory, memory, mask), out, atol=ATOL, rtol=0)


def test_split_and_merge_heads_are_inverse():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[:, 1], x[..., 4:8])            # head 1 gets features 4..7
    assert torch.equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="num_heads=5"):
        split_heads(x, 5)


@pytest.mark.parametrize("H", [1, 2, 4, 8])
def test_parameter_count_does_not_depend_on_heads(H):
    d = 64
    assert sum(p.numel() for p in MultiHeadAttention(d, H).parameters()) == 4 * (d * d + d)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(1, 6, 8)
    mha.eval()
    a, _ = mha(x, x, x)
    b, _ = mha(x, x, x)
    assert torch.equal(a, b)
    mha.train()
    c, w = mha(x, x, x)
    assert not torch.allclose(a, c) and (w == 0).any()


def test_self_attention_module():
    torch.manual_seed(0)
    layer = SelfAttention(8, d_k=4)
    x = torch.randn(2, 5, 8)
    out, weights = layer(x, causal_mask(5))
    expected, _ = scaled_dot_product_attention(layer.w_q(x), layer.w_k(x), layer.w_v(x), causal_mask(5))
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    assert out.shape == (2, 5, 4) and torch.equal(weights[0].triu(1), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="d_k=0"):
        SelfAttention(8, d_k=0)


def test_multi_head_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="num_heads=0"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="dropout=1.5"):
        MultiHeadAttention(8, 2, dropout=1.5)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"key must be \(B, T, d_model=8\), got shape \(2, 4, 6\)"):
        mha(x, torch.randn(2, 4, 6), x)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) cannot broadcast to the scores of shape \(2, 2, 4, 4\)"):
        mha(x, x, x, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2))
    with pytest.raises(ValueError, match="kdim"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, batch_first=True))
    with pytest.raises(ValueError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))


# --- properties (hypothesis) --------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


@settings(max_examples=50, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 7), H=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16),
       data=st.data())
def test_self_attention_without_positions_is_permutation_equivariant(B, T, H, seed, data):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(4 * H, H)
    x = torch.randn(B, T, 4 * H)
    perm = torch.tensor(data.draw(st.permutations(range(T))), dtype=torch.long)
    out, weights = mha(x, x, x)
    out_p, weights_p = mha(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_p, out[:, perm], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(weights_p, weights[:, :, perm][..., perm], atol=ATOL, rtol=1e-5)


@settings(max_examples=50, deadline=None)
@given(T_q=dims, T_k=dims, d=dims, seed=st.integers(0, 2**16), scale=st.floats(0.1, 30.0), data=st.data())
def test_masked_keys_get_zero_weight_and_rows_sum_to_one(T_q, T_k, d, seed, scale, data):
    torch.manual_seed(seed)
    q, k, v = scale * torch.randn(2, T_q, d), scale * torch.randn(2, T_k, d), torch.randn(2, T_k, d)
    bits = data.draw(st.lists(st.booleans(), min_size=2 * T_q * T_k, max_size=2 * T_q * T_k))
    mask = torch.tensor(bits).reshape(2, T_q, T_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and (weights >= 0).all()
    assert torch.equal(weights[~mask], torch.zeros_like(weights[~mask]))
    rows = mask.any(-1)
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[rows], torch.ones_like(sums[rows]), atol=ATOL, rtol=0)
    assert torch.equal(sums[~rows], torch.zeros_like(sums[~rows]))    # nowhere to look: zero


@settings(max_examples=50, deadline=None)
@given(B=st.integers(1, 3), T=dims, H=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**16))
def test_multi_head_weights_rows_sum_to_one(B, T, H, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(2 * H, H)
    x = 5 * torch.randn(B, T, 2 * H)
    _, weights = mha(x, x, x, causal_mask(T))
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T), atol=ATOL, rtol=0)
    assert math.isclose(float(weights[..., 0, 0].min().detach()), 1.0, abs_tol=1e-6)   # the first token sees only itself


# --- chapter 3's experiment and chapter 4's toy task ---------------------------------------

def test_softmax_statistics_show_saturation_without_scaling():
    raw_small, raw_big = softmax_statistics(4, scaled=False), softmax_statistics(512, scaled=False)
    scaled_small, scaled_big = softmax_statistics(4, scaled=True), softmax_statistics(512, scaled=True)
    assert raw_big["entropy"] < raw_small["entropy"] / 5 and raw_big["grad_norm"] < raw_small["grad_norm"] / 50
    assert abs(scaled_big["entropy"] - scaled_small["entropy"]) < 0.2
    assert 0.8 < scaled_big["score_std"] < 1.2 and raw_big["score_std"] > 15
    with pytest.raises(ValueError, match="d_k=0"):
        softmax_statistics(0, scaled=True)


def test_neighbour_task_targets_and_offsets():
    config = NeighbourTaskConfig(length=5)
    x, y = neighbour_difference_batch(3, config, torch.Generator().manual_seed(0))
    for b in range(3):
        for t in range(5):
            assert y[b, t] == (x[b, (t - 1) % 5] - x[b, (t + 1) % 5]) % 10
    weights = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    profile = attention_by_offset(weights)
    torch.testing.assert_close(profile.sum(-1), torch.ones(3), atol=ATOL, rtol=0)
    left = torch.zeros(1, 1, 5, 5)
    left[0, 0, torch.arange(5), (torch.arange(5) - 1) % 5] = 1.0   # every query looks one to the left
    assert attention_by_offset(left)[0, 4] == 1.0                    # offset -1 is stored at T - 1
    with pytest.raises(ValueError, match="length=2"):
        NeighbourTaskConfig(length=2)
    model = NeighbourModel(config)
    logits, w = model(x)
    assert logits.shape == (3, 5, 10) and w.shape == (3, 2, 5, 5)
    with pytest.raises(ValueError, match="head=2"):
        draw_heads(None, head=2, model=model, tokens=x)


def test_draw_heads_labels_positions_and_digits():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    config = NeighbourTaskConfig(length=5)
    x, _ = neighbour_difference_batch(2, config, torch.Generator().manual_seed(0))
    fig = plt.figure()
    axes = draw_heads(fig, head=1, example=1, model=NeighbourModel(config), tokens=x)
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels == [f"{i}:{int(t)}" for i, t in enumerate(x[1])]
    plt.close(fig)


def test_draw_scaling_panels_and_visible_marker():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from utils.attention import D_K_VALUES, draw_scaling
    fig = plt.figure()
    axes = draw_scaling(fig, d_k=1024)
    assert len(axes) == 3
    for ax in axes[1:]:                       # the dashed d_k mark is inside the axes
        low, high = ax.get_xlim()
        assert low < D_K_VALUES[0] and high > D_K_VALUES[-1]
    assert len(draw_scaling(plt.figure(), d_k=16, panels=("example",))) == 1
    assert len(draw_scaling(plt.figure(), d_k=None, panels=("entropy", "gradient"))) == 2
    with pytest.raises(ValueError, match="panels"):
        draw_scaling(plt.figure(), panels=("histogram",))
    with pytest.raises(ValueError, match="needs a d_k"):
        draw_scaling(plt.figure(), d_k=None)
    plt.close("all")
