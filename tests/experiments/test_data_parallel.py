"""The appendix's memory arithmetic, against counts made another way."""

import matplotlib.pyplot as plt
import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from utils.experiments.data_parallel import (
    GPT2_SMALL,
    SHARDED,
    draw_memory,
    memory_per_process,
    parameters_of,
    ring_allreduce_bytes,
)
from utils.gpt import GPT, GPTConfig
from utils.train import count_parameters


def test_parameters_on_the_meta_device_equal_a_real_model():
    config = GPTConfig(
        vocab_size=65, block_size=32, num_layers=2, num_heads=2, d_model=16
    )
    assert parameters_of(config) == count_parameters(GPT(config))


def test_gpt2_small_has_hugging_faces_parameter_count():
    import torch

    with torch.device("meta"):
        reference = GPT2LMHeadModel(GPT2Config())  # GPT-2 small, tied embeddings
    assert parameters_of(GPT2_SMALL) == reference.num_parameters()


def test_ddp_replicates_16_bytes_per_parameter_and_fsdp_shards_them():
    ddp = memory_per_process(1000, 8, "DDP")
    assert (ddp.weights, ddp.gradients, ddp.optimizer, ddp.total) == (
        4000,
        4000,
        8000,
        16000,
    )
    assert memory_per_process(1000, 8, "FSDP (ZeRO-3)").total == 16000 / 8
    assert memory_per_process(1000, 8, "ZeRO-1").total == 4000 + 4000 + 1000
    assert memory_per_process(1000, 8, "ZeRO-2").total == 4000 + 500 + 1000


@pytest.mark.parametrize("strategy", list(SHARDED))
def test_one_process_shards_nothing(strategy):
    assert memory_per_process(1000, 1, strategy).total == 16000


def test_ring_allreduce_sends_twice_the_gradient_in_the_limit():
    assert ring_allreduce_bytes(1000, 1) == 0
    assert ring_allreduce_bytes(1000, 2) == 4000
    assert ring_allreduce_bytes(1000, 1000) == pytest.approx(8000, rel=1e-2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: memory_per_process(1000, 0, "DDP"), "world must be a positive int"),
        (lambda: memory_per_process(1000, 2, "ZeRO-4"), "strategy must be one of"),
        (
            lambda: memory_per_process(10.5, 2, "DDP"),
            "parameters must be a positive int",
        ),
        (lambda: draw_memory(plt.figure(), 2, "GPT-5"), "model must be one of"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    plt.close("all")


def test_the_drawing_labels_every_strategy():
    fig = plt.figure()
    draw_memory(fig, world=4, model="tiny", models={"tiny": 1000})
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(SHARDED)
    assert fig.axes[0].get_title() == "tiny: 1,000 parameters, 4 processes"
    plt.close(fig)
