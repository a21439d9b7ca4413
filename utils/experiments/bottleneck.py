"""Chapter 3's experiments: the fixed-vector bottleneck and Bahdanau attention.

The task is chapter 6's, number words -> digits (`number_words`), read by the RNN
encoder-decoder of `utils.rnn_seq2seq` with and without attention.
"""

import torch

from utils.checks import check_int
from utils.experiments import number_words
from utils.plot import attention_map


def length_groups(numbers, min_count: int = 20) -> dict[int, list[int]]:
    """`numbers` grouped by their length in words, groups of at least `min_count`."""
    check_int("min_count", min_count)
    groups = number_words.by_length(numbers)
    return {length: ns for length, ns in groups.items() if len(ns) >= min_count}


def accuracy_by_length(model, groups: dict, beam_size: int = 1) -> dict[int, float]:
    """Exact match of each length group (see `length_groups`)."""
    return {
        length: number_words.exact_match(model, ns, beam_size=beam_size)
        for length, ns in groups.items()
    }


def draw_by_length(ax, groups: dict, accuracies: dict[str, dict[int, float]]):
    """Exact match against source length, one line per model, with group sizes."""
    lengths = list(groups)
    for (label, by_length), marker in zip(accuracies.items(), "os^v"):
        ax.plot(lengths, [by_length[n] for n in lengths], marker=marker, label=label)
    for n in lengths:
        ax.annotate(f"{len(groups[n])}", (n, 0.02), ha="center", fontsize=7, c="gray")
    ax.set(
        xlabel="source length (words); grey: held-out numbers of that length",
        ylabel="exact match",
        ylim=(0, 1.05),
        xticks=lengths,
    )
    ax.legend(frameon=False, fontsize=8, loc="center right")


def alignment(model, number: int):
    """(source words, output digits + <eos>, attention weights (T_out, S)).

    The digits are the model's own greedy output; the weights are those it used
    while writing them.
    """
    model.eval()
    src, _, _ = number_words.make_batch([number])
    generated = model.greedy_decode(src, max_new_tokens=8)[0]
    ids = [i for i in generated.tolist() if i != number_words.PAD]
    tgt_in = torch.tensor([[number_words.BOS] + ids[:-1]])  # what the decoder read
    with torch.no_grad():
        _, weights = model(src, tgt_in, need_weights=True)
    if weights is None:
        raise ValueError("alignment needs a model with attention (attention=True)")
    outputs = [number_words.TGT_VOCAB[i] for i in ids]
    return number_words.number_to_words(number), outputs, weights[0]


def draw_alignment(fig, number: int = 3050, *, model, baseline=None):
    """The attention model's weights while it writes `number` in digits.

    With a `baseline` (the model without attention), the title shows its answer too.
    """
    words, outputs, weights = alignment(model, number)
    ax = fig.subplots()
    title = f"attention: {''.join(o for o in outputs if o != '<eos>')}"
    if baseline is not None:
        title += f"   no attention: {number_words.translate(baseline, [number])[0]}"
    attention_map(ax, weights, queries=outputs, keys=words, title=title)
    ax.set(xlabel="source word", ylabel="output token")
    return ax
