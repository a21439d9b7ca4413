"""Chapter 9: completing a 14×14 digit from its top 7 rows, with and without the KV
cache (the chapter's model size: 4 layers, d=64, 197 positions)."""

import torch

from utils.gpt import GPT, GPTConfig
from utils.igpt import complete

from .timing import best_of, ratio_result


def bench_igpt_completion():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=5, block_size=197, num_layers=4, num_heads=4, d_model=64)
    ).eval()
    digit = torch.randint(4, (1, 196))  # the weights and pixels don't change the time

    def run(use_cache):
        return lambda: complete(model, digit, 7, 14, start_id=4, use_cache=use_cache)

    cached, uncached = best_of(run(True), repeat=3), best_of(run(False), repeat=3)
    row = ratio_result(
        "ch9 complete a 14×14 digit from 7 rows: cached / uncached (s per image)",
        cached,
        uncached,
        limit=None,  # the issue asks for both times; at 197 tokens the saving is ~2x
    )
    row["speedup"] = uncached / cached
    return [row]
