"""iGPT: images as sequences of pixel tokens, for the unchanged :class:`utils.gpt.GPT`.

Used in chapter 9. iGPT (Chen et al., 2020) clustered colours into a palette, read the
pixels in raster order and trained a GPT-2 on the sequences. In miniature: grey MNIST
digits, a palette of a few grey levels learnt by k-means
(:class:`utils.tokenizers.PixelTokenizer`), and one extra token that starts every
sequence. Nothing here changes the model; only the tokens are new.
"""

import torch
import torch.nn.functional as F

from utils.checks import check_int, check_tensor


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
