"""iGPT: images as sequences of pixel tokens, for the unchanged :class:`utils.gpt.GPT`.

Used in chapter 9. iGPT (Chen et al., 2020) clustered colours into a palette, read the
pixels in raster order and trained a GPT-2 on the sequences. In miniature: grey MNIST
digits, a palette of a few grey levels learnt by k-means, and one extra token that
starts every sequence. Nothing here changes the model; only the tokens are new.
"""

import torch
import torch.nn.functional as F

from utils.checks import check_finite, check_int, check_tensor


class PixelTokenizer:
    """Grey levels <-> ids: ``fit`` learns `n_levels` centroids, ``encode`` maps each
    pixel to its nearest one, raster order (row by row, left to right)."""

    def __init__(self, n_levels: int = 4):
        self.n_levels = check_int("n_levels", n_levels)
        self.centroids = None  # (n_levels,), ascending, after fit

    def fit(self, images: torch.Tensor, iterations: int = 25) -> "PixelTokenizer":
        """k-means (Lloyd's algorithm) over all pixel intensities of `images`
        (B, H, W); the centroids start at evenly spaced quantiles. Returns self."""
        self._check_images(images)
        pixels = images.flatten().float()
        quantiles = (torch.arange(self.n_levels) + 0.5) / self.n_levels
        centroids = torch.quantile(pixels[:: max(1, len(pixels) // 100_000)], quantiles)
        for _ in range(check_int("iterations", iterations)):
            nearest = (pixels[:, None] - centroids).abs().argmin(1)  # (N,)
            sums = torch.zeros(self.n_levels).index_add_(0, nearest, pixels)
            counts = torch.bincount(nearest, minlength=self.n_levels)
            # a level that no pixel is nearest to keeps its place
            centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        self.centroids = centroids.sort().values
        return self

    @property
    def vocab_size(self) -> int:
        """The grey levels and the start token."""
        return self.n_levels + 1

    @property
    def start_id(self) -> int:
        """The token that begins every sequence (it is not a grey level)."""
        return self.n_levels

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W) intensities -> (B, H·W) ids of the nearest grey level, row by
        row."""
        self._check_fitted()
        self._check_images(images)
        distance = (images.flatten(1)[..., None] - self.centroids).abs()  # (B, HW, L)
        return distance.argmin(-1)  # (B, H·W)

    def decode(self, ids: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """(B, H·W) ids -> (B, H, W) grey levels."""
        self._check_fitted()
        H, W = (check_int(name, n) for name, n in zip(("H", "W"), shape))
        check_tensor("ids", ids, ("B", H * W), dtype=torch.long)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_levels):
            raise ValueError(
                f"ids must be grey levels in [0, n_levels={self.n_levels}), got ids "
                f"from {ids.min().item()} to {ids.max().item()}"
            )
        return self.centroids[ids].view(-1, H, W)  # (B, H, W)

    def _check_fitted(self) -> None:
        if self.centroids is None:
            raise ValueError("the tokenizer has no palette yet: call fit(images) first")

    @staticmethod
    def _check_images(images) -> None:
        check_tensor("images", images, ("B", "H", "W"), floating=True)
        check_finite("images", images)


def downsample(images: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, H, W) -> (B, H/factor, W/factor) by averaging factor×factor blocks."""
    check_tensor("images", images, ("B", "H", "W"), floating=True)
    check_int("factor", factor)
    if images.shape[1] % factor or images.shape[2] % factor:
        raise ValueError(
            f"image size {tuple(images.shape[1:])} is not divisible by factor={factor}"
        )
    return F.avg_pool2d(images[:, None], factor)[:, 0]


def with_start(ids: torch.Tensor, start_id: int) -> torch.Tensor:
    """(B, N) pixel ids -> (B, N + 1) with the start token in front."""
    check_tensor("ids", ids, ("B", "N"), dtype=torch.long)
    check_int("start_id", start_id, 0)
    start = torch.full((ids.shape[0], 1), start_id, dtype=torch.long)
    return torch.cat([start, ids], dim=1)


@torch.no_grad()
def complete(
    gpt,
    ids: torch.Tensor,
    rows_given: int,
    width: int,
    start_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    use_cache: bool = True,
    seed=0,
) -> torch.Tensor:
    """Keep the first `rows_given` rows of each image (B, H·W ids) and let `gpt`
    sample the rest, pixel by pixel: returns (B, H·W) ids.

    It is ``GPT.generate`` after the start token and the given rows, with the start
    token suppressed: it is not a pixel.
    """
    check_tensor("ids", ids, ("B", "H·W"), dtype=torch.long)
    check_int("width", width)
    if ids.shape[1] % width:
        raise ValueError(f"{ids.shape[1]} pixels are not rows of width={width}")
    height = ids.shape[1] // width
    if not 0 <= check_int("rows_given", rows_given, minimum=0) < height:
        raise ValueError(f"rows_given must be in [0, {height - 1}], got {rows_given}")
    if gpt.config.block_size < 1 + ids.shape[1]:
        raise ValueError(
            f"gpt.config.block_size={gpt.config.block_size} is shorter than the start "
            f"token and {ids.shape[1]} pixels"
        )
    given = with_start(ids[:, : rows_given * width], start_id)  # (B, 1 + given)
    new_pixels = (height - rows_given) * width
    done = gpt.generate(
        given,
        new_pixels,
        temperature,
        top_k,
        use_cache=use_cache,
        seed=seed,
        suppress=(start_id,),
    )
    return done[:, 1:]  # (B, H·W) without the start token


@torch.no_grad()
def layer_features(gpt, sequences: torch.Tensor) -> list[torch.Tensor]:
    """The output of every block of `gpt` for (B, T) sequences: a list of (B, T, C),
    one per layer (recorded with forward hooks; the model is unchanged)."""
    outputs, handles = [], []
    for block in gpt.transformer.h:
        handles.append(
            block.register_forward_hook(lambda m, args, out: outputs.append(out))
        )
    try:
        gpt.features(sequences)
    finally:
        for handle in handles:
            handle.remove()
    return outputs
