"""utils.cnn (chapter 10): the CNN baseline, and its receptive fields measured with
chapter 0's gradients."""

import pytest
import torch
import torch.nn as nn

from utils.cnn import CNN, CNNConfig, receptive_fields
from utils.experiments.receptive_field import input_gradient, receptive_field_extent
from utils.train import count_parameters


@pytest.mark.parametrize("config", [
    CNNConfig(),
    CNNConfig(kernel_size=5, channels=(16, 16), image_size=32),
    CNNConfig(kernel_size=1, channels=(3,), image_size=8, in_channels=3),
], ids=["default", "k5-two-blocks", "k1-one-block-rgb"])
def test_receptive_fields_equal_the_window_the_gradient_reaches(config):
    torch.manual_seed(0)
    model = CNN(config).eval()
    image = torch.rand(config.image_size, config.image_size)
    for i, side in enumerate(receptive_fields(config)):
        def block(x, i=i):  # input_gradient passes one grey channel
            x = x.expand(-1, config.in_channels, -1, -1)
            return model.feature_maps(x)[i]
        h = block(image[None, None]).shape[-1]
        gradient = input_gradient(block, image, h // 2, h // 2)
        extent = receptive_field_extent(gradient)
        assert (extent["height"], extent["width"]) == (side, side)


def test_logits_equal_a_pytorch_sequential_with_the_same_weights():
    torch.manual_seed(0)
    model = CNN(CNNConfig(channels=(4, 8), hidden_size=16)).eval()
    reference = nn.Sequential(
        *[layer for block in model.blocks for layer in block],
        nn.Flatten(),
        model.hidden,
        nn.ReLU(),
        model.head,
    )
    images = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(model(images), reference(images))


def test_shapes_and_parameter_count():
    config = CNNConfig(channels=(16, 32), hidden_size=84)
    model = CNN(config)
    images = torch.rand(5, 1, 28, 28)
    maps = model.feature_maps(images)
    assert [m.shape for m in maps] == [(5, 16, 14, 14), (5, 32, 7, 7)]
    assert model(images).shape == (5, 10)
    convs = (1 * 9 + 1) * 16 + (16 * 9 + 1) * 32
    assert count_parameters(model) == convs + (32 * 49 + 1) * 84 + (84 + 1) * 10


@pytest.mark.parametrize("call, message", [
    (lambda: CNNConfig(kernel_size=4), "kernel_size must be odd, got kernel_size=4"),
    (lambda: CNNConfig(channels=[8]), "channels must be a non-empty tuple, got [8]"),
    (lambda: CNNConfig(channels=()), "channels must be a non-empty tuple, got ()"),
    (lambda: CNNConfig(channels=(8, 0)),
     "each of channels must be a positive int, got each of channels=0"),
    (lambda: CNNConfig(image_size=30, channels=(4, 4)),
     "image_size=30 must be divisible by 2**len(channels)=4 (one 2x2 pool per block)"),
    (lambda: CNNConfig(hidden_size=0), "hidden_size must be a positive int, got hidden_size=0"),
    (lambda: CNN(CNNConfig())(torch.rand(2, 3, 28, 28)),
     "images must have shape (B, 1, 28, 28), got (2, 3, 28, 28)"),
    (lambda: CNN(CNNConfig())(torch.zeros(2, 1, 28, 28, dtype=torch.long)),
     "images must be a floating-point tensor, got dtype torch.int64"),
    (lambda: receptive_fields(dict(kernel_size=3)),
     "config must be a CNNConfig, got dict"),
], ids=["even-kernel", "list", "empty", "zero-channels", "indivisible", "hidden",
        "channels-of-images", "int-images", "not-a-config"])
def test_refusals_name_the_argument_exactly(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message
