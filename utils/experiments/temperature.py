"""Chapter 7's sampling widget: one prompt, a temperature and a top-k, a sample and the
next-character distribution it is drawn from."""

import textwrap

import torch

from utils.sampling import next_token_probs

NAMES = {" ": "space", "\n": "newline"}  # characters that need a name on a bar


@torch.no_grad()
def draw_sampling(
    fig,
    model,
    tokenizer,
    prompt: str,
    temperature=0.8,
    top_k=65,
    max_new_tokens: int = 200,
    seed: int = 0,
) -> None:
    """The widget's callback: `model`'s continuation of `prompt` (left) and the eight
    most likely next characters after it, under this temperature and top-k (right)."""
    prompt_ids = tokenizer.encode(prompt)[None]  # (1, T)
    logits = model(prompt_ids)[0][:, -1]  # (1, V)
    probs = next_token_probs(logits, temperature, top_k)[0]  # (V,)
    top = probs.topk(min(8, len(probs)))
    sample = model.generate(
        prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed
    )
    text_ax, bar_ax = fig.subplots(1, 2, width_ratios=[2.4, 1])
    text_ax.axis("off")
    continuation = tokenizer.decode(sample[0, prompt_ids.shape[1] :])
    text_ax.text(
        0,
        1,
        textwrap.fill(prompt + "|" + continuation.replace("\n", " / "), 60),
        va="top",
        family="monospace",
        fontsize=10,
        transform=text_ax.transAxes,
    )
    labels = [NAMES.get(c, c) for c in (tokenizer.decode([i]) for i in top.indices)]
    positions = range(len(labels))[::-1]
    bar_ax.barh(positions, top.values, color="tab:blue")
    bar_ax.set_yticks(positions, labels)
    bar_ax.set(xlim=(0, 1), xlabel="p(next char)", title=f"after '...{prompt[-2:]}'")


def repeated_phrase(text: str, min_length: int = 8, min_count: int = 3):
    """The longest phrase of at least `min_length` characters that `text` holds at
    least `min_count` times without overlap, with its count; ``(None, 0)`` if none.
    Greedy decoding's loops show up this way."""
    best, count = None, 0
    for length in range(min_length, len(text) // min_count + 1):
        found = False
        for start in range(len(text) - length + 1):
            phrase = text[start : start + length]
            n = text.count(phrase)  # non-overlapping
            if n >= min_count:
                best, count, found = phrase, n, True
                break
        if not found:  # no phrase of this length repeats, so no longer one does
            break
    return best, count
