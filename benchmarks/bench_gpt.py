"""Chapter 7: GPT training throughput against its peers, and the KV cache's speed-up.

Peers: Hugging Face's GPT2LMHeadModel (eager and SDPA attention) and a nanoGPT-style
model (:mod:`benchmarks.nanogpt`, after Andrej Karpathy's nanoGPT ``model.py``). All
train on the same random batch with the same AdamW step; dropout is 0 everywhere.
"""

import torch

from utils.gpt import GPT, GPTConfig

from . import nanogpt
from .timing import best_of, ratio_result

# label: (vocab_size, block_size = T, layers, heads, d_model, batch B, repeats).
# "chapter" is chapter 7's model. "shakespeare-char" is the model of nanoGPT's
# config/train_shakespeare_char.py, with B=8 (that file uses 64, train.py's
# default is 12) to keep the bench short on two cores; with biases and no dropout
# (that run uses dropout 0.2 and no biases) for a like-for-like comparison.
CONFIGS = {
    "chapter": (65, 64, 3, 4, 96, 32, 10),
    "shakespeare-char": (65, 256, 6, 6, 384, 8, 3),
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


def bench_gpt_training_throughput():
    """Train steps, ours against each peer: at most 1.0x nanoGPT's and GPT-2 eager's."""
    limits = {"nanoGPT-style": 1.0, "HF GPT-2 eager": 1.0, "HF GPT-2 sdpa": None}
    rows = []
    for label, (vocab, T, layers, heads, d, B, repeat) in CONFIGS.items():
        torch.manual_seed(0)
        x, y = torch.randint(vocab, (B, T)), torch.randint(vocab, (B, T))
        ours, peers = _models(vocab, T, layers, heads, d)
        ours_s = best_of(_train_step(ours, x, y), repeat=repeat, warmup=2)
        for name, peer in peers.items():
            if label != "chapter" and name.startswith("HF"):
                continue  # the GPT-2 rows are for the chapter's model only
            peer_s = best_of(_train_step(peer, x, y), repeat=repeat, warmup=2)
            row = ratio_result(
                f"GPT train step ({label}): ours / {name}", ours_s, peer_s, limits[name]
            )
            row["ours_tokens_per_s"] = B * T / ours_s
            row["reference_tokens_per_s"] = B * T / peer_s
            rows.append(row)
    return rows


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
