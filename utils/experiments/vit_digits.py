"""Chapter 10's experiments: digits cut into patches, a ViT against a CNN as the
training set grows, and what the ViT's attention looks at."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.attention import record_attention
from utils.checks import check_choice, check_int, check_tensor
from utils.data import endless_batches, load_mnist
from utils.env import seeded, split_generator
from utils.plot import CMAP, ENCODER, KEY, QUERY, image
from utils.train import (
    TrainConfig,
    classification_loss,
    held_out_accuracy,
    train,
)

SIDE = 28  # MNIST digits are 28×28


@dataclass
class Digits:
    """MNIST digits as (N, 1, 28, 28) images, shuffled, the last `n_test` held out."""

    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    labels: torch.Tensor  # (N,)
    n_test: int

    def train_part(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `n` training digits: every smaller training set is inside a
        larger one."""
        n_train = len(self.labels) - self.n_test
        if not 1 <= check_int("n", n) <= n_train:
            raise ValueError(f"n must be in [1, {n_train}], got n={n}")
        return self.images[:n], self.labels[:n]

    def test_part(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[-self.n_test :], self.labels[-self.n_test :]


def load_digits_split(n_test: int = 1000, seed=0) -> Digits:
    """The course's 5,000 MNIST digits in a shuffled order (they are stored sorted by
    class), the last `n_test` held out."""
    images, labels = load_mnist()
    if not 1 <= check_int("n_test", n_test) < len(labels):
        raise ValueError(f"n_test must be in [1, {len(labels)}), got n_test={n_test}")
    order = torch.randperm(len(labels), generator=split_generator(seed))
    return Digits(images[order, None], labels[order], n_test)


# --- patches as tokens -----------------------------------------------------------


def draw_patches(fig, index: int = 0, patch_size: int = 7, *, images: torch.Tensor):
    """The widget's callback: digit `index` cut into patches, and the token sequence."""
    check_tensor("images", images, ("N", 1, SIDE, SIDE), floating=True)
    if not 0 <= check_int("index", index, minimum=0) < len(images):
        raise ValueError(f"index must be in [0, {len(images)}), got index={index}")
    check_int("patch_size", patch_size)
    if SIDE % patch_size:
        raise ValueError(f"patch_size must divide {SIDE}, got patch_size={patch_size}")
    digit, per_row = images[index, 0], SIDE // patch_size
    n_patches = per_row**2
    tokens = n_patches + 1  # and the class token
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.6])
    ax = left.subplots()
    image(ax, digit, title=f"patches of {patch_size}×{patch_size}")
    for edge in range(1, per_row):  # the cuts between patches
        ax.axhline(edge * patch_size - 0.5, color="tab:orange", lw=1)
        ax.axvline(edge * patch_size - 0.5, color="tab:orange", lw=1)
    shown = min(n_patches, 16)
    strip = right.subplots(1, shown + 1)
    strip[0].text(0.5, 0.5, "[class]", ha="center", va="center", fontsize=8)
    strip[0].set_axis_off()
    patches = digit.unfold(0, patch_size, patch_size).unfold(1, patch_size, patch_size)
    for i, ax in enumerate(strip[1:]):  # (per_row, per_row, P, P): raster order
        image(ax, patches[i // per_row, i % per_row])
        ax.set_title(str(i + 1), fontsize=7)
        for spine in ax.spines.values():  # a frame, so that a blank patch shows
            spine.set_visible(True)
            spine.set_color("tab:orange")
    right.suptitle(
        f"{tokens} tokens = {n_patches} patch{'es' * (n_patches > 1)} + [class]"
        f"{' (first 16 shown)' * (shown < n_patches)}: "
        f"{tokens**2:,} attention weights per head",
        fontsize=9,
    )
    return tokens


# --- inductive bias, measured ----------------------------------------------------


def permute_patches(images: torch.Tensor, patch_size: int, order) -> torch.Tensor:
    """(B, C, H, W) images with their patches moved: patch ``order[i]`` (raster order)
    goes to place i."""
    check_tensor("images", images, ("B", "C", "H", "W"), floating=True)
    B, C, H, W = images.shape
    rows, cols = H // patch_size, W // patch_size
    grid = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)
    tiles = grid.reshape(B, C, rows * cols, patch_size, patch_size)[:, :, order]
    tiles = tiles.reshape(B, C, rows, cols, patch_size, patch_size)
    return tiles.permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)


def random_shift(images: torch.Tensor, max_shift: int, generator) -> torch.Tensor:
    """Each image moved by up to `max_shift` pixels in each direction (zero filled)."""
    check_tensor("images", images, ("B", "C", "H", "W"), floating=True)
    check_int("max_shift", max_shift, minimum=0)
    if max_shift == 0:
        return images
    B, _, H, W = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2m, W + 2m)
    offsets = torch.randint(2 * max_shift + 1, (B, 2), generator=generator).tolist()
    return torch.stack(
        [padded[b, :, r : r + H, c : c + W] for b, (r, c) in enumerate(offsets)]
    )


def image_batches(images, labels, batch_size: int, seed=0, max_shift: int = 0):
    """Endless random (images, labels) batches, shifted by up to `max_shift` pixels."""
    check_int("max_shift", max_shift, minimum=0)

    def sample(batch_size, generator):
        rows = torch.randint(len(labels), (batch_size,), generator=generator)
        return random_shift(images[rows], max_shift, generator), labels[rows]

    return endless_batches(sample, batch_size, seed)


def fit(model, images, labels, steps: int, seed=0, max_shift: int = 0, lr=2e-3):
    """The budget rule, the same for every model: `steps` AdamW steps on batches of 64
    drawn with `seed`, however many images there are."""
    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.05, log_every=steps)
    batches = image_batches(images, labels, 64, seed, max_shift)
    return train(model, batches, classification_loss, config, progress=False)


def data_size_sweep(models: dict, digits: Digits, sizes, seeds, steps: int):
    """Held-out accuracy of each model at each training-set size and seed.

    `models` maps a name to ``(make_model, max_shift)``; `make_model()` builds a fresh
    model, seeded per run. Returns ``(accuracy, trained)``: accuracy is
    {name: (len(sizes), len(seeds)) tensor}, and trained maps each name to its models
    trained on the largest size, one per seed, in eval mode, for a closer look.
    """
    test_images, test_labels = digits.test_part()
    accuracy, trained = {}, {}
    for name, (make_model, max_shift) in models.items():
        grid = torch.zeros(len(sizes), len(seeds))
        for i, n in enumerate(sizes):
            images, labels = digits.train_part(n)
            for j, seed in enumerate(seeds):
                with seeded(seed):
                    model = make_model()
                fit(model, images, labels, steps, seed, max_shift)
                grid[i, j] = held_out_accuracy(model, test_images, test_labels)
                if i == len(sizes) - 1:
                    trained.setdefault(name, []).append(model)
        accuracy[name] = grid
    return accuracy, trained


def draw_data_sweep(ax, sizes, results: dict, colours: dict) -> None:
    """Mean held-out accuracy ± one standard deviation over seeds, per model."""
    for name, grid in results.items():
        mean, sd = grid.mean(1), grid.std(1) if grid.shape[1] > 1 else 0 * grid[:, 0]
        ax.errorbar(
            sizes,
            mean,
            yerr=sd,
            marker="o",
            ms=4,
            capsize=3,
            color=colours[name],
            label=name,
        )
    ax.set(xscale="log", xlabel="training images", ylabel="held-out accuracy")
    ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    ax.minorticks_off()
    ax.legend(frameon=False, loc="lower right")


# --- a new resolution --------------------------------------------------------------


def upsample(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, C, H, W) images resized to `image_size` pixels a side (bilinear)."""
    check_tensor("images", images, ("B", "C", "H", "W"), floating=True)
    size = (check_int("image_size", image_size),) * 2
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def at_resolution(model, image_size: int, positions: str = "interpolated"):
    """A copy of a trained ViT for `image_size`-pixel images, its position embeddings
    interpolated to the larger grid (``ViT.resized``), or drawn afresh ("fresh"), as
    if the model had never learnt where its patches are."""
    check_choice("positions", positions, ("interpolated", "fresh"))
    larger = model.resized(image_size)
    if positions == "fresh":
        with torch.no_grad():
            torch.nn.init.trunc_normal_(larger.position, std=0.02)  # ViT's own init
    return larger


# --- what attention sees --------------------------------------------------------


def patch_centres(image_size: int, patch_size: int) -> torch.Tensor:
    """(N, 2) pixel coordinates (row, col) of each patch's centre, in raster order."""
    per_row = image_size // patch_size
    index = (
        torch.arange(per_row, dtype=torch.float32) * patch_size + (patch_size - 1) / 2
    )
    rows, cols = torch.meshgrid(index, index, indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1)


def attention_distance(weights: torch.Tensor, image_size: int, patch_size: int):
    """The mean distance, in pixels, between a patch and the patches it attends to.

    `weights` (B, H, 1 + N, 1 + N) of a ViT (token 0: the class token). For each
    patch query, the distance to each patch key is weighted by the attention, with
    the weights on patch keys renormalised to sum to 1; the result is averaged over
    queries and images: (H,). Dosovitskiy et al. (2021), Figure 7 (right).
    """
    centres = patch_centres(image_size, patch_size).to(weights.device)  # (N, 2)
    N = len(centres)
    check_tensor("weights", weights, ("B", "H", N + 1, N + 1), floating=True)
    between = weights[:, :, 1:, 1:]  # (B, H, N, N): patch to patch
    between = between / between.sum(-1, keepdim=True).clamp(min=1e-12)
    distance = torch.cdist(centres, centres)  # (N, N) pixels
    return (between * distance).sum(-1).mean(dim=(0, 2))  # (H,)


def mean_attention_distances(model, images: torch.Tensor) -> torch.Tensor:
    """(layers, heads): :func:`attention_distance` of every layer of a ViT."""
    with torch.no_grad(), record_attention(model) as maps:
        model(images)
    c = model.config
    return torch.stack(
        [attention_distance(w, c.image_size, c.patch_size) for w in maps.values()]
    )


def gradient_distance(feature_map, image: torch.Tensor) -> tuple[float, int]:
    """How far from one CNN pixel lie the image pixels that move it, by chapter 0's
    method: the |gradient| of the centre pixel of ``feature_map(images)`` (summed over
    channels) with respect to the image (H, W). Returns the |gradient|-weighted mean
    distance in pixels, the like of the attention distance, and the side of the window
    where the gradient is not zero."""
    from utils.experiments.receptive_field import input_gradient, receptive_field_extent

    check_tensor("image", image, ("H", "W"), floating=True)
    H, W = image.shape
    h, w = feature_map(image.reshape(1, 1, H, W)).shape[-2:]
    row, col, stride = h // 2, w // 2, H // h
    gradient = input_gradient(feature_map, image, row, col)  # (H, W)
    centre = torch.tensor([row, col]) * stride + (stride - 1) / 2  # in the image
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    distance = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2).sqrt()
    weighted = (gradient * distance).sum() / gradient.sum().clamp(min=1e-12)
    return float(weighted), receptive_field_extent(gradient)["height"]


def position_similarity(model) -> torch.Tensor:
    """(N, N) cosine similarity between the learned position embeddings of the
    patches (the class token's is left out). Dosovitskiy et al. (2021), Figure 7."""
    position = model.position[0, 1:].detach()  # (N, d)
    unit = F.normalize(position, dim=-1)
    return unit @ unit.T


def draw_position_similarity(fig, similarity: torch.Tensor) -> None:
    """One small map per patch: its position embedding's similarity to every other."""
    N = len(similarity)
    per_row = math.isqrt(N)
    axes = fig.subplots(per_row, per_row)
    for i, ax in enumerate(axes.flat):
        shown = ax.imshow(
            similarity[i].reshape(per_row, per_row), cmap=CMAP, vmin=-1, vmax=1
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.supxlabel("patch column")
    fig.supylabel("patch row")
    fig.colorbar(shown, ax=axes, shrink=0.8, label="cosine similarity")


def attention_rollout(maps: list) -> torch.Tensor:
    """Abnar & Zuidema (2020): how much each token draws on each input token through
    all layers. Each layer's head-averaged weights, plus the identity for the
    residual path, renormalised, multiplied from the first layer up: (B, T, T)."""
    rollout = None
    for weights in maps:  # (B, H, T, T), first layer first
        A = weights.mean(1)  # (B, T, T)
        A = 0.5 * A + 0.5 * torch.eye(A.shape[-1], device=A.device)
        A = A / A.sum(-1, keepdim=True)
        rollout = A if rollout is None else A @ rollout
    return rollout


def class_attention(model, image: torch.Tensor, layer="rollout", head="mean"):
    """(h, w) map of how much the class token attends to each patch, as a share of its
    attention to all patches: in one `layer` and `head` (both counted from 0; or
    "mean" over the heads), or through all layers ("rollout")."""
    check_tensor("image", image, (1, model.config.image_size, model.config.image_size))
    with torch.no_grad(), record_attention(model) as maps:
        model(image[None])
    maps = list(maps.values())
    L, H = len(maps), model.config.num_heads
    if layer == "rollout":
        weights = attention_rollout(maps)[0]  # (T, T)
    else:
        check_choice("layer", layer, range(L))
        check_choice("head", head, ("mean", *range(H)))
        per_head = maps[layer][0]  # (H, T, T)
        weights = per_head.mean(0) if head == "mean" else per_head[head]
    per_row = model.config.image_size // model.config.patch_size
    to_patches = weights[0, 1:]  # from the class token to the patches, not to itself
    return (to_patches / to_patches.sum()).reshape(per_row, per_row)  # sums to 1


def draw_class_attention(fig, index=0, layer="rollout", head="mean", *, model, images):
    """The widget's callback: a held-out digit and where the class token looks."""
    if not 0 <= check_int("index", index, minimum=0) < len(images):
        raise ValueError(f"index must be in [0, {len(images)}), got index={index}")
    digit = images[index]  # (1, H, W)
    attention = class_attention(model, digit, layer, head)
    scale = model.config.patch_size
    overlay = attention.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    left, right = fig.subplots(1, 2)
    image(left, digit[0], title=f"held-out digit {index}")
    where = (
        "rollout (all layers)" if layer == "rollout" else f"layer {layer}, head {head}"
    )
    image(
        right, digit[0], title=where, overlay=overlay / overlay.max(), overlay_cmap=CMAP
    )
    return attention


# --- the intuition diagram ----------------------------------------------------------


def draw_vit_pipeline(fig, digit: torch.Tensor, patch_size: int = 7) -> None:
    """The ViT from bottom to top: a digit cut into patches, one token per patch, the
    class token and positions, the encoder, and the head on the class token."""
    from matplotlib.patches import FancyBboxPatch

    check_tensor("digit", digit, (SIDE, SIDE), floating=True)
    per_row = SIDE // patch_size
    n = per_row**2
    ax = fig.subplots()
    ax.set(xlim=(0, 21), ylim=(0, 13.2))
    ax.set_axis_off()

    def box(x, y, w, h, text, fill="white", alpha=1.0, size=9):
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0.08",
                facecolor=fill,
                alpha=alpha,
                edgecolor="#333",
            )
        )
        ax.text(
            x + w / 2,
            y + h / 2,
            text,
            ha="center",
            va="center",
            fontsize=size,
            color="#333",
        )

    def arrow(x, y0, y1, label=None):
        ax.annotate(
            "", (x, y1), (x, y0), arrowprops=dict(arrowstyle="->", color="#333")
        )
        if label:
            ax.text(
                x + 0.25, (y0 + y1) / 2, label, va="center", fontsize=8, color="#333"
            )

    ax.imshow(
        digit, cmap="gray_r", extent=(0.2, 2.6, 0.2, 2.6), aspect="auto"
    )  # the digit
    ax.text(1.4, 2.8, "28×28 digit", ha="center", fontsize=8)
    patches = digit.unfold(0, patch_size, patch_size).unfold(1, patch_size, patch_size)
    left, width = 4.2, 15.6 / n
    for i in range(n):  # the patches, left to right in raster order
        x = left + i * width
        ax.imshow(
            patches[i // per_row, i % per_row],
            cmap="gray_r",
            extent=(x + 0.04, x + width - 0.04, 0.7, 0.7 + width - 0.08),
            aspect="auto",
        )
        ax.add_patch(
            FancyBboxPatch(
                (x + 0.04, 0.7),
                width - 0.08,
                width - 0.08,
                boxstyle="square,pad=0",
                fill=False,
                edgecolor=KEY,
                lw=1,
            )
        )
    ax.annotate(
        "",
        (left - 0.2, 1.2),
        (2.8, 1.2),
        arrowprops=dict(arrowstyle="->", color="#333"),
    )
    ax.text(
        left,
        0.25,
        f"{n} patches of {patch_size}×{patch_size}, in raster order"
        f"   (B, {n}, {patch_size * patch_size})",
        fontsize=8,
    )
    arrow(12, 0.8 + width, 3.3)
    box(
        left,
        3.3,
        15.6,
        1.0,
        "PatchEmbedding: one linear map per patch "
        f"(a Conv2d with kernel = stride = {patch_size})",
    )
    arrow(12, 4.4, 5.3, "(B, 16, d)")
    for i in range(n + 1):  # the tokens: [class] first, then one per patch
        x = left - 1.0 + i * width
        colour = QUERY if i == 0 else ENCODER
        ax.add_patch(
            FancyBboxPatch(
                (x + 0.06, 5.4),
                width - 0.12,
                0.8,
                boxstyle="square,pad=0",
                facecolor=colour,
                alpha=0.9 if i == 0 else 0.5,
                edgecolor="#333",
            )
        )
        ax.text(x + width / 2, 6.45, str(i), ha="center", fontsize=7, color="#333")
    ax.text(
        left - 1.2,
        5.8,
        "[class]",
        ha="right",
        va="center",
        fontsize=8,
        color=QUERY,
    )
    ax.text(left + 15.8, 5.8, "+ position", va="center", fontsize=8, color="#333")
    arrow(12, 6.8, 7.5, f"(B, {n + 1}, d)")
    box(
        left - 1.0,
        7.5,
        16.6,
        2.4,
        "EncoderLayer × L   (chapter 6, pre-norm, GELU)\n"
        "LayerNorm → MultiHeadAttention → + residual\n"
        "LayerNorm → FeedForward → + residual",
        fill=ENCODER,
        alpha=0.25,
    )
    arrow(4.2, 10.0, 10.9, "token 0 only")
    box(2.0, 10.9, 6.0, 0.9, "LayerNorm → Linear head")
    arrow(5.0, 11.9, 12.6)
    ax.text(5.0, 12.7, "logits (B, 10)", ha="center", fontsize=8)
