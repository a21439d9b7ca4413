"""A small convolutional network: chapter 10's baseline against the Vision Transformer.

Each block is a 'same'-padded convolution, ReLU and 2x2 max pooling, so a feature map
halves in size and each of its pixels sees a window of the image that grows block by
block: the locality and translation equivariance that a ViT has to learn from data.
A hidden linear layer and the classifier follow.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks import check_int, check_tensor


@dataclass
class CNNConfig:
    image_size: int = 28  # height = width, in pixels
    in_channels: int = 1
    num_classes: int = 10
    channels: tuple = (16, 32)  # output channels of each conv block
    kernel_size: int = 3  # odd, so that 'same' padding keeps the size
    hidden_size: int = 64  # width of the hidden linear layer

    def __post_init__(self):
        for name in (
            "image_size",
            "in_channels",
            "num_classes",
            "kernel_size",
            "hidden_size",
        ):
            check_int(name, getattr(self, name))
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd, got kernel_size={self.kernel_size}"
            )
        if not isinstance(self.channels, tuple) or not self.channels:
            raise ValueError(
                f"channels must be a non-empty tuple, got {self.channels!r}"
            )
        for c in self.channels:
            check_int("each of channels", c)
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(
                f"image_size={self.image_size} must be divisible by "
                f"2**len(channels)={2 ** len(self.channels)} (one 2x2 pool per block)"
            )


class CNN(nn.Module):
    """[conv -> ReLU -> 2x2 max pool] per block -> hidden linear -> classifier.

    forward(images (B, C, H, W)) -> class logits (B, num_classes).
    """

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        k, widths = config.kernel_size, (config.in_channels, *config.channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2)
            )
            for c_in, c_out in zip(widths, widths[1:])
        )
        side = config.image_size // 2 ** len(config.channels)
        self.hidden = nn.Linear(widths[-1] * side * side, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.num_classes)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output: [(B, C_1, H/2, W/2), (B, C_2, H/4, W/4), ...]."""
        c = self.config
        shape = ("B", c.in_channels, c.image_size, c.image_size)
        x = check_tensor("images", images, shape, floating=True)
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.feature_maps(images)[-1].flatten(1)  # (B, C·h·w)
        return self.head(torch.relu(self.hidden(x)))  # (B, num_classes)


def receptive_fields(config: CNNConfig) -> list[int]:
    """The side, in pixels, of the image window one output pixel of each block sees.

    A layer of kernel k adds (k - 1)·j pixels, where j is the distance in the image
    between neighbouring pixels of its input: 1 at first, doubled by every pooling.
    """
    if not isinstance(config, CNNConfig):
        raise ValueError(f"config must be a CNNConfig, got {type(config).__name__}")
    side, jump, sides = 1, 1, []
    for _ in config.channels:
        side += (config.kernel_size - 1) * jump  # the convolution
        side += (2 - 1) * jump  # the 2x2 pooling
        jump *= 2
        sides.append(side)
    return sides


# --- Chapter 0's stack of 'same' convolutions, to measure receptive fields ---


@dataclass
class ConvStackConfig:
    kernel_size: int = 3  # k: odd, so "same" padding keeps the image size
    depth: int = 2  # L: number of convolution layers
    dilation: int = 1  # d: spacing between kernel taps
    channels: int = 8

    def __post_init__(self):
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd int, got {self.kernel_size}"
            )
        for name in ("depth", "dilation", "channels"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be >= 1, got {name}={getattr(self, name)}"
                )


def theoretical_receptive_field(kernel_size: int, depth: int, dilation: int = 1) -> int:
    """Side of the receptive field of a stack of convolutions: 1 + L·(k − 1)·d."""
    ConvStackConfig(kernel_size, depth, dilation)  # validates the arguments
    return 1 + depth * (kernel_size - 1) * dilation


class ConvStack(nn.Module):
    """`depth` 'same'-padded convolutions with tanh: (B, 1, H, W) -> (B, C, H, W)."""

    def __init__(self, config: ConvStackConfig):
        super().__init__()
        k, d, c = config.kernel_size, config.dilation, config.channels
        padding = d * (k - 1) // 2
        self.layers = nn.ModuleList(
            nn.Conv2d(1 if i == 0 else c, c, k, padding=padding, dilation=d)
            for i in range(config.depth)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image  # (B, 1, H, W)
        for conv in self.layers:
            x = torch.tanh(conv(x))  # (B, C, H, W)
        return x
