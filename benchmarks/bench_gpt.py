"""Chapter 7: GPT training throughput against its peers, and the KV cache's speed-up.

Peers: Hugging Face's GPT2LMHeadModel (eager and SDPA attention) and a nanoGPT-style
model (:mod:`benchmarks.nanogpt`, after Andrej Karpathy's nanoGPT ``model.py``). All
train on the same random batch with the same AdamW step; dropout is 0 everywhere.
"""

import statistics
import subprocess
import sys
from pathlib import Path

import torch

from utils.gpt import GPT, GPTConfig
from utils.timing import median_times

from . import nanogpt
from .timing import best_of, busy_process, ratio_result

# label: (vocab_size, block_size = T, layers, heads, d_model, batch B, repeats).
# "chapter" is chapter 7's model. "shakespeare-char" is the model of nanoGPT's
# config/train_shakespeare_char.py, with B=8 (that file uses 64, train.py's
# default is 12) to keep the bench short on two cores; with biases and no dropout
# (that run uses dropout 0.2 and no biases) for a like-for-like comparison.
CONFIGS = {
    "chapter": (65, 64, 3, 4, 96, 32, 15),
    "shakespeare-char": (65, 256, 6, 6, 384, 8, 7),
}


def _models(vocab, T, layers, heads, d):
    """Ours, nanoGPT's and GPT-2's (eager and SDPA), each from the same seed."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab, T, layers, heads, d))
    torch.manual_seed(0)
    nano = nanogpt.GPT(nanogpt.NanoGPTConfig(T, vocab, layers, heads, d, 0.0, True))
    models = {"nanoGPT-style": nano}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        models[f"HF GPT-2 {implementation}"] = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab,
                n_positions=T,
                n_layer=layers,
                n_head=heads,
                n_embd=d,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                bos_token_id=None,
                eos_token_id=None,
                attn_implementation=implementation,
            )
        )
    return ours, models


def _train_step(model, x, y):
    """A closure: one forward, backward and AdamW step of `model` on (x, y)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        if type(model).__name__ == "GPT2LMHeadModel":
            loss = model(input_ids=x, labels=x).loss  # GPT-2 shifts the labels itself
        else:
            loss = model(x, y)[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _batch(vocab, B, T):
    torch.manual_seed(0)
    return torch.randint(vocab, (B, T)), torch.randint(vocab, (B, T))


def bench_gpt_training_throughput():
    """Train steps, ours against each peer (medians of interleaved steps): at most 1.0x
    nanoGPT's and GPT-2 eager's."""
    limits = {"nanoGPT-style": 1.0, "HF GPT-2 eager": 1.0, "HF GPT-2 sdpa": None}
    rows = []
    for label, (vocab, T, layers, heads, d, B, repeat) in CONFIGS.items():
        x, y = _batch(vocab, B, T)
        ours, peers = _models(vocab, T, layers, heads, d)
        if label != "chapter":  # the GPT-2 rows are for the chapter's model only
            peers = {"nanoGPT-style": peers["nanoGPT-style"]}
        models = {"ours": ours, **peers}
        steps = {name: _train_step(model, x, y) for name, model in models.items()}
        seconds = median_times(steps, repeat=repeat, warmup=2)
        for name in peers:
            row = ratio_result(
                f"GPT train step ({label}): ours / {name}",
                seconds["ours"],
                seconds[name],
                limits[name],
            )
            row["ours_tokens_per_s"] = B * T / seconds["ours"]
            row["reference_tokens_per_s"] = B * T / seconds[name]
            rows.append(row)
    return rows


def chapter_step_seconds() -> float:
    """The median seconds of chapter 7's train step, in this process."""
    vocab, T, layers, heads, d, B, repeat = CONFIGS["chapter"]
    x, y = _batch(vocab, B, T)
    step = _train_step(_models(vocab, T, layers, heads, d)[0], x, y)
    return median_times({"ours": step}, repeat=repeat, warmup=2)["ours"]


def _fresh_process_step_seconds() -> float:
    """chapter_step_seconds() in a new process that imports utils first, as a chapter
    does: the threading policy sees the machine as it is when the chapter starts."""
    code = (
        "import utils, sys; sys.path.insert(0, '.'); from utils.env import "
        "limit_threads; limit_threads(); from benchmarks.bench_gpt import "
        "chapter_step_seconds; print(chapter_step_seconds())"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return float(result.stdout.split()[-1])


def bench_gpt_training_under_load(rounds: int = 3):
    """Chapter 7's train step with one busy process beside it, against a quiet machine:
    at most 2.1x (two cores, one of them taken: a fair share is 2x). Quiet and loaded
    runs alternate; each side's median over `rounds`."""
    quiet, loaded = [], []
    for _ in range(rounds):
        quiet.append(_fresh_process_step_seconds())
        with busy_process():
            loaded.append(_fresh_process_step_seconds())
    return [
        ratio_result(
            "ch7 GPT train step: one busy process / quiet",
            statistics.median(loaded),
            statistics.median(quiet),
            2.1,
        )
    ]


def bench_gpt_kv_cache():
    vocab, _, layers, heads, d, _, _ = CONFIGS["chapter"]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab, 512, layers, heads, d)).eval()
    prompt = torch.randint(vocab, (1, 16))
    cached = best_of(lambda: model.generate(prompt, 256, top_k=1), repeat=3)
    uncached = best_of(
        lambda: model.generate(prompt, 256, top_k=1, use_cache=False), repeat=3
    )
    row = ratio_result(
        "ch7 KV cache 256 tokens: cached / uncached", cached, uncached, limit=0.5
    )
    row["speedup"] = uncached / cached
    return [row]
