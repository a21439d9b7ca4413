"""Chapter 3's experiments: the fixed-vector bottleneck and Bahdanau attention.

The main task is chapter 6's, number words -> digits (`number_words`), read by the RNN
encoder-decoder of `utils.rnn_seq2seq` with and without attention. Copying random
sequences of a few symbols tests longer sources: every symbol must pass through the
encoder, and there is nothing to guess.
"""

import torch

from utils.checks import check_int
from utils.data import endless_batches
from utils.env import make_generator
from utils.experiments import number_words
from utils.plot import attention_map
from utils.rnn_seq2seq import RNNSeq2Seq, RNNSeq2SeqConfig
from utils.train import count_parameters

# Copying: ids 0-2 are <pad>, <bos>, <eos> (as in number_words), then the symbols.
COPY_SYMBOLS = 4
COPY_VOCAB = 3 + COPY_SYMBOLS


def copy_batch(lengths: list[int], generator=None):
    """Random sequences of the given lengths -> (src, tgt_in, tgt_out), laid out as in
    `number_words.make_batch`: the target is the source between <bos> and <eos>."""
    if not lengths:
        raise ValueError("lengths must not be empty")
    for n in lengths:
        check_int("length", n)
    longest = max(lengths)
    src = torch.zeros(len(lengths), longest, dtype=torch.long)  # (B, S), PAD = 0
    tgt_in = torch.zeros(len(lengths), longest + 1, dtype=torch.long)  # (B, S + 1)
    tgt_out = torch.zeros_like(tgt_in)
    for row, n in enumerate(lengths):
        symbols = torch.randint(3, COPY_VOCAB, (n,), generator=generator)
        src[row, :n] = symbols
        tgt_in[row, 0], tgt_in[row, 1 : n + 1] = number_words.BOS, symbols
        tgt_out[row, :n], tgt_out[row, n] = symbols, number_words.EOS
    return src, tgt_in, tgt_out


def copy_batches(min_length: int, max_length: int, batch_size: int = 32, seed=0):
    """An endless, seeded stream of copying batches, lengths uniform in
    [min_length, max_length]."""
    check_int("min_length", min_length)
    if check_int("max_length", max_length) < min_length:
        raise ValueError(
            f"max_length must be at least min_length, got {max_length} < {min_length}"
        )

    def sample(size, generator):
        lengths = torch.randint(
            min_length, max_length + 1, (size,), generator=generator
        )
        return copy_batch(lengths.tolist(), generator)

    return endless_batches(sample, batch_size, seed)


def copy_accuracy(model, length: int, n: int = 200, seed=0) -> float:
    """The share of target tokens (symbols and <eos>) that greedy decoding gets right
    at their position, over `n` random sources of `length` symbols."""
    check_int("n", n)
    src, _, tgt_out = copy_batch([length] * n, make_generator(seed))
    model.eval()
    generated = model.greedy_decode(src, max_new_tokens=length + 1)  # (n, <= S + 1)
    predicted = torch.full_like(tgt_out, number_words.PAD)
    predicted[:, : generated.shape[1]] = generated
    return (predicted == tgt_out).float().mean().item()


def matched_width(config: RNNSeq2SeqConfig) -> int:
    """The hidden size at which the model without attention has about as many
    parameters as `config`'s model with attention (the nearest count)."""
    with torch.device("meta"):  # counts only: no weights are built
        target = count_parameters(RNNSeq2Seq(config))

        def gap(hidden):
            plain = RNNSeq2SeqConfig(
                config.src_vocab_size,
                config.tgt_vocab_size,
                config.d_embed,
                hidden,
                attention=False,
            )
            return abs(count_parameters(RNNSeq2Seq(plain)) - target)

        return min(range(config.hidden_size, 4 * config.hidden_size), key=gap)


def draw_copy_by_length(ax, lengths, accuracies: dict[str, list[list[float]]]):
    """Token accuracy against source length: one line per model (the seeds' mean) and
    a band from the seeds' lowest to highest; `accuracies[name][seed][i]` is at
    `lengths[i]`."""
    for (label, runs), marker in zip(accuracies.items(), "os^v"):
        runs = torch.tensor(runs)  # (seeds, lengths)
        line = ax.plot(lengths, runs.mean(0), marker=marker, label=label)[0]
        ax.fill_between(
            lengths,
            runs.min(0).values,
            runs.max(0).values,
            alpha=0.2,
            color=line.get_color(),
        )
    ax.axhline(1 / COPY_SYMBOLS, ls=":", c="gray", lw=1)
    ax.annotate(
        f"guessing (1 in {COPY_SYMBOLS})",
        (lengths[-1], 1 / COPY_SYMBOLS),
        va="bottom",
        ha="right",
        fontsize=7,
        c="gray",
    )
    _accuracy_axes(ax, lengths, "source length (symbols)", "token accuracy (greedy)")
    ax.legend(frameon=False, fontsize=8, loc="lower left")


def _accuracy_axes(ax, lengths, xlabel: str, ylabel: str):
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.05), xticks=lengths)


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
    xlabel = "source length (words); grey: held-out numbers of that length"
    _accuracy_axes(ax, lengths, xlabel, "exact match")
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
