"""The Vision Transformer (Dosovitskiy et al., 2021): an image cut into patches, each
patch a token, read by the course's pre-norm encoder layers.

Used in chapter 10. Nothing here is new except the first step: a patch embedding turns
(B, C, H, W) images into (B, N, d) tokens, a learned [class] token goes in front, and
learned position embeddings are added. The encoder is chapter 6's `EncoderLayer` with
``norm_first=True`` and GELU, and the head reads the class token. Attention weights come
from :func:`utils.attention.record_attention`, as for every model in the course.
"""

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import convert
from utils.checks import (
    check_divisible,
    check_int,
    check_number,
    check_probability,
    check_tensor,
)
from utils.convert import build_like, check_source, check_supported, copy_weights
from utils.transformer import EncoderLayer


@dataclass
class ViTConfig:
    image_size: int = 28  # height = width, in pixels
    patch_size: int = 7  # height = width of one patch (must divide image_size)
    in_channels: int = 1  # 1 for grey, 3 for RGB
    num_classes: int = 10
    num_layers: int = 4  # encoder layers
    num_heads: int = 4  # attention heads per layer
    d_model: int = 64  # width of every token
    dim_feedforward: int = 128  # hidden width of the feed-forward network
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12  # Hugging Face's ViT default

    def __post_init__(self):
        for name in (
            "image_size",
            "patch_size",
            "in_channels",
            "num_classes",
            "num_layers",
            "num_heads",
            "d_model",
            "dim_feedforward",
        ):
            check_int(name, getattr(self, name))
        check_divisible("image_size", self.image_size, "patch_size", self.patch_size)
        check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        check_probability("dropout", self.dropout)
        check_number("layer_norm_eps", self.layer_norm_eps, low=0, low_open=True)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C·P·P): the patches in raster order, each flattened
    channel by channel (the order of a Conv2d weight's input dimensions)."""
    check_tensor("images", images, ("B", "C", "H", "W"), floating=True)
    check_int("patch_size", patch_size)
    check_divisible("image height", images.shape[2], "patch_size", patch_size)
    check_divisible("image width", images.shape[3], "patch_size", patch_size)
    return F.unfold(images, patch_size, stride=patch_size).transpose(1, 2)


class PatchEmbedding(nn.Module):
    """A convolution with kernel = stride = patch size: one d-vector per patch.

    It is a linear layer applied to each flattened patch (see :func:`patchify`).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        p = config.patch_size
        self.projection = nn.Conv2d(config.in_channels, config.d_model, p, stride=p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(images).flatten(2).transpose(1, 2)  # (B, N, d)


class ViT(nn.Module):
    """Patches -> [class] token + positions -> pre-norm encoder -> LayerNorm -> head.

    forward(images (B, C, H, W)) -> class logits (B, num_classes).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.patch_embedding = PatchEmbedding(config)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position = nn.Parameter(torch.zeros(1, 1 + config.num_patches, d))
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                d,
                config.num_heads,
                config.dim_feedforward,
                config.dropout,
                norm_first=True,
                layer_norm_eps=config.layer_norm_eps,
                activation="gelu",
            )
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.head = nn.Linear(d, config.num_classes)
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.class_token, std=0.02)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, d): every token after the final LayerNorm; token
        0 is the class token."""
        c = self.config
        check_tensor(
            "images",
            images,
            ("B", c.in_channels, c.image_size, c.image_size),
            floating=True,
        )
        patches = self.patch_embedding(images)  # (B, N, d)
        class_token = self.class_token.expand(len(images), -1, -1)  # (B, 1, d)
        x = self.dropout(torch.cat([class_token, patches], 1) + self.position)
        for layer in self.layers:
            x = layer(x)  # (B, 1 + N, d)
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)[:, 0])  # (B, num_classes)

    def resized(self, image_size: int) -> "ViT":
        """A copy for images of `image_size` pixels with the same patches: a larger grid
        of them, and the position embeddings interpolated to it in 2-D (ViT, section
        3.2: how the paper fine-tunes at a higher resolution)."""
        config = replace(self.config, image_size=check_int("image_size", image_size))
        model = copy.deepcopy(self)
        model.config = config
        grid = config.image_size // config.patch_size
        with torch.no_grad():
            model.position = nn.Parameter(resize_positions(self.position, grid))
        return model

    @classmethod
    def from_hf(cls, model) -> "ViT":
        """The same model, with the weights of a ``transformers``
        ``ViTForImageClassification``: see :func:`vit_from_hf`."""
        return vit_from_hf(model)


def resize_positions(position: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + n·n, d) position embeddings -> (1, 1 + grid·grid, d): the class token's
    is kept, the patches' are read as an n×n image of d channels and resampled to
    grid×grid (bicubic), each by where its patch sits in the image."""
    check_tensor("position", position, (1, "1 + N", "d"), floating=True)
    check_int("grid", grid)
    class_position, patches = position[:, :1], position[:, 1:]  # (1, 1, d), (1, N, d)
    n, d = math.isqrt(patches.shape[1]), position.shape[-1]
    if n * n != patches.shape[1]:
        raise ValueError(
            f"position must hold 1 + n·n embeddings, got {position.shape[1]}"
        )
    image = patches.reshape(1, n, n, d).permute(0, 3, 1, 2)  # (1, d, n, n)
    image = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = image.permute(0, 2, 3, 1).reshape(1, grid * grid, d)  # (1, grid², d)
    return torch.cat([class_position, patches], dim=1)


def _pair(size) -> tuple[int, int]:
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


# where each of our tensors lives in transformers' ViTForImageClassification
HF_NAMES = {
    "layer": [
        ("attention.q_proj", "self_attn.w_q"),
        ("attention.k_proj", "self_attn.w_k"),
        ("attention.v_proj", "self_attn.w_v"),
        ("attention.o_proj", "self_attn.w_o"),
        ("layernorm_before", "self_attn_sublayer.norm"),
        ("mlp.fc1", "feed_forward.linear1"),
        ("mlp.fc2", "feed_forward.linear2"),
        ("layernorm_after", "feed_forward_sublayer.norm"),
    ],
    "model": [
        ("vit.embeddings.patch_embeddings.projection", "patch_embedding.projection"),
        ("vit.embeddings.cls_token", "class_token"),
        ("vit.embeddings.position_embeddings", "position"),
        ("vit.layernorm", "norm"),
        ("classifier", "head"),
    ],
}


def hf_name(ours: str) -> str:
    """transformers' name for one of our tensors, e.g. 'layers.0.self_attn.w_q.weight'
    -> 'vit.layers.0.attention.q_proj.weight'."""
    return convert.hf_name(ours, HF_NAMES, "vit.layers.{}.")


def vit_from_hf(model) -> ViT:
    """Our :class:`ViT` with the config and weights of a ``transformers``
    ``ViTForImageClassification``, on its dtype and device and in its mode."""
    check_source(model, "ViTForImageClassification")
    hf = model.config
    check_supported(
        {
            "hidden_act": (hf.hidden_act, "gelu"),
            "qkv_bias": (hf.qkv_bias, True),
            "image_size is square": (
                _pair(hf.image_size)[0] == _pair(hf.image_size)[1],
                True,
            ),
            "attention_probs_dropout_prob": (
                hf.attention_probs_dropout_prob,
                hf.hidden_dropout_prob,
            ),
        },
        "ours has GELU with erf, query/key/value biases, square images and one dropout",
    )
    config = ViTConfig(
        image_size=_pair(hf.image_size)[0],
        patch_size=hf.patch_size,
        in_channels=hf.num_channels,
        num_classes=hf.num_labels,
        num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads,
        d_model=hf.hidden_size,
        dim_feedforward=hf.intermediate_size,
        dropout=hf.hidden_dropout_prob,
        layer_norm_eps=hf.layer_norm_eps,
    )
    like = next(model.parameters())  # their dtype and device
    ours = build_like(lambda: ViT(config), like, model.training)
    return copy_weights(ours, model.state_dict(), hf_name)
