"""utils.experiments.vit_digits (chapter 10): patches, the data-size sweep, attention
distance, rollout and the position-embedding similarity."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from utils.attention import record_attention
from utils.cnn import CNN, CNNConfig
from utils.experiments import vit_digits as vd
from utils.vit import ViT, ViTConfig


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _vit(**kwargs):
    torch.manual_seed(0)
    config = dict(image_size=28, patch_size=7, num_layers=2, num_heads=2, d_model=16,
                  dim_feedforward=32)
    return ViT(ViTConfig(**{**config, **kwargs})).eval()


def test_the_split_is_shuffled_nested_and_holds_out_the_last_digits():
    digits = vd.load_digits_split(n_test=1000)
    small, _ = digits.train_part(250)
    large, labels = digits.train_part(4000)
    test_images, test_labels = digits.test_part()
    assert torch.equal(small, large[:250]) and test_images.shape == (1000, 1, 28, 28)
    assert len(labels.unique()) == 10 and len(test_labels[:100].unique()) == 10
    assert not torch.equal(vd.load_digits_split(seed=1).labels, digits.labels)
    with pytest.raises(ValueError, match=r"n must be in \[1, 4000\], got n=4001"):
        digits.train_part(4001)
    with pytest.raises(ValueError, match=r"n_test must be in \[1, 5000\)"):
        vd.load_digits_split(n_test=5000)


def test_random_shift_moves_each_digit_without_losing_ink():
    images = vd.load_digits_split().images[:32]  # MNIST leaves a 4-pixel margin
    before = torch.get_rng_state()
    shifted = vd.random_shift(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))
    for original, moved in zip(images, shifted):  # each is a translate of its digit
        assert any(torch.equal(torch.roll(original, (dr, dc), (1, 2)), moved)
                   for dr in range(-2, 3) for dc in range(-2, 3))
    assert not torch.equal(shifted, images)
    assert vd.random_shift(images, 0, None) is images


def test_image_batches_are_seeded():
    digits = vd.load_digits_split()
    images, labels = digits.train_part(100)
    a = next(vd.image_batches(images, labels, 8, seed=3, max_shift=1))
    b = next(vd.image_batches(images, labels, 8, seed=3, max_shift=1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (8, 1, 28, 28)


@pytest.mark.parametrize("patch_size", [1, 2, 4, 7, 14, 28])
def test_draw_patches_counts_the_tokens(patch_size):
    images = vd.load_digits_split().images[:3]
    tokens = vd.draw_patches(plt.figure(), 2, patch_size, images=images)
    assert tokens == (28 // patch_size) ** 2 + 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(patch_size=5), "patch_size must divide 28, got patch_size=5"),
    (dict(index=3), r"index must be in \[0, 3\), got index=3"),
    (dict(patch_size=0), "patch_size must be a positive int"),
])
def test_draw_patches_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vd.draw_patches(plt.figure(), images=torch.rand(3, 1, 28, 28), **kwargs)


def test_held_out_accuracy_restores_the_mode_and_counts_in_batches():
    model = CNN(CNNConfig())
    images, labels = torch.rand(7, 1, 28, 28), torch.arange(7)
    model.train()
    got = vd.held_out_accuracy(model, images, labels, batch_size=3)
    model.eval()
    expected = (model(images).argmax(-1) == labels).float().mean().item()
    assert got == pytest.approx(expected)
    model.train()
    vd.held_out_accuracy(model, images, labels)
    assert model.training


def test_data_size_sweep_is_deterministic_and_uses_the_budget_rule():
    digits = vd.load_digits_split()
    models = {"cnn": (lambda: CNN(CNNConfig(channels=(4,), hidden_size=8)), 0),
              "cnn shifted": (lambda: CNN(CNNConfig(channels=(4,), hidden_size=8)), 1)}
    results, trained = vd.data_size_sweep(models, digits, [20, 40], [0, 1], steps=3)
    again, _ = vd.data_size_sweep(models, digits, [20, 40], [0, 1], steps=3)
    assert results.keys() == models.keys() and results["cnn"].shape == (2, 2)
    test_images, test_labels = digits.test_part()  # the models of 40 digits, per seed
    assert len(trained["cnn"]) == 2 and not trained["cnn"][1].training
    for seed, model in enumerate(trained["cnn"]):
        assert vd.held_out_accuracy(model, test_images, test_labels) == (
            results["cnn"][1, seed].item())
    assert all(torch.equal(results[k], again[k]) for k in results)
    assert ((results["cnn"] >= 0) & (results["cnn"] <= 1)).all()
    history = vd.fit(CNN(CNNConfig(channels=(4,), hidden_size=8)), *digits.train_part(20),
                     steps=4)
    assert history.steps_done == 4


def test_attention_distance_by_hand():
    centres = vd.patch_centres(4, 2)  # 2×2 patches of 2×2 pixels
    assert centres.tolist() == [[0.5, 0.5], [0.5, 2.5], [2.5, 0.5], [2.5, 2.5]]
    T = 5
    to_self = torch.eye(T)[None, None]  # every token attends to itself only
    assert vd.attention_distance(to_self, 4, 2).tolist() == [0.0]
    uniform = torch.full((1, 1, T, T), 1 / T)  # the class token's share is left out
    mean_distance = (0 + 2 + 2 + 2 * math.sqrt(2)) / 4
    assert vd.attention_distance(uniform, 4, 2).item() == pytest.approx(mean_distance)
    with pytest.raises(ValueError, match=r"weights must have shape \(B, H, 5, 5\)"):
        vd.attention_distance(torch.rand(1, 1, 4, 4), 4, 2)


def test_mean_attention_distances_per_layer_and_head():
    model = _vit()
    distances = vd.mean_attention_distances(model, torch.rand(4, 1, 28, 28))
    assert distances.shape == (2, 2)
    assert ((distances > 0) & (distances < 28 * math.sqrt(2))).all()


def test_attention_rollout_by_hand():
    A = torch.softmax(torch.randn(1, 2, 3, 3), -1)
    B = torch.softmax(torch.randn(1, 2, 3, 3), -1)
    step = [0.5 * w.mean(1) + 0.5 * torch.eye(3) for w in (A, B)]  # rows sum to 1
    torch.testing.assert_close(vd.attention_rollout([A]), step[0])
    torch.testing.assert_close(vd.attention_rollout([A, B]), step[1] @ step[0])
    identity = torch.eye(3)[None, None]
    torch.testing.assert_close(vd.attention_rollout([identity] * 3), torch.eye(3)[None])


def test_class_attention_reads_the_class_tokens_row():
    model = _vit()
    digit = torch.rand(1, 28, 28)
    one = vd.class_attention(model, digit, layer=1, head=1)
    mean = vd.class_attention(model, digit, layer=1, head="mean")
    rollout = vd.class_attention(model, digit)
    assert one.shape == mean.shape == rollout.shape == (4, 4)
    for attention in (one, mean, rollout):  # shares of the attention to the patches
        assert float(attention.sum()) == pytest.approx(1.0) and (attention >= 0).all()
    # layers and heads count from 0: layer 1 is the last of 2, head 1 the second
    with torch.no_grad(), record_attention(model) as maps:
        model(digit[None])
    row = list(maps.values())[1][0, 1, 0, 1:]  # (patches,) class token, head 1
    torch.testing.assert_close(one.flatten(), row / row.sum())
    with pytest.raises(ValueError, match="layer must be one of"):
        vd.class_attention(model, digit, layer=2)
    with pytest.raises(ValueError, match="head must be one of"):
        vd.class_attention(model, digit, layer=0, head=4)


def test_position_similarity_is_a_cosine_matrix():
    similarity = vd.position_similarity(_vit())
    assert similarity.shape == (16, 16)
    torch.testing.assert_close(similarity.diagonal(), torch.ones(16))
    torch.testing.assert_close(similarity, similarity.T)
    vd.draw_position_similarity(plt.figure(), similarity)


def test_gradient_distance_of_a_cnn_block_stays_inside_its_window():
    torch.manual_seed(0)
    cnn = CNN(CNNConfig()).eval()
    image = torch.rand(28, 28)
    near, side = vd.gradient_distance(lambda x: cnn.feature_maps(x)[0], image)
    far, wide = vd.gradient_distance(lambda x: cnn.feature_maps(x)[1], image)
    assert (side, wide) == (4, 10)
    assert 0 < near <= math.sqrt(2) * 2 and near < far <= math.sqrt(2) * 5


def test_permute_patches_moves_whole_patches_and_the_identity_moves_none():
    images = torch.arange(32.0).view(2, 1, 4, 4)
    moved = vd.permute_patches(images, 2, torch.tensor([3, 2, 1, 0]))
    assert torch.equal(moved[0, 0, :2, :2], images[0, 0, 2:, 2:])  # last patch first
    assert torch.equal(moved[1, 0, 2:, 2:], images[1, 0, :2, :2])
    assert torch.equal(vd.permute_patches(images, 2, torch.arange(4)), images)


def test_upsample_doubles_the_side_and_keeps_a_constant_image():
    images = torch.rand(2, 1, 28, 28)
    assert vd.upsample(images, 56).shape == (2, 1, 56, 56)
    torch.testing.assert_close(vd.upsample(torch.full((1, 1, 28, 28), 0.3), 56),
                               torch.full((1, 1, 56, 56), 0.3))
    with pytest.raises(ValueError, match="images"):
        vd.upsample(torch.rand(28, 28), 56)


def test_at_resolution_interpolates_or_redraws_only_the_positions():
    model = _vit()
    interpolated = vd.at_resolution(model, 56)
    torch.manual_seed(1)
    fresh = vd.at_resolution(model, 56, positions="fresh")
    assert interpolated.position.shape == fresh.position.shape == (1, 1 + 64, 16)
    torch.testing.assert_close(interpolated.position[:, 0], model.position[:, 0])
    assert not torch.allclose(fresh.position, interpolated.position)
    assert fresh.position.std() < 0.03  # ViT's initialisation, std 0.02
    for name, tensor in model.state_dict().items():  # everything else is copied
        if name != "position":
            assert torch.equal(fresh.state_dict()[name], tensor), name
    assert fresh(torch.rand(1, 1, 56, 56)).shape == (1, 10)
    with pytest.raises(ValueError, match="positions"):
        vd.at_resolution(model, 56, positions="zero")
