"""utils.experiments.receptive_field (chapter 0): receptive fields measured by gradients agree with the formula."""

import matplotlib.pyplot as plt
import pytest
import torch

from utils.attention import PixelSelfAttention
from utils.cnn import ConvStack, ConvStackConfig, theoretical_receptive_field
from utils.experiments.receptive_field import (
    draw_receptive_fields,
    input_gradient,
    receptive_field_extent,
)


@pytest.mark.parametrize(
    "k, depth, dilation",
    [(3, 1, 1), (3, 4, 1), (5, 2, 1), (7, 3, 1), (3, 2, 2), (5, 2, 3)],
)
def test_measured_field_equals_formula_when_it_fits(k, depth, dilation):
    torch.manual_seed(0)
    size = 41
    image = torch.rand(size, size)
    grad = input_gradient(
        ConvStack(ConvStackConfig(k, depth, dilation)), image, size // 2, size // 2
    )
    extent = receptive_field_extent(grad)
    r = theoretical_receptive_field(k, depth, dilation)
    assert r <= size
    assert extent["width"] == extent["height"] == r
    # Dilation leaves holes: only offsets that are multiples of d are reached.
    assert extent["pixels"] == (1 + depth * (k - 1)) ** 2


def test_field_is_clipped_by_the_border():
    torch.manual_seed(0)
    grad = input_gradient(ConvStack(ConvStackConfig(3, 20)), torch.rand(28, 28), 14, 14)
    assert receptive_field_extent(grad) == {
        "pixels": 784,
        "fraction": 1.0,
        "height": 28,
        "width": 28,
    }


def test_one_attention_layer_sees_every_pixel_even_black_ones():
    torch.manual_seed(0)
    image = torch.zeros(12, 12)
    image[5, 5] = 1.0
    grad = input_gradient(PixelSelfAttention(12, 12), image, 0, 0)
    assert receptive_field_extent(grad)["fraction"] == 1.0


def test_receptive_field_extent_of_an_empty_map():
    assert receptive_field_extent(torch.zeros(4, 4)) == {
        "pixels": 0,
        "fraction": 0.0,
        "height": 0,
        "width": 0,
    }


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"depth": 0}, "depth"),
        ({"dilation": 0}, "dilation"),
        ({"channels": 0}, "channels"),
    ],
)
def test_conv_stack_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConvStackConfig(**kwargs)


def test_theoretical_receptive_field_checks_its_arguments():
    assert theoretical_receptive_field(3, 14) == 29
    assert theoretical_receptive_field(5, 2, dilation=3) == 25
    with pytest.raises(
        ValueError, match="kernel_size must be a positive odd int, got 4"
    ):
        theoretical_receptive_field(4, 1)


def test_input_gradient_rejects_bad_input():
    model = ConvStack(ConvStackConfig())
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        input_gradient(model, torch.zeros(1, 8, 8), 0, 0)
    with pytest.raises(ValueError, match="outside"):
        input_gradient(model, torch.zeros(8, 8), 8, 0)
    with pytest.raises(ValueError, match="image has 5x5 pixels, the layer expects 16"):
        PixelSelfAttention(4, 4)(torch.zeros(1, 1, 5, 5))


def test_draw_receptive_fields_titles_report_the_measurement():
    fig = plt.figure()
    conv_ax, attention_ax = draw_receptive_fields(
        fig, kernel_size=3, depth=2, dilation=1
    )
    assert conv_ax.get_title() == "2× conv: 5×5 (3%)"
    assert attention_ax.get_title() == "1× attention: 28×28 (100%)"
    plt.close(fig)


def test_draw_receptive_fields_leaves_the_global_random_state_unchanged():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    draw_receptive_fields(plt.figure(), kernel_size=5, depth=1, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    plt.close("all")


def test_pixel_self_attention_is_scaled_dot_product_attention_over_the_pixels():
    import torch.nn.functional as F
    torch.manual_seed(0)
    layer = PixelSelfAttention(3, 4, channels=6)
    image = torch.rand(2, 1, 3, 4)
    tokens = layer.embed(image.reshape(2, 12, 1)) + layer.position  # (B, T, C)
    expected = F.scaled_dot_product_attention(
        layer.query(tokens), layer.key(tokens), layer.value(tokens))  # (B, T, C)
    got = layer(image)  # (B, C, H, W)
    torch.testing.assert_close(got, expected.transpose(1, 2).reshape(2, 6, 3, 4))


def test_a_one_by_one_kernel_is_allowed_and_the_depth_is_checked():
    assert theoretical_receptive_field(1, depth=5) == 1
    with pytest.raises(ValueError, match="depth"):
        theoretical_receptive_field(3, depth=0)
