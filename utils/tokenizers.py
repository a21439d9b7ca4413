"""Tokenisers: characters, a byte-level BPE trained locally (offline) on the corpus, and
grey levels of pixels.

Used in chapters 1, 7 (text) and 9 (pixels). The text tokenisers have the same small
interface: ``vocab_size``, ``encode(text)`` -> a 1-D ``torch.long`` tensor of ids, and
``decode(ids)`` -> text. The BPE wraps the ``tokenizers`` package, whose trainer runs
in memory and needs no network.
"""

import numbers

import torch

from utils.checks import check_finite, check_int, check_tensor


def _id_list(ids, vocab_size: int) -> list[int]:
    """Token ids (a 1-D tensor or a sequence of ints) as a list, checked."""
    if isinstance(ids, torch.Tensor):
        if ids.ndim != 1 or ids.is_floating_point():
            raise ValueError(
                f"ids must be a 1-D tensor of ints, got shape "
                f"{tuple(ids.shape)} and dtype {ids.dtype}"
            )
        ids = ids.tolist()
    ids = [i.item() if isinstance(i, torch.Tensor) and i.ndim == 0 else i for i in ids]
    if not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in ids
    ):
        raise ValueError(f"ids must be ints, got {ids[:5]}")
    ids = [int(i) for i in ids]
    if ids and not 0 <= min(ids) <= max(ids) < vocab_size:
        raise ValueError(
            f"token ids must be in [0, vocab_size={vocab_size}), got ids from "
            f"{min(ids)} to {max(ids)}"
        )
    return ids


class CharTokenizer:
    """Characters <-> ids; the vocabulary is every character of the training text."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError(
                f"text must be a non-empty str (the training text), "
                f"got {type(text).__name__}"
            )
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}")
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in _id_list(ids, self.vocab_size))


class BPETokenizer:
    """Byte-level BPE (GPT-2's): start from the 256 bytes, merge the commonest pairs.

    Every string can be encoded (any byte is a token); decoding gives it back exactly.
    """

    def __init__(self, texts, vocab_size: int = 1000, min_frequency: int = 2):
        from tokenizers import ByteLevelBPETokenizer

        check_int("vocab_size", vocab_size, minimum=257)  # 256 bytes and one merge
        if isinstance(texts, str):
            texts = texts.splitlines(keepends=True)
        self._tokenizer = ByteLevelBPETokenizer()
        self._tokenizer.train_from_iterator(
            texts,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
        )

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor(self._tokenizer.encode(text).ids, dtype=torch.long)

    def encode_batch(self, texts: list[str]) -> list[torch.Tensor]:
        """Encode many texts at once (in parallel, in Rust): one id tensor per text."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of str")
        return [
            torch.tensor(e.ids, dtype=torch.long)
            for e in self._tokenizer.encode_batch(list(texts))
        ]

    def decode(self, ids) -> str:
        ids = _id_list(ids, self.vocab_size)
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The pieces `text` is cut into (a space shows as 'Ġ', a newline as 'Ċ')."""
        return self._tokenizer.encode(text).tokens


class PixelTokenizer:
    """Grey levels <-> ids (iGPT's palette, chapter 9): ``fit`` learns `n_levels`
    centroids, ``encode`` maps each pixel to its nearest one, in raster order (row by
    row, left to right)."""

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
