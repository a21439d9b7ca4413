"""The appendix's arithmetic of data parallelism: what each process keeps in memory.

Training with AdamW in float32 keeps, per parameter, its weight (4 bytes), its gradient
(4) and Adam's two moments (8): 16 bytes. DDP replicates all of it in every process.
ZeRO (Rajbhandari et al., 2020) shards it over the W processes in three stages: the
optimizer state (stage 1), then the gradients too (stage 2), then the weights too
(stage 3, which is what PyTorch's FSDP does). Left out: DDP's gradient buckets (a
second copy of the gradients unless `gradient_as_bucket_view=True`), the layer FSDP
has gathered, and the activations, which shrink with each process's share of the batch.
"""

from dataclasses import dataclass

import torch

from utils.checks import check_int
from utils.gpt import GPT, GPTConfig
from utils.plot import KEY, QUERY, VALUE
from utils.train import count_parameters

BYTES = {"weights": 4, "gradients": 4, "optimizer": 8}  # per parameter, fp32 AdamW
SHARDED = {  # which of them each strategy splits over the processes
    "DDP": (),
    "ZeRO-1": ("optimizer",),
    "ZeRO-2": ("optimizer", "gradients"),
    "FSDP (ZeRO-3)": ("optimizer", "gradients", "weights"),
}
GPT2_SMALL = GPTConfig(
    vocab_size=50257, block_size=1024, num_layers=12, num_heads=12, d_model=768
)


@dataclass
class Memory:
    """Bytes one process keeps for each kind of state."""

    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def memory_per_process(parameters: int, world: int, strategy: str) -> Memory:
    """Bytes per process for `parameters` parameters, `world` processes, `strategy`."""
    check_int("parameters", parameters)
    check_int("world", world)
    if strategy not in SHARDED:
        raise ValueError(f"strategy must be one of {list(SHARDED)}, got {strategy!r}")
    return Memory(
        **{
            kind: parameters * size / (world if kind in SHARDED[strategy] else 1)
            for kind, size in BYTES.items()
        }
    )


def parameters_of(config: GPTConfig) -> int:
    """The parameter count of a GPT, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        return count_parameters(GPT(config))


def ring_allreduce_bytes(parameters: int, world: int) -> float:
    """Bytes each process sends in one ring all-reduce of float32 gradients:
    2 (W - 1) / W of the gradient (a reduce-scatter, then an all-gather)."""
    check_int("world", world)
    return 2 * (world - 1) / world * 4 * check_int("parameters", parameters)


def draw_memory(fig, world: int = 2, model: str = "GPT-2 small", models=None):
    """Stacked bars: each strategy's bytes per process, for `world` processes."""
    models = models or {"GPT-2 small": parameters_of(GPT2_SMALL)}
    if model not in models:
        raise ValueError(f"model must be one of {list(models)}, got {model!r}")
    parameters = models[model]
    ax = fig.subplots()
    colours = {"weights": QUERY, "gradients": KEY, "optimizer": VALUE}
    names = list(SHARDED)
    bottom = [0.0] * len(names)
    for kind, colour in colours.items():
        heights = [
            getattr(memory_per_process(parameters, world, s), kind) / 2**20
            for s in names
        ]
        ax.barh(names, heights, left=bottom, color=colour, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights)]
    for y, total in enumerate(bottom):
        ax.text(total, y, f" {total:,.0f} MiB", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(bottom) * 1.25)
    ax.set(
        xlabel="MiB per process (activations not counted)",
        title=f"{model}: {parameters:,} parameters, {world} processes",
    )
    ax.legend(loc="lower right", fontsize=8)
