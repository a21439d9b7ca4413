"""Chapter 9's tasks: MNIST digits as pixel tokens, the baselines a pixel model must
beat, completions, and linear probes of the features a GPT learns without labels.

The model is chapter 7's :class:`utils.gpt.GPT`, unchanged; :mod:`utils.igpt` turns
images into its tokens.
"""

import time
from dataclasses import dataclass

import matplotlib.patches as patches
import torch
import torch.nn.functional as F

from utils.checks import check_int, check_tensor
from utils.data import endless_batches, load_mnist
from utils.env import split_generator
from utils.gpt import GPT, GPTConfig
from utils.igpt import complete, downsample, layer_features, with_start
from utils.plot import EDGE, KEY, MASKED, QUERY, TEXT, image
from utils.tokenizers import PixelTokenizer

# the pixel read (QUERY) and the one predicted (KEY)


@dataclass
class PixelDigits:
    """Downsampled MNIST digits, their pixel tokens and labels, split train / test."""

    tokenizer: PixelTokenizer
    images: torch.Tensor  # (N, H, W) in [0, 1]
    ids: torch.Tensor  # (N, H·W) grey-level ids, raster order
    labels: torch.Tensor  # (N,)
    n_train: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, ids, labels)`` of ``"train"`` or ``"test"``."""
        if name not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {name!r}")
        rows = (
            slice(None, self.n_train) if name == "train" else slice(self.n_train, None)
        )
        return self.images[rows], self.ids[rows], self.labels[rows]


def pixel_digits(n_levels: int = 4, n_test: int = 1000, seed=0) -> PixelDigits:
    """The course's 5,000 MNIST digits at 14×14 in a shuffled order (they are stored
    sorted by class), the last `n_test` held out, with a palette of `n_levels` grey
    levels learnt on the training part."""
    images, labels = load_mnist()
    n = len(labels)
    if not 1 <= check_int("n_test", n_test) < n:
        raise ValueError(f"n_test must be in [1, {n}), got {n_test}")
    order = torch.randperm(n, generator=split_generator(seed))
    images, labels = images[order], labels[order]
    images = downsample(images, 2)  # (N, 14, 14)
    tokenizer = PixelTokenizer(n_levels).fit(images[: n - n_test])
    return PixelDigits(tokenizer, images, tokenizer.encode(images), labels, n - n_test)


def quantisation_errors(images: torch.Tensor, levels: list[int]) -> dict:
    """``{n_levels: (tokenizer, error)}``: a palette of each size in `levels` fitted
    on `images`, and its mean absolute grey-level error per pixel on them."""
    errors = {}
    for n_levels in levels:
        tokenizer = PixelTokenizer(n_levels).fit(images)
        decoded = tokenizer.decode(tokenizer.encode(images), images.shape[1:])
        errors[n_levels] = tokenizer, (decoded - images).abs().mean().item()
    return errors


def draw_palettes(fig, images: torch.Tensor, palettes: dict) -> None:
    """Rows: `images` at full grey scale, then through each palette of
    :func:`quantisation_errors`."""
    axes = fig.subplots(len(palettes) + 1, len(images), squeeze=False)
    rows = [("original", images)]
    for n_levels, (tokenizer, error) in palettes.items():
        decoded = tokenizer.decode(tokenizer.encode(images), images.shape[1:])
        rows.append((f"{n_levels} levels\n(error {error:.3f})", decoded))
    for row_axes, (name, row_images) in zip(axes, rows):
        for ax, img in zip(row_axes, row_images):
            image(ax, img)
        row_axes[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)


def draw_raster_order(fig, digit_ids: torch.Tensor, tokenizer, shape, step: int):
    """The intuition diagram: a digit's pixels read row by row as a sequence; the
    model reads the pixels before `step` (blue) and predicts pixel `step` (orange)."""
    H, W = shape
    if not 0 <= check_int("step", step, minimum=0) < H * W:
        raise ValueError(f"step must be in [0, {H * W - 1}], got {step}")
    grey = tokenizer.decode(digit_ids[None], shape)[0]  # (H, W)
    ax_image, ax_seq = fig.subplots(
        2, 1, gridspec_kw={"height_ratios": [H, 2.2]}, squeeze=True
    )
    image(ax_image, grey, title="a 14×14 digit, read row by row")
    for t in range(step + 1):
        r, c = divmod(t, W)
        colour, alpha = (KEY, 0.9) if t == step else (QUERY, 0.35)
        ax_image.add_patch(
            patches.Rectangle((c - 0.5, r - 0.5), 1, 1, color=colour, alpha=alpha, lw=0)
        )
    for r in range(min(H, step // W + 1)):
        end = W - 1 if r < step // W else step % W
        ax_image.annotate(
            "", (end, r), (0, r), arrowprops=dict(arrowstyle="->", color=TEXT)
        )
    # the sequence: start token, the last pixels read, the one to predict, the rest
    start = max(0, step - 8)
    boxes = [("<s>", QUERY)] + ([("…", None)] if start else [])
    boxes += [(str(int(digit_ids[t])), QUERY) for t in range(start, step)]
    boxes += [("?", KEY)]
    boxes += [("·", MASKED)] if step + 1 < H * W else []  # not read yet
    boxes += [("…", None)]
    ax_seq.set_xlim(-0.6, len(boxes) - 0.4)
    ax_seq.set_ylim(-2.0, 0.6)
    ax_seq.axis("off")
    for k, (text, colour) in enumerate(boxes):
        if colour is not None:
            ax_seq.add_patch(
                patches.Rectangle(
                    (k - 0.45, -0.45), 0.9, 0.9, color=colour, alpha=0.35, lw=0
                )
            )
        ax_seq.text(k, 0, text, ha="center", va="center")
    ax_seq.text(
        (len(boxes) - 1) / 2,
        -0.7,
        f"1 + {H}·{W} = {1 + H * W} tokens:\nGPT predicts pixel {step} from the "
        f"start token and the {step} pixels before it",
        ha="center",
        va="top",
        fontsize=9,
    )


def pixel_batches(ids: torch.Tensor, batch_size: int, start_id: int, seed=0):
    """Endless (x, y) batches of whole images: x is the start token and the pixels
    but the last, y the pixels; both (B, H·W)."""
    check_tensor("ids", ids, ("N", "H·W"), dtype=torch.long)

    def sample(batch_size, generator):
        rows = torch.randint(len(ids), (batch_size,), generator=generator)
        pixels = ids[rows]  # (B, H·W)
        return with_start(pixels, start_id)[:, :-1], pixels

    return endless_batches(sample, batch_size, seed)


def next_pixel_loss(model, batch) -> torch.Tensor:
    """The GPT's mean cross-entropy on one (x, y) batch: for utils.train.train."""
    x, y = batch
    return model(x, y)[1]


@torch.no_grad()
def pixel_nats(model: GPT, ids: torch.Tensor, start_id: int, batch_size: int = 250):
    """(N, H·W) held-out images -> (H·W,) the model's mean nats at each pixel (the
    model is used as it is: call ``.eval()`` first if it has dropout)."""
    check_tensor("ids", ids, ("N", "H·W"), dtype=torch.long)
    total = torch.zeros(ids.shape[1])
    for chunk in ids.split(batch_size):
        logits, _ = model(with_start(chunk, start_id)[:, :-1])  # (B, H·W, V)
        nll = F.cross_entropy(logits.transpose(1, 2), chunk, reduction="none")
        total += nll.sum(0)
    return total / len(ids)


def marginal_nats(train_ids: torch.Tensor, test_ids: torch.Tensor, n_levels: int):
    """(H·W,) nats of the baseline that knows each position's grey-level frequencies
    (counted on `train_ids`, add-one smoothing) and nothing else."""
    counts = F.one_hot(train_ids, n_levels).sum(0).float() + 1  # (H·W, L)
    log_p = (counts / counts.sum(-1, keepdim=True)).log()
    return -log_p.gather(1, test_ids.T).T.mean(0)  # (H·W,)


def neighbour_nats(train_ids, test_ids, width: int, n_levels: int):
    """(H·W,) nats of the baseline that predicts each pixel from the one above and
    the one to the left (a table counted on `train_ids`, add-one smoothing; outside
    the image counts as an extra level)."""

    def contexts(ids):
        grid = ids.view(len(ids), -1, width)  # (N, H, W)
        edge = torch.full_like(grid, n_levels)
        above = torch.cat([edge[:, :1], grid[:, :-1]], 1)
        left = torch.cat([edge[:, :, :1], grid[:, :, :-1]], 2)
        return (above * (n_levels + 1) + left).flatten(1)  # (N, H·W)

    n_contexts = (n_levels + 1) ** 2
    train_keys = contexts(train_ids) * n_levels + train_ids
    counts = torch.bincount(train_keys.flatten(), minlength=n_contexts * n_levels)
    counts = counts.view(n_contexts, n_levels).float() + 1
    log_p = (counts / counts.sum(-1, keepdim=True)).log()  # (contexts, L)
    return -log_p[contexts(test_ids), test_ids].mean(0)  # (H·W,)


def forward_seconds(side: int, d_model: int = 64, repeat: int = 3) -> float:
    """Seconds for one forward pass of a 1-layer GPT over one side×side image."""
    n_tokens = side * side
    config = GPTConfig(vocab_size=5, block_size=n_tokens, num_layers=1, d_model=d_model)
    with torch.random.fork_rng():  # the weights don't matter; the global RNG stays
        model = GPT(config).eval()
    x = torch.zeros(1, n_tokens, dtype=torch.long)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeat + 1):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return best


def draw_completions(
    fig,
    model,
    digits: PixelDigits,
    index: int,
    rows_given: int,
    temperature: float,
    n_samples: int = 4,
) -> None:
    """One held-out digit: what the model was given, `n_samples` completions and the
    original. The samples are drawn with seed = `index`, so each digit has its own
    random draws and a redraw gives the same picture."""
    _, test_ids, test_labels = digits.part("test")
    if not 0 <= check_int("index", index, minimum=0) < len(test_ids):
        raise ValueError(f"index must be in [0, {len(test_ids) - 1}], got {index}")
    H, W = digits.shape
    ids = test_ids[index].repeat(check_int("n_samples", n_samples), 1)  # (S, H·W)
    done = complete(
        model,
        ids,
        rows_given,
        W,
        digits.tokenizer.start_id,
        temperature=temperature,
        seed=index,
    )
    given = digits.tokenizer.decode(ids[:1], (H, W))[0].clone()
    given[rows_given:] = float("nan")
    panels = [("given", given)]
    panels += [
        (f"sample {k + 1}", img)
        for k, img in enumerate(digits.tokenizer.decode(done, (H, W)))
    ]
    original = digits.tokenizer.decode(ids[:1], (H, W))[0]
    panels.append((f"original (a {test_labels[index]})", original))
    axes = fig.subplots(1, len(panels))
    for ax, (title, img) in zip(axes, panels):
        image(ax, img, title=title)
        ax.axhline(rows_given - 0.5, color=KEY, lw=1.5)
    hidden = patches.Rectangle(  # the rows the model must fill: masked-position style
        (-0.5, rows_given - 0.5),
        W,
        H - rows_given,
        facecolor=MASKED,
        edgecolor=EDGE,
        hatch="///",
        lw=0,
    )
    axes[0].add_patch(hidden)


def completion_accuracy(
    model,
    classifier,
    digits: PixelDigits,
    rows_given: int,
    n: int = 200,
    temperature: float = 1.0,
    seed=0,
) -> dict:
    """How often `classifier` (fitted on real digits' pixels) names the original
    digit: for the originals, for the given rows alone (the rest blank) and for one
    sampled completion of each of the first `n` held-out digits."""
    _, ids, labels = digits.part("test")
    ids, labels = ids[:n], labels[:n]
    H, W = digits.shape
    done = complete(
        model,
        ids,
        rows_given,
        W,
        digits.tokenizer.start_id,
        temperature=temperature,
        seed=seed,
    )
    blank = ids.clone()
    blank[:, rows_given * W :] = 0  # level 0: the background
    scores = {}
    for name, version in (
        ("original", ids),
        ("given rows only", blank),
        ("completed", done),
    ):
        pixels = digits.tokenizer.decode(version, (H, W)).flatten(1).numpy()
        scores[name] = float((classifier.predict(pixels) == labels.numpy()).mean())
    return scores


def probe_features(
    model: GPT, ids: torch.Tensor, start_id: int, shape, batch_size: int = 250
) -> list[torch.Tensor]:
    """Features of every layer of `model` for (N, H·W) images, averaged over each row
    of the image: a list of (N, H·C), layer 1 first. (The start token is dropped.)"""
    H, W = shape
    per_chunk = [
        [
            f[:, 1:].reshape(len(chunk), H, W, -1).mean(2).flatten(1)  # (B, H·C)
            for f in layer_features(model, with_start(chunk, start_id))
        ]
        for chunk in ids.split(batch_size)
    ]
    return [torch.cat(layer) for layer in zip(*per_chunk)]


def mean_over_rows(features: torch.Tensor, height: int) -> torch.Tensor:
    """(N, H·C) row-averaged features -> (N, C), the average over all pixels (each row
    has the same number of pixels, so the mean of the row means is the mean)."""
    return features.view(len(features), height, -1).mean(1)
