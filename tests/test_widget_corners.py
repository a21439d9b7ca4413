"""Each chapter's widget callback at its controls' corner values.

Every combination of each control's smallest and largest value, as the chapters set the
controls, draws without error and leaves no figure open. The global random state is left
as it was.
"""

import itertools
from functools import partial

import matplotlib.pyplot as plt
import pytest
import torch

from utils.experiments.gradient_flow import draw_rnn_gradients
from utils.experiments.neighbour_heads import (
    NeighbourModel,
    NeighbourTaskConfig,
    draw_heads,
    neighbour_difference_batch,
)
from utils.experiments.number_words import draw_alignment
from utils.experiments.positional_encoding import draw_positions
from utils.experiments.receptive_field import draw_receptive_fields
from utils.experiments.signal_recall import draw_long_range
from utils.experiments.softmax_scaling import D_K_VALUES, draw_scaling
from utils.experiments.temperature import draw_sampling
from utils.gpt import GPT, GPTConfig
from utils.tokenizers import CharTokenizer
from utils.transformer import Seq2Seq, Seq2SeqConfig


def _heads():
    config = NeighbourTaskConfig()
    tokens, _ = neighbour_difference_batch(config, 16, torch.Generator().manual_seed(0))
    return partial(draw_heads, model=NeighbourModel(config), tokens=tokens)


def _alignment():
    from utils.experiments import number_words
    model = Seq2Seq(Seq2SeqConfig(len(number_words.SRC_VOCAB), len(number_words.TGT_VOCAB),
                                  d_model=16, num_heads=2, dim_feedforward=32,
                                  block_size=16))
    return partial(draw_alignment, model=model)


def _bottleneck():
    from utils.experiments import bottleneck, number_words
    from utils.rnn_seq2seq import RNNSeq2Seq, RNNSeq2SeqConfig

    def model(attention):
        torch.manual_seed(0)
        return RNNSeq2Seq(RNNSeq2SeqConfig(len(number_words.SRC_VOCAB),
                                           len(number_words.TGT_VOCAB), d_embed=8,
                                           hidden_size=16, attention=attention))
    return partial(bottleneck.draw_alignment, model=model(True), baseline=model(False))


def _sampling():
    chars = CharTokenizer("And the LORD spake unto Moses\n")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=64, num_layers=1,
                        num_heads=2, d_model=16)).eval()
    return partial(draw_sampling, model=gpt, tokenizer=chars,
                   prompt="And the LORD spake unto Mo")


def _chat():
    from experiments.test_llm import StubTokenizer  # tests/ is on the path

    from utils.experiments.llm import draw_reply
    from utils.llama import Llama, LlamaConfig

    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=60, block_size=160, num_layers=1, num_heads=2,
                              num_kv_heads=1, d_model=16)).eval()
    return partial(draw_reply, model=model, tokenizer=StubTokenizer())


def _completions():
    from utils.experiments import pixel_gpt
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=5, block_size=197, num_layers=1, num_heads=2,
                        d_model=16)).eval()
    return partial(pixel_gpt.draw_completions, model=gpt,
                   digits=pixel_gpt.pixel_digits(n_levels=4))


def _patches():
    from utils.experiments import vit_digits
    return partial(vit_digits.draw_patches,
                   images=vit_digits.load_digits_split().test_part()[0])


def _class_attention():
    from utils.experiments import vit_digits
    from utils.vit import ViT, ViTConfig
    torch.manual_seed(0)
    vit = ViT(ViTConfig(num_layers=3, num_heads=4, d_model=32, dim_feedforward=64)).eval()
    return partial(vit_digits.draw_class_attention, model=vit,
                   images=vit_digits.load_digits_split().test_part()[0])


LAGS = [1, 5, 10, 20, 30, 40, 50, 60]
RESULTS = {"lags": LAGS, "chance": 0.25, "rnn": [0.25] * 8, ("lstm", 0.0): [1.0] * 8,
           ("lstm", 2.0): [1.0] * 8}

# callback factory, {control: (smallest, largest)} as the chapters set them
CALLBACKS = {
    "ch0": (lambda: draw_receptive_fields,
            {"kernel_size": (3, 7), "depth": (1, 14), "dilation": (1, 4)}),
    "ch1": (lambda: draw_rnn_gradients,
            {"scale": (0.5, 2.0), "nonlinearity": ("tanh", "relu"),
             "num_steps": (20, 200)}),
    "ch2": (lambda: partial(draw_long_range, results=RESULTS),
            {"lag": (LAGS[0], LAGS[-1]), "forget_bias": (0.0, 2.0)}),
    "ch3": (_bottleneck, {"number": (7, 999_999)}),
    "ch4": (lambda: draw_scaling, {"d_k": (D_K_VALUES[0], D_K_VALUES[-1])}),
    "ch5": (_heads, {"head": (0, 1), "example": (0, 15)}),
    "ch6": (_alignment, {"number": (400, 9999)}),
    "ch6-positions": (lambda: draw_positions,
                      {"d_model": (16, 128), "dimensions": (2, 128)}),
    "ch7": (_sampling, {"temperature": (0.5, 1.5), "top_k": (1, 65)}),
    "ch11": (_chat, {"question": ("?", "What is the capital of France? " * 3),
                     "temperature": (0.1, 2.0), "top_p": (0.1, 1.0),
                     "max_new_tokens": (8, 96)}),
    "ch9": (_completions, {"index": (0, 999), "rows_given": (0, 13),
                           "temperature": (0.2, 2.0)}),
    "ch10-patches": (_patches, {"index": (0, 999), "patch_size": (1, 28)}),
    "ch10-attention": (_class_attention, {"index": (0, 999), "layer": ("rollout", 2),
                                         "head": ("mean", 3)}),
}


@pytest.mark.parametrize("chapter", sorted(CALLBACKS))
def test_callback_draws_every_corner_setting(chapter):
    make, controls = CALLBACKS[chapter]
    draw = make()
    before = torch.get_rng_state()
    for values in itertools.product(*controls.values()):
        fig = plt.figure(figsize=(8, 3), layout="constrained")
        draw(fig, **dict(zip(controls, values)))
        plt.close(fig)
    assert plt.get_fignums() == []
    assert torch.equal(torch.get_rng_state(), before)
