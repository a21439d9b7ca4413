"""Chapter 11: cached greedy generation with SmolLM2-135M-Instruct's real weights, ours
(utils.llama.Llama) against transformers' LlamaForCausalLM loaded from the same file."""

import statistics

from utils.experiments.llm import chat_ids, load_smollm2
from utils.llama import Llama
from utils.timing import interleaved_times

from .timing import ratio_result

NEW_TOKENS = 32
QUESTION = "What is attention in a Transformer? Answer in one sentence."


def bench_llama_generation():
    """The chapter's prompt (43 tokens), 32 new tokens, greedy, both with their KV
    caches: ours / transformers, per token (medians of 5 runs taken in turns)."""
    theirs, tokenizer = load_smollm2()
    ours = Llama.from_hf(theirs).eval()
    prompt = chat_ids(tokenizer, QUESTION)
    times = interleaved_times(
        {
            "ours": lambda: ours.generate(prompt, NEW_TOKENS, top_k=1),
            "transformers": lambda: theirs.generate(
                prompt,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,  # no early stop: the same number of tokens
                do_sample=False,
            ),
        },
        repeat=5,
    )
    ours_s = statistics.median(times["ours"])
    reference_s = statistics.median(times["transformers"])
    return [
        ratio_result(
            "ch11 SmolLM2-135M cached generation, per token, vs transformers",
            ours_s / NEW_TOKENS,
            reference_s / NEW_TOKENS,
            limit=1.3,
        )
    ]
