"""Chapter 6's residual-stream experiment: how far back the gradient reaches in a deep
stack of encoder layers, with and without residual connections.

The same measurement as chapters 1 and 2 (the gradient norm against distance), now
against depth: the norm of the loss's gradient with respect to each layer's input.
"""

import torch
import torch.nn as nn

from utils.checks import check_choice, check_int
from utils.env import make_generator, seeded
from utils.transformer import EncoderLayer, SublayerConnection

VARIANTS = ("post-norm", "pre-norm", "no residual")


class NoResidual(nn.Module):
    """A SublayerConnection without its ``x +``: ``norm(sublayer(x))``."""

    def __init__(self, connection: SublayerConnection):
        super().__init__()
        self.norm = connection.norm

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        return self.norm(sublayer(x))  # (B, T, d_model)


def encoder_stack(
    variant: str, num_layers: int = 12, d_model: int = 64, seed: int = 0
) -> nn.ModuleList:
    """`num_layers` freshly initialised encoder layers (4 heads, no dropout)."""
    check_choice("variant", variant, VARIANTS)
    check_int("num_layers", num_layers)
    with seeded(seed):  # seeded, leaving the caller's random state alone
        layers = nn.ModuleList(
            EncoderLayer(d_model, 4, 4 * d_model, 0.0, norm_first=variant == "pre-norm")
            for _ in range(num_layers)
        )
    if variant == "no residual":
        for layer in layers:
            layer.self_attn_sublayer = NoResidual(layer.self_attn_sublayer)
            layer.feed_forward_sublayer = NoResidual(layer.feed_forward_sublayer)
    return layers


def layer_gradient_norms(
    variant: str, num_layers: int = 12, d_model: int = 64, seed: int = 0
) -> list[float]:
    """‖∂loss/∂x_l‖ for the input x_l of every layer l (x_0 = the embeddings).

    The loss is a fixed random projection of the last layer's output, on a random
    batch of 8 sequences of 16 tokens.
    """
    layers = encoder_stack(variant, num_layers, d_model, seed)
    generator = make_generator(seed)
    x = torch.randn(8, 16, d_model, generator=generator)  # (B, T, d)
    direction = torch.randn(8, 16, d_model, generator=generator)
    x.requires_grad_(True)
    inputs = []
    for layer in layers:
        x.retain_grad()  # keep the gradient of this intermediate input
        inputs.append(x)
        x = layer(x)  # (B, T, d)
    (x * direction).sum().backward()
    return [h.grad.norm().item() for h in inputs]


def token_similarity(
    variant: str, num_layers: int = 12, d_model: int = 64, seed: int = 0
) -> list[float]:
    """After each layer, the mean cosine similarity between the token vectors of a
    sequence (each vector centred over its features). 1 means every token is the same.
    """
    layers = encoder_stack(variant, num_layers, d_model, seed)
    generator = make_generator(seed)
    x = torch.randn(8, 16, d_model, generator=generator)  # (B, T, d)
    T, similarities = x.shape[1], []
    with torch.no_grad():
        for layer in layers:
            x = layer(x)  # (B, T, d)
            u = nn.functional.normalize(x - x.mean(-1, keepdim=True), dim=-1)
            cosines = u @ u.transpose(1, 2)  # (B, T, T), 1 on the diagonal
            off_diagonal = (cosines.sum((1, 2)) - T) / (T * (T - 1))  # (B,)
            similarities.append(off_diagonal.mean().item())
    return similarities


def draw_residual_stream(fig, num_layers: int = 24) -> None:
    """Gradient norm at each layer's input, and token similarity after each layer."""
    axes = fig.subplots(1, 2)
    for variant, marker in zip(VARIANTS, "os^"):
        style = dict(marker=marker, markersize=3, label=variant)
        axes[0].semilogy(layer_gradient_norms(variant, num_layers), **style)
        depth = range(1, num_layers + 1)
        axes[1].plot(depth, token_similarity(variant, num_layers), **style)
    axes[0].set(
        xlabel="layer (0 = the embeddings)",
        ylabel="‖∂loss/∂x‖",
        title="Gradient at each layer's input",
    )
    axes[1].set(
        xlabel="layers applied",
        ylabel="mean cosine similarity",
        ylim=(-0.05, 1.05),
        title="How alike the tokens become",
    )
    axes[1].legend(frameon=False, fontsize=8)
