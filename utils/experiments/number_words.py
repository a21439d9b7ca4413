"""A translation task generated in code: English number words -> digits.

Used in chapters 3 and 6. "three thousand fifty" -> "3050". Source tokens are words,
target tokens are digits; both vocabularies share the special ids PAD = 0, BOS = 1,
EOS = 2. Numbers held out of training (a random set) measure whether the model learnt
the rule rather than the examples.
"""

import torch

from utils.attention import record_attention
from utils.checks import check_int
from utils.data import endless_batches
from utils.env import split_generator
from utils.plot import attention_map
from utils.train import cross_entropy

ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = [
    "",
    "",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
]
SPECIALS = ["<pad>", "<bos>", "<eos>"]
PAD, BOS, EOS = 0, 1, 2
SRC_VOCAB = SPECIALS + ONES + TENS[2:] + ["hundred", "thousand"]
TGT_VOCAB = SPECIALS + list("0123456789")
SRC_ID = {w: i for i, w in enumerate(SRC_VOCAB)}
TGT_ID = {w: i for i, w in enumerate(TGT_VOCAB)}
MAX_NUMBER = 999_999


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10])
        n %= 10
        if n:
            words.append(ONES[n])
    elif n or not words:
        words.append(ONES[n])
    return words


def number_to_words(n: int) -> list[str]:
    """0 <= n <= 999,999 in English words: 3050 -> ['three', 'thousand', 'fifty']."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n must be an int between 0 and {MAX_NUMBER}, got n={n!r}")
    if n < 1000:
        return _below_thousand(n)
    words = _below_thousand(n // 1000) + ["thousand"]
    return words + (_below_thousand(n % 1000) if n % 1000 else [])


def split_numbers(max_number: int = 99_999, num_test: int = 2000, seed=0):
    """A random split of 0..max_number into (train, test) tensors of numbers.

    The test numbers are never trained on.
    """
    if not 1 <= check_int("max_number", max_number) <= MAX_NUMBER:
        raise ValueError(
            f"max_number must be between 1 and {MAX_NUMBER}, "
            f"got max_number={max_number}"
        )
    if not 1 <= check_int("num_test", num_test) <= max_number:
        raise ValueError(
            f"num_test must be between 1 and max_number={max_number}, "
            f"got num_test={num_test}"
        )
    order = torch.randperm(max_number + 1, generator=split_generator(seed))
    return order[num_test:], order[:num_test]


def _pad(rows: list[list[int]]) -> torch.Tensor:
    longest = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (longest - len(r)) for r in rows])


def make_batch(numbers) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numbers -> (src (B, T_src), tgt_in = BOS + digits, tgt_out = digits + EOS).

    tgt_in and tgt_out are (B, T_tgt), padded with PAD.
    """
    numbers = numbers.tolist() if torch.is_tensor(numbers) else list(numbers)
    if not numbers:
        raise ValueError("numbers must not be empty")
    src = _pad([[SRC_ID[w] for w in number_to_words(n)] for n in numbers])
    digits = [[TGT_ID[d] for d in str(n)] for n in numbers]
    return src, _pad([[BOS] + d for d in digits]), _pad([d + [EOS] for d in digits])


def batches(numbers: torch.Tensor, batch_size: int = 128, seed=0):
    """An endless, seeded stream of training batches drawn from `numbers`."""

    def sample(batch_size, generator):
        picks = torch.randint(len(numbers), (batch_size,), generator=generator)
        return make_batch(numbers[picks])

    return endless_batches(sample, batch_size, seed)


def seq2seq_loss(model, batch) -> torch.Tensor:
    """Cross-entropy of the next digit under teacher forcing (padding ignored)."""
    src, tgt_in, tgt_out = batch
    return cross_entropy(model(src, tgt_in), tgt_out, ignore_index=PAD)


def decode_digits(ids, strict: bool = True) -> str:
    """Generated target ids -> a string of digits, stopping at EOS.

    A ``<bos>`` in the output (an untrained model may emit one) raises, or with
    ``strict=False`` shows as ``<bos>``, so the answer counts as wrong.
    """
    out = []
    for i in ids.tolist() if torch.is_tensor(ids) else ids:
        if i == EOS or i == PAD:
            break
        if i == BOS and not strict:
            out.append(TGT_VOCAB[BOS])
            continue
        if not 3 <= i < len(TGT_VOCAB):  # BOS, or an id outside the vocabulary
            raise ValueError(
                f"id {i} is not a digit (digit ids are 3 to {len(TGT_VOCAB) - 1})"
            )
        out.append(TGT_VOCAB[i])
    return "".join(out)


def translate(model, numbers, beam_size: int = 1) -> list[str]:
    """Translations of `numbers`' words into digit strings: greedy, or beam search
    with ``beam_size > 1`` (models with a ``beam_decode``, chapter 3's)."""
    src, _, _ = make_batch(numbers)
    if check_int("beam_size", beam_size) == 1:
        generated = model.greedy_decode(src, max_new_tokens=8, eos_id=EOS)
    elif hasattr(model, "beam_decode"):
        generated = model.beam_decode(src, beam_size=beam_size, max_new_tokens=8)
    else:
        raise ValueError(f"{type(model).__name__} has no beam search: use beam_size=1")
    return [decode_digits(row, strict=False) for row in generated]


def exact_match(model, numbers, batch_size: int = 1000, beam_size: int = 1) -> float:
    """The fraction of `numbers` whose translation is exactly right."""
    model.eval()
    numbers = numbers.tolist() if torch.is_tensor(numbers) else list(numbers)
    right = 0
    for i in range(0, len(numbers), batch_size):
        chunk = numbers[i : i + batch_size]
        translations = translate(model, chunk, beam_size)
        right += sum(p == str(n) for p, n in zip(translations, chunk))
    return right / len(numbers)


def token_accuracy(model, numbers, teacher_forcing: bool) -> float:
    """The fraction of target tokens (digits and the end token) that come out right.

    With teacher forcing each prediction follows the true tokens before it; without,
    the model's own greedy output is compared position by position, so one wrong
    token can spoil the ones after it.
    """
    model.eval()
    src, tgt_in, tgt_out = make_batch(numbers)
    real = tgt_out != PAD  # (B, T)
    with torch.no_grad():
        if teacher_forcing:
            predicted = model(src, tgt_in).argmax(-1)  # (B, T)
        else:
            generated = model.greedy_decode(src, max_new_tokens=tgt_out.shape[1])
            predicted = torch.full_like(tgt_out, PAD)
            predicted[:, : generated.shape[1]] = generated
    return ((predicted == tgt_out) & real).sum().item() / real.sum().item()


def by_length(numbers) -> dict[int, list[int]]:
    """`numbers` grouped by how many words they take, shortest first."""
    groups = {}
    for n in numbers.tolist() if torch.is_tensor(numbers) else numbers:
        groups.setdefault(len(number_to_words(n)), []).append(n)
    return dict(sorted(groups.items()))


def cross_attention(model, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
    """Every decoder layer's cross-attention on a teacher-forced pass.

    Returns (layers, B, H, T_tgt, T_src).
    """
    with torch.no_grad(), record_attention(model.transformer) as maps:
        model(src, tgt_in)
    return torch.stack([w for name, w in maps.items() if name.endswith("cross_attn")])


def cross_attention_maps(model, number: int):
    """(source words, output digits + EOS, cross-attention (layers, H, T_out, T_src)).

    The digits are the model's own greedy output, which may be wrong.
    """
    model.eval()
    src, _, _ = make_batch([number])
    generated = model.greedy_decode(src, max_new_tokens=8, eos_id=EOS)[0]
    ids = [i for i in generated.tolist() if i not in (PAD, EOS)]
    outputs = [TGT_VOCAB[i] for i in ids] + ["<eos>"]  # <bos> shows as itself
    tgt_in = torch.tensor([[BOS] + ids])  # what the decoder saw
    weights = cross_attention(model, src, tgt_in)[:, 0]
    return number_to_words(number), outputs, weights


def draw_alignment(fig, number: int = 3050, *, model):
    """The last decoder layer's cross-attention: mean over heads, then each head."""
    words, outputs, weights = cross_attention_maps(model, number)
    last = weights[-1]  # (H, T_out, T_src)
    H = last.shape[0]
    axes = fig.subplots(1, H + 1, gridspec_kw={"width_ratios": [1.6] + [1] * H})
    image = attention_map(
        axes[0],
        last.mean(0),
        queries=outputs,
        keys=words,
        colorbar=False,
        title=f"{number}: mean of heads",
    )
    axes[0].set(xlabel="source word", ylabel="output digit")
    for h in range(H):
        attention_map(
            axes[h + 1],
            last[h],
            queries=outputs,
            keys=words,
            colorbar=False,
            title=f"head {h}",
        )
        axes[h + 1].set(xlabel="", ylabel="", yticks=[])
    fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02, label="weight")
    return axes
