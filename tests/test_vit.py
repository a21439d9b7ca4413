import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.attention import record_attention
from utils.vit import (
    HF_NAMES,
    PatchEmbedding,
    ViT,
    ViTConfig,
    hf_name,
    patchify,
    resize_positions,
)

CONFIGS = {
    "grey, patch 7": dict(image_size=28, patch_size=7, num_channels=1, num_labels=10,
                          hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64),
    "RGB, patch 4": dict(image_size=16, patch_size=4, num_channels=3, num_labels=5,
                         hidden_size=24, num_hidden_layers=3, num_attention_heads=2,
                         intermediate_size=48, layer_norm_eps=1e-6),
}


def _reference(**overrides):
    config = transformers.ViTConfig(
        **{**CONFIGS["grey, patch 7"], "hidden_dropout_prob": 0.0,
           "attention_probs_dropout_prob": 0.0, **overrides},
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_equal_transformers_vit_with_copied_weights(name):
    reference = _reference(**CONFIGS[name])
    with torch.no_grad():  # random, non-zero class token and positions
        reference.vit.embeddings.cls_token.normal_()
        reference.vit.embeddings.position_embeddings.normal_()
    ours = ViT.from_hf(reference).eval()
    c = ours.config
    images = torch.randn(3, c.in_channels, c.image_size, c.image_size)
    with torch.no_grad():
        expected = reference(pixel_values=images).logits
        got = ours(images)
    assert got.shape == (3, c.num_classes)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@pytest.mark.parametrize("name, image_size", [("grey, patch 7", 56),
                                              ("grey, patch 7", 21),
                                              ("RGB, patch 4", 32)])
def test_a_resized_vit_equals_transformers_interpolated_positions(name, image_size):
    reference = _reference(**CONFIGS[name])
    with torch.no_grad():  # positions that vary smoothly and not: both are resampled
        reference.vit.embeddings.position_embeddings.normal_()
    ours = ViT.from_hf(reference).eval()
    larger = ours.resized(image_size)
    c = larger.config
    assert (c.image_size, c.patch_size) == (image_size, ours.config.patch_size)
    assert larger.position.shape == (1, 1 + c.num_patches, c.d_model)
    images = torch.randn(2, c.in_channels, image_size, image_size)
    with torch.no_grad():
        expected = reference(pixel_values=images, interpolate_pos_encoding=True).logits
        got = larger(images)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # the original model is untouched, and the copy trains on its own
    assert ours.config.image_size == CONFIGS[name]["image_size"]
    assert larger.position.data_ptr() != ours.position.data_ptr()
    assert larger.head.weight.data_ptr() != ours.head.weight.data_ptr()


def test_resizing_to_the_same_grid_keeps_the_positions_and_refuses_a_non_square():
    position = torch.randn(1, 1 + 16, 8)
    torch.testing.assert_close(resize_positions(position, 4), position)
    with pytest.raises(ValueError, match="1 \\+ n·n"):
        resize_positions(torch.randn(1, 1 + 15, 8), 4)
    with pytest.raises(ValueError, match="image_size"):
        ViT(ViTConfig()).resized(30)  # 7-pixel patches do not divide 30


def test_every_tensor_is_copied_and_the_config_is_read():
    reference = _reference(**CONFIGS["RGB, patch 4"])
    ours = ViT.from_hf(reference)
    theirs = reference.state_dict()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, theirs[hf_name(name)]), name
    assert len(ours.state_dict()) == len(theirs)
    assert (ours.config.image_size, ours.config.patch_size, ours.config.in_channels,
            ours.config.num_classes, ours.config.layer_norm_eps) == (16, 4, 3, 5, 1e-6)
    assert len(HF_NAMES["layer"]) == 8
    with pytest.raises(ValueError, match="no Hugging Face name"):
        hf_name("nothing.weight")


@pytest.mark.parametrize("overrides, words", [
    (dict(hidden_act="relu"), "hidden_act"),
    (dict(qkv_bias=False), "qkv_bias"),
    (dict(attention_probs_dropout_prob=0.1), "attention_probs_dropout_prob"),
    (dict(image_size=(28, 14)), "square"),
])
def test_from_hf_refuses_what_it_does_not_support(overrides, words):
    with pytest.raises(ValueError, match=words):
        ViT.from_hf(_reference(**overrides))


def test_from_hf_refuses_another_model():
    with pytest.raises(ValueError, match="ViTForImageClassification"):
        ViT.from_hf(_reference().vit)


def test_patch_embedding_is_a_linear_layer_on_flattened_patches():
    config = ViTConfig(image_size=12, patch_size=4, in_channels=3, d_model=8,
                       num_heads=2)
    embed = PatchEmbedding(config)
    images = torch.randn(2, 3, 12, 12)
    patches = patchify(images, 4)  # (B, N, C·P·P)
    assert patches.shape == (2, 9, 48)
    # patch 5 is row 1, column 2: pixels [4:8, 8:12] of every channel
    assert torch.equal(patches[0, 5], images[0, :, 4:8, 8:12].flatten())
    weight = embed.projection.weight.flatten(1)  # (d, C·P·P)
    linear = patches @ weight.T + embed.projection.bias
    assert torch.allclose(embed(images), linear, atol=1e-5)
    with pytest.raises(ValueError, match="patch_size"):
        patchify(torch.randn(1, 1, 10, 10), 4)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_permuting_patches_and_positions_together_changes_nothing(seed):
    """ViT has no built-in notion of 2-D layout: only the position embeddings say
    where a patch was."""
    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=12, patch_size=4, d_model=16, num_heads=2,
                          num_layers=2, dim_feedforward=32)).eval()
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(9, generator=generator)
    images = torch.randn(2, 1, 12, 12, generator=generator)
    # rearrange the 3×3 grid of patches by `perm`
    grid = images.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, 1, 3, 3, 4, 4)
    tiles = grid.reshape(2, 1, 9, 4, 4)[:, :, perm].reshape(2, 1, 3, 3, 4, 4)
    shuffled = tiles.permute(0, 1, 2, 4, 3, 5).reshape(2, 1, 12, 12)
    assert torch.equal(patchify(shuffled, 4), patchify(images, 4)[:, perm])
    moved = ViT(model.config).eval()
    moved.load_state_dict(model.state_dict())
    with torch.no_grad():
        moved.position[0, 1:] = model.position[0, 1:][perm]
        expected, got = model.features(images)[:, 0], moved.features(shuffled)[:, 0]
        shuffled_only = model.features(shuffled)[:, 0]
    assert torch.allclose(got, expected, atol=1e-5)
    if not torch.equal(perm, torch.arange(9)):  # the positions are what tells them apart
        assert not torch.allclose(shuffled_only, expected, atol=1e-3)


def test_attention_weights_of_every_layer_are_recorded():
    model = ViT(ViTConfig(image_size=12, patch_size=4, d_model=16, num_heads=2,
                          num_layers=3, dim_feedforward=32)).eval()
    with torch.no_grad(), record_attention(model) as maps:
        model(torch.randn(2, 1, 12, 12))
    assert len(maps) == 3
    for weights in maps.values():
        assert weights.shape == (2, 2, 10, 10)
        assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 10))


def test_bad_images_and_configs_get_a_value_error():
    model = ViT(ViTConfig(image_size=12, patch_size=4, d_model=16, num_heads=2))
    with pytest.raises(ValueError, match="images must have shape"):
        model(torch.randn(2, 3, 12, 12))  # 3 channels for a grey model
    with pytest.raises(ValueError, match="images must have shape"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="floating"):
        model(torch.ones(2, 1, 12, 12, dtype=torch.long))
    with pytest.raises(ValueError, match="image_size"):
        ViTConfig(image_size=28, patch_size=5)
    with pytest.raises(ValueError, match="d_model"):
        ViTConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="patch_size"):
        ViTConfig(patch_size=0)
    assert ViTConfig(image_size=28, patch_size=7).num_patches == 16


@pytest.mark.parametrize("call, message", [
    (lambda: ViTConfig(image_size=28, patch_size=5),
     "image_size=28 is not divisible by patch_size=5"),
    (lambda: ViTConfig(d_model=30, num_heads=4), "d_model=30 is not divisible by num_heads=4"),
    (lambda: ViTConfig(dropout=1.5), "dropout must be in [0, 1), got dropout=1.5"),
    (lambda: ViTConfig(layer_norm_eps=0.0),
     "layer_norm_eps must be in (0, inf], got layer_norm_eps=0.0"),
    (lambda: ViTConfig(layer_norm_eps=-1e-6),
     "layer_norm_eps must be in (0, inf], got layer_norm_eps=-1e-06"),
    (lambda: patchify(torch.rand(1, 1, 10, 12), 4),
     "image height=10 is not divisible by patch_size=4"),
    (lambda: patchify(torch.rand(1, 1, 12, 10), 4),
     "image width=10 is not divisible by patch_size=4"),
    (lambda: patchify(torch.rand(1, 12, 12), 4),
     "images must have shape (B, C, H, W), got (1, 12, 12)"),
    (lambda: patchify(torch.ones(1, 1, 12, 12, dtype=torch.long), 4),
     "images must be a floating-point tensor, got dtype torch.int64"),
    (lambda: ViT(ViTConfig(image_size=12, patch_size=4, d_model=16, num_heads=2))(
        torch.rand(2, 3, 12, 12)), "images must have shape (B, 1, 12, 12), got (2, 3, 12, 12)"),
])
def test_error_messages_name_the_argument_and_what_was_expected(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_configuration_reaches_every_part_and_tokens_start_like_vit():
    torch.manual_seed(0)
    config = ViTConfig(image_size=28, patch_size=4, d_model=64, num_heads=4,
                       num_layers=2, dim_feedforward=96, dropout=0.25,
                       layer_norm_eps=1e-3)
    model = ViT(config)
    layer = model.layers[0]
    assert layer.self_attn_sublayer.dropout.p == 0.25 and model.dropout.p == 0.25
    assert layer.feed_forward.linear1.out_features == 96
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 and all(n.eps == 1e-3 for n in norms)
    assert model.head.out_features == 10 and model.position.shape == (1, 50, 64)
    # ViT's initialisation: truncated normal with std 0.02 (not the default 1)
    assert 0.015 < model.position.std().item() < 0.025
    assert model.class_token.abs().max().item() < 0.1
