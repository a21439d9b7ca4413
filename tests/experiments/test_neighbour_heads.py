"""utils.experiments.neighbour_heads (chapter 5): the neighbour task, its model, heads in a loop."""

import itertools

import matplotlib.pyplot as plt
import pytest
import torch

from utils.attention import MultiHeadAttention, multi_head_loop, padding_mask
from utils.experiments.neighbour_heads import (
    NeighbourModel,
    NeighbourTaskConfig,
    attention_by_offset,
    draw_heads,
    neighbour_accuracy,
    neighbour_batches,
    neighbour_difference_batch,
    neighbour_loss,
)

ATOL = 1e-5


def test_neighbour_task_targets_and_offsets():
    config = NeighbourTaskConfig(block_size=5)
    x, y = neighbour_difference_batch(config, 3, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 5)
    for b in range(3):
        for t in range(5):
            assert y[b, t] == (x[b, (t - 1) % 5] - x[b, (t + 1) % 5]) % 10
    weights = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    profile = attention_by_offset(weights)
    torch.testing.assert_close(profile.sum(-1), torch.ones(3), atol=ATOL, rtol=0)
    left = torch.zeros(1, 1, 5, 5)
    left[0, 0, torch.arange(5), (torch.arange(5) - 1) % 5] = (
        1.0  # every query looks one to the left
    )
    assert attention_by_offset(left)[0, 4] == 1.0  # offset -1 is stored at T - 1
    with pytest.raises(ValueError, match="block_size must be an int >= 3, got block_size=2"):
        NeighbourTaskConfig(block_size=2)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        NeighbourTaskConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="batch_size"):
        neighbour_difference_batch(config, 0, torch.Generator())


def test_neighbour_batches_are_endless_and_seeded():
    config = NeighbourTaskConfig(block_size=6)
    a = list(itertools.islice(neighbour_batches(config, 4, seed=2), 3))
    b = list(itertools.islice(neighbour_batches(config, 4, seed=2), 3))
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert not torch.equal(a[0][0], a[1][0])
    first = neighbour_difference_batch(config, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a[0][0], first[0]) and torch.equal(a[0][1], first[1])


def test_model_returns_weights_only_when_asked():
    torch.manual_seed(0)
    config = NeighbourTaskConfig(block_size=5)
    model = NeighbourModel(config).eval()
    x, y = neighbour_difference_batch(config, 3, torch.Generator().manual_seed(0))
    logits, w = model(x)
    assert logits.shape == (3, 5, 10) and w is None
    explicit, w = model(x, need_weights=True)
    assert w.shape == (3, 2, 5, 5)
    torch.testing.assert_close(explicit, logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 5), atol=ATOL, rtol=0)
    assert (
        neighbour_loss(model, (x, y)).ndim == 0
        and 0.0 <= neighbour_accuracy(model, (x, y)) <= 1.0
    )
    with pytest.raises(ValueError, match="exceeds the model's block_size=5"):
        model(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="head must be in"):
        draw_heads(None, head=2, model=model, tokens=x)
    with pytest.raises(ValueError, match="example must be in"):
        draw_heads(None, example=3, model=model, tokens=x)


def test_draw_heads_labels_positions_and_digits():
    config = NeighbourTaskConfig(block_size=5)
    x, _ = neighbour_difference_batch(config, 2, torch.Generator().manual_seed(0))
    fig = plt.figure()
    axes = draw_heads(fig, head=1, example=1, model=NeighbourModel(config), tokens=x)
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels == [f"{i}:{int(t)}" for i, t in enumerate(x[1])]
    plt.close(fig)


@pytest.mark.parametrize("masked", [False, True])
def test_loop_equals_the_batched_module(masked):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = None
    if masked:
        mask = padding_mask([7, 4], 7)[:, None, None, :] & (torch.rand(5, 7) > 0.3)
        mask[..., 0] = True
    out, _ = mha(x, memory, memory, mask)
    torch.testing.assert_close(
        multi_head_loop(mha, x, memory, memory, mask), out, atol=ATOL, rtol=0
    )


def test_loop_rejects_a_mask_that_does_not_fit():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="cannot broadcast"):
        multi_head_loop(mha, x, x, x, torch.ones(2, 4, dtype=torch.bool))


def test_time_variants_times_four_implementations_of_one_function():
    from utils.experiments.neighbour_heads import time_variants

    before = torch.get_rng_state()
    seconds = time_variants(2, 5, 8, 2, repeat=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert list(seconds) == ["loop over heads", "batched heads (ours)",
                             "fused F.scaled_dot_product_attention",
                             "nn.MultiheadAttention"]
    assert all(s > 0 for s in seconds.values())
