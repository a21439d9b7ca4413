"""Receptive fields, measured with gradients (chapter 0, "Why attention").

The receptive field of one output is the set of input pixels that can change it. We
measure it directly: back-propagate from one output position to the input image and see
which pixels get a non-zero gradient. A stack of convolutions sees a window that grows
with depth; a single self-attention layer over the pixels sees every pixel.
"""

import torch
import torch.nn as nn

from utils.attention import PixelSelfAttention
from utils.cnn import ConvStack, ConvStackConfig
from utils.env import seeded


def input_gradient(
    model: nn.Module, image: torch.Tensor, row: int, col: int
) -> torch.Tensor:
    """|∂ output[row, col] / ∂ image|: how much each pixel moves one output.

    `image` is (H, W); the output at (row, col) is summed over channels. Returns (H, W).
    """
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W), got shape {tuple(image.shape)}")
    H, W = image.shape
    if not (0 <= row < H and 0 <= col < W):
        raise ValueError(f"position ({row}, {col}) is outside the {H}x{W} image")
    x = image.detach().clone().reshape(1, 1, H, W).requires_grad_(True)
    model(x)[0, :, row, col].sum().backward()
    return x.grad[0, 0].abs()  # (H, W)


def receptive_field_extent(gradient: torch.Tensor) -> dict:
    """Where a gradient map is non-zero: pixels, fraction, bounding-box size."""
    support = gradient > 0
    rows, cols = support.any(dim=1).nonzero(), support.any(dim=0).nonzero()
    height = int(rows.max() - rows.min() + 1) if len(rows) else 0
    width = int(cols.max() - cols.min() + 1) if len(cols) else 0
    return {
        "pixels": int(support.sum()),
        "fraction": float(support.float().mean()),
        "height": height,
        "width": width,
    }


# --- The chapter's experiment: one callback, drawn by the widget and by the static swee


def _digit() -> torch.Tensor:
    from utils.data import load_mnist

    images, labels = load_mnist()
    return images[int((labels == 3).nonzero()[0])]  # a real handwritten 3, (28, 28)


def draw_receptive_fields(
    fig, kernel_size: int = 3, depth: int = 2, dilation: int = 1, seed: int = 0
):
    """Gradient maps of the centre output on a digit: conv stack and attention layer."""
    from utils.plot import image as show_image

    digit = _digit()
    H, W = digit.shape
    centre = (H // 2, W // 2)
    with seeded(seed):  # seeded models, leaving the caller's random state alone
        conv = ConvStack(ConvStackConfig(kernel_size, depth, dilation))
        attention = PixelSelfAttention(H, W)
    axes = fig.subplots(1, 2)
    for ax, model, name in (
        (axes[0], conv, f"{depth}× conv"),
        (axes[1], attention, "1× attention"),
    ):
        grad = input_gradient(model, digit, *centre)
        extent = receptive_field_extent(grad)
        # log10 of the relative gradient, so the faint edge of the field shows; zero is
        # transparent
        overlay = torch.where(
            grad > 0, torch.log10(grad / grad.max() + 1e-6), torch.nan
        )
        show_image(
            ax,
            digit,
            overlay=overlay,
            overlay_range=(-6.0, 0.0),
            title=f"{name}: {extent['width']}×{extent['height']} "
            f"({extent['fraction']:.0%})",
        )
        ax.title.set_fontsize(9)
        ax.plot(centre[1], centre[0], marker="+", color="cyan", markersize=12, mew=2)
    fig.colorbar(
        axes[1].images[-1],  # the gradient overlay, on the same scale in both panels
        ax=list(axes),
        shrink=0.8,
        label="log10 gradient / largest",
    )
    return axes
