"""Chapter 6: GPT training throughput against GPT2LMHeadModel, and the KV cache's speed-up."""

import torch

from utils.gpt import GPT, GPTConfig

from .timing import best_of, ratio_result

# The chapter's model, and the batch it trains on.
CONFIG = GPTConfig(vocab_size=65, block_size=64, n_layer=3, n_head=4, d_model=96)
BATCH = 32


def _hf_gpt2(attn_implementation: str):
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_config = GPT2Config(vocab_size=CONFIG.vocab_size, n_positions=CONFIG.block_size,
                           n_layer=CONFIG.n_layer, n_head=CONFIG.n_head, n_embd=CONFIG.d_model,
                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                           eos_token_id=None, attn_implementation=attn_implementation)
    return GPT2LMHeadModel(hf_config)


def _train_step(model, x, y):
    """A closure: one forward, backward and AdamW step of `model` on (x, y)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        if isinstance(model, GPT):
            loss = model(x, y)[1]
        else:                                        # GPT-2 shifts the labels itself (T - 1 targets)
            loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def bench_gpt_training_throughput():
    torch.manual_seed(0)
    x = torch.randint(CONFIG.vocab_size, (BATCH, CONFIG.block_size))
    y = torch.randint(CONFIG.vocab_size, (BATCH, CONFIG.block_size))
    tokens = BATCH * CONFIG.block_size
    ours = best_of(_train_step(GPT(CONFIG), x, y), repeat=10, warmup=2)
    rows = []
    for implementation, limit in (("eager", 1.0), ("sdpa", None)):
        theirs = best_of(_train_step(_hf_gpt2(implementation), x, y), repeat=10, warmup=2)
        row = ratio_result(f"ch6 GPT train step: ours / HF GPT-2 {implementation}", ours, theirs, limit)
        row["ours_tokens_per_s"], row["reference_tokens_per_s"] = tokens / ours, tokens / theirs
        rows.append(row)
    return rows


def bench_gpt_kv_cache():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=CONFIG.vocab_size, block_size=512, n_layer=CONFIG.n_layer,
                          n_head=CONFIG.n_head, d_model=CONFIG.d_model)).eval()
    prompt = torch.randint(CONFIG.vocab_size, (1, 16))
    cached = best_of(lambda: model.generate(prompt, 256, top_k=1, use_cache=True), repeat=3)
    uncached = best_of(lambda: model.generate(prompt, 256, top_k=1, use_cache=False), repeat=3)
    row = ratio_result("ch6 KV cache 256 tokens: cached / uncached", cached, uncached, limit=0.5)
    row["speedup"] = uncached / cached
    return [row]
