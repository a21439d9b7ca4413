r"""Train chapter 7's GPT on several processes with DistributedDataParallel (DDP).

Every process holds a full copy of the model. Each step, all of them read the same
*global* batch and each takes its own rows of it (rank r of W: rows r, r + W, r + 2W,
...); each computes the mean loss on its rows and its gradients, and DDP averages the
gradients over the processes (an all-reduce) during the backward pass. Every process
then holds the gradient of the whole global batch and takes the same AdamW step: the
run is the one-process run, with each step's work split W ways.

On one machine, with 2 processes (CPU: the gloo backend; GPUs: nccl, one per process)::

    torchrun --standalone --nproc-per-node=2 scripts/train_ddp.py --steps 50 --check

On two machines, run the same command on each (HOST is the first machine's address;
the rendezvous gives every process its RANK, WORLD_SIZE and LOCAL_RANK)::

    torchrun --nnodes=2 --nproc-per-node=2 --rdzv-id=gpt --rdzv-backend=c10d \
        --rdzv-endpoint=HOST:29500 scripts/train_ddp.py

(with ``--rdzv-backend=static``, give each machine ``--node-rank=0`` or ``1`` and
``--master-addr=HOST``). ``python scripts/train_ddp.py`` runs it as one process.

``--check`` re-runs the same steps in one process without DDP (each batch's rows in the
processes' groups, their gradients summed), compares the final parameters and prints
the largest difference as its last line; the exit status is 1 above 1e-5.
``--checkpoint DIR`` saves the weights (safetensors), the optimizer state and the step
(on several machines, DIR must be shared to --resume); ``--resume`` continues from
there as if the run had never stopped: batch k is drawn from a generator seeded with
(seed, k), not by replaying the stream.
"""

import argparse
import copy
import gc
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_model, save_model
from torch.nn.parallel import DistributedDataParallel as DDP

from utils.checks import check_divisible, check_int, check_positive
from utils.data import load_corpus, random_chunks
from utils.env import set_seed
from utils.gpt import GPT, GPTConfig
from utils.tokenizers import CharTokenizer
from utils.train import count_parameters

GRAD_CLIP = 1.0  # max global gradient norm, as in chapter 7
TOLERANCE = 1e-5  # largest parameter difference --check accepts


@dataclass
class Config:
    """What fixes the run's numbers: the model, the batches and the optimizer (a
    checkpoint's too)."""

    model: GPTConfig  # chapter 7's, from the command line's defaults
    global_batch: int = 32  # sequences per step, over all processes together
    lr: float = 3e-3  # AdamW's learning rate
    seed: int = 0  # initial weights and batches

    def __post_init__(self):
        if not isinstance(self.model, GPTConfig):
            raise ValueError(f"model must be a GPTConfig, got {self.model!r}")
        check_int("global_batch", self.global_batch)
        check_positive("lr", self.lr)
        check_int("seed", self.seed, minimum=0)


def read_corpus(path: str | None = None) -> str:
    """The text to train on: a UTF-8 file, or the course corpus (the Bible)."""
    if path is None:
        return load_corpus()
    if not Path(path).is_file():
        raise ValueError(f"corpus file not found: {path}")
    return Path(path).read_text(encoding="utf-8")


def global_batch(step: int, ids: torch.Tensor, config: Config):
    """Batch number `step`: (x, y), each (global_batch, block_size), y shifted by one.

    Its generator is seeded from (seed, step), so every process draws the same batch,
    and a resumed run draws batch k without drawing batches 1..k-1 first.
    """
    seed = config.seed * 2**32 + step  # one seed per (seed, step)
    block_size = config.model.block_size
    return next(random_chunks(ids, config.global_batch, block_size, seed))


def new_model(config: Config, device: torch.device):
    """A GPT with the seed's initial weights (the same in every process), and AdamW."""
    set_seed(config.seed)
    model = GPT(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    return model, optimizer


def train_step(model, optimizer, x, y, micro_batches: int = 1) -> torch.Tensor:
    """One AdamW step on the rows x, y (B, T); returns their mean loss.

    With DDP, backward() also averages the gradients over the processes. With
    `micro_batches` M, the rows go through the model in M groups (rows i, i + M, ...)
    whose gradients add up: gradient accumulation, one batch in M pieces.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=x.device)
    for i in range(micro_batches):
        part = model(x[i::micro_batches], y[i::micro_batches])[1] / micro_batches
        part.backward()  # DDP: all-reduces (averages) the gradients as they come
        loss += part.detach()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    return loss


def train(
    model,
    optimizer,
    ids: torch.Tensor,
    config: Config,
    steps: int,
    start: int = 0,
    *,
    micro_batches: int = 1,
    log_every: int = 0,
    checkpoint: str | None = None,
    save_every: int | None = None,
) -> dict[int, float]:
    """Take steps start + 1 .. `steps`; return the global batch's loss at logged steps.

    `model` is a DDP-wrapped GPT (each process takes its rows of every batch) or a plain
    GPT (one process, the whole batch, in `micro_batches` pieces). Process 0 prints a
    line every `log_every` steps and saves the run to the `checkpoint` directory every
    `save_every` steps and at the end.
    """
    distributed = isinstance(model, DDP)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = next(model.parameters()).device
    tokens_per_step = config.global_batch * config.model.block_size
    losses, clock, last_logged = {}, time.perf_counter(), start
    for step in range(start + 1, steps + 1):
        x, y = global_batch(step, ids, config)  # (B, T) each, the same everywhere
        x, y = x[rank::world].to(device), y[rank::world].to(device)  # (B / W, T)
        loss = train_step(model, optimizer, x, y, micro_batches)
        if step == steps or (log_every and step % log_every == 0):
            if distributed:
                dist.all_reduce(loss)  # the sum of the processes' mean losses
            losses[step] = loss.item() / world  # the global batch's mean loss
        if rank == 0 and log_every and step in losses:
            seconds, clock = time.perf_counter() - clock, time.perf_counter()
            speed = (step - last_logged) * tokens_per_step / seconds
            last_logged = step
            line = f"step {step:5d}  loss {losses[step]:.6f}  tokens/s {speed:8,.0f}"
            print(line, flush=True)
        if rank == 0 and checkpoint is not None:
            if step == steps or (save_every and step % save_every == 0):
                gpt = model.module if distributed else model
                save_checkpoint(checkpoint, gpt, optimizer, step, config)
    return losses


def save_checkpoint(directory, model: GPT, optimizer, step: int, config: Config):
    """Weights (safetensors), optimizer state (torch.save of a plain dict), step and
    config (JSON): all three load without unpickling arbitrary objects."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, directory / "model.safetensors")  # stores the tied weight once
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    run = {"step": step, "config": _flat(config)}
    (directory / "run.json").write_text(json.dumps(run, indent=1))


def _flat(config: Config) -> dict:
    """The config as one flat dict, the model's fields first."""
    run = asdict(config)
    return {**run.pop("model"), **run}


def load_checkpoint(directory, model: GPT, optimizer, config: Config) -> int:
    """Load a checkpoint of the same config into `model` and `optimizer`; its step."""
    directory = Path(directory)
    if not (directory / "run.json").is_file():
        raise ValueError(f"no checkpoint to resume from in {directory}")
    run = json.loads((directory / "run.json").read_text())
    ours = _flat(config)
    different = [
        f"{name}={value} (checkpoint) vs {ours.get(name)} (now)"
        for name, value in run["config"].items()
        if ours.get(name) != value
    ]
    if different:
        raise ValueError(
            f"the checkpoint in {directory} is of another config: "
            + ", ".join(different)
        )
    device = next(model.parameters()).device
    load_model(model, directory / "model.safetensors", device=str(device))
    state = torch.load(
        directory / "optimizer.pt", map_location=device, weights_only=True
    )
    optimizer.load_state_dict(state)
    return run["step"]


def allreduce_seconds(model, repeats: int = 10) -> float:
    """Seconds one all-reduce of every gradient takes: a flat tensor of all parameters.

    It is the communication DDP does each step, timed alone; DDP splits it into buckets
    and overlaps them with the backward pass, so a step pays at most about this.
    """
    flat = torch.zeros(count_parameters(model), device=next(model.parameters()).device)
    dist.all_reduce(flat)  # warm up (the first call sets up connections)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(flat)
    flat.sum().item()  # wait for the last one (CUDA runs them asynchronously)
    return (time.perf_counter() - start) / repeats


def single_process_reference(
    config, ids, start_state, steps, start=0, micro_batches=1
) -> GPT:
    """The same steps in one process, without DDP, each on the whole global batch.

    `start_state` holds the "model" and "optimizer" state dicts to start from. With
    `micro_batches` = W, the batch goes through in W pieces, the W processes' rows, and
    their gradients are summed: what DDP computes, in the same order. With 1, one
    forward pass takes the whole batch: the same gradient up to float32 rounding, but
    AdamW divides each gradient by its running size, so on near-zero gradients that
    rounding becomes a visible step (about 5e-5 after 20 steps of the defaults).
    """
    device = next(iter(start_state["model"].values())).device
    model, optimizer = new_model(config, device)
    model.load_state_dict(start_state["model"])
    optimizer.load_state_dict(start_state["optimizer"])
    train(model, optimizer, ids, config, steps, start, micro_batches=micro_batches)
    return model


def compare_parameters(model: GPT, reference: GPT, tolerance: float = TOLERANCE):
    """The largest absolute difference between the two models' parameters, and whether
    it is at most `tolerance`."""
    largest = max(
        (p - q).abs().max().item()
        for p, q in zip(model.parameters(), reference.parameters())
    )
    return largest, largest <= tolerance  # False for NaN too


def check(model, config, ids, start_state, steps, start, world) -> bool:
    """Compare `model`, trained with DDP by `world` processes, with the same steps in
    one process; print the largest difference as the last line; True if small."""
    if world > 1:  # for information: the whole batch in one forward pass
        whole = single_process_reference(config, ids, start_state, steps, start)
        largest, _ = compare_parameters(model, whole)
        print(
            f"one forward pass per batch: largest parameter difference {largest:.3g} "
            "(float32 rounding, grown by AdamW)"
        )
    reference = single_process_reference(
        config, ids, start_state, steps, start, micro_batches=world
    )
    largest, passed = compare_parameters(model, reference, TOLERANCE)
    print(f"check: largest parameter difference {largest:.3g}", flush=True)
    return passed


def local_device() -> torch.device:
    """GPU number LOCAL_RANK (set by torchrun) if there are GPUs, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    return device


def join_process_group(device: torch.device) -> None:
    """Join the group torchrun describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); without torchrun, a group of one process.

    The backend moves the tensors: nccl between GPUs, gloo between CPUs.
    """
    backend = "nccl" if device.type == "cuda" else "gloo"
    device_id = device if device.type == "cuda" else None
    if "RANK" in os.environ:  # launched by torchrun
        dist.init_process_group(backend, device_id=device_id)
    else:  # plain `python scripts/train_ddp.py`
        store = dist.HashStore()  # in memory: nobody else to meet
        dist.init_process_group(
            backend, store=store, rank=0, world_size=1, device_id=device_id
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--steps", type=int, default=200, help="train up to this step")
    add("--global-batch", type=int, default=32, help="sequences per step, all ranks")
    add("--block-size", type=int, default=64, help="tokens per sequence")
    add("--num-layers", "--n-layer", type=int, default=3)
    add("--num-heads", "--n-head", type=int, default=4)
    add("--d-model", type=int, default=96)
    add("--lr", type=float, default=3e-3)
    add("--seed", type=int, default=0)
    add("--corpus", help="a UTF-8 text file to train on (default: the course corpus)")
    add("--threads", type=int, help="per process (default: cores / processes)")
    add("--log-every", type=int, default=10)
    add("--checkpoint", help="directory to save the run to (and --resume from)")
    add("--save-every", type=int, default=50, help="steps between checkpoints")
    add("--resume", action="store_true", help="continue from --checkpoint")
    add("--check", action="store_true", help="compare with one process without DDP")
    return parser.parse_args(argv)


def build(args, world: int):
    """Check the command line; the tokens, the config, the model, the optimizer and
    the step to start from (a checkpoint's with --resume)."""
    check_divisible("global_batch", args.global_batch, "world_size", world)
    for name in ("steps", "log_every", "save_every"):
        check_int(name, getattr(args, name))
    if args.threads is not None:
        check_int("threads", args.threads)
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint DIR")
    text = read_corpus(args.corpus)
    tokenizer = CharTokenizer(text)
    ids = tokenizer.encode(text)  # (N,)
    model_config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=args.block_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        d_model=args.d_model,
    )
    config = Config(model_config, args.global_batch, args.lr, args.seed)
    if len(ids) <= args.block_size:
        raise ValueError(
            f"the corpus has {len(ids)} characters, not more than "
            f"block_size={args.block_size}"
        )
    model, optimizer = new_model(config, local_device())
    start = 0
    if args.resume:
        start = load_checkpoint(args.checkpoint, model, optimizer, config)
    if start >= args.steps:
        raise ValueError(f"the checkpoint is at step {start}, not before --steps")
    return ids, config, model, optimizer, start


def report(model, args, config, losses, seconds, start, world, threads) -> dict:
    """One line of JSON for the chapter: speed, all-reduce time, final loss."""
    tokens = (args.steps - start) * config.global_batch * config.model.block_size
    return {
        "world_size": world,
        "threads": threads,
        "start": start,
        "steps": args.steps,
        "tokens_per_s": tokens / seconds,  # all processes'
        "allreduce_s_per_step": allreduce_seconds(model),
        "final_loss": losses[args.steps],
        "parameters": count_parameters(model),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", 1))  # set by torchrun
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))  # on this machine
    threads = args.threads or max(1, (os.cpu_count() or 1) // local_world)
    try:  # a bad configuration: a clear message and exit status 1, before training
        ids, config, model, optimizer, start = build(args, world)
    except ValueError as error:
        raise SystemExit(f"train_ddp.py: error: {error}") from None

    torch.set_num_threads(threads)  # the processes on a machine share its cores
    start_state = None
    if args.check:  # what the single-process reference starts from
        start_state = copy.deepcopy(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        )
    join_process_group(next(model.parameters()).device)
    ddp = DDP(model)  # broadcasts process 0's weights (the same here) to the others
    clock = time.perf_counter()
    losses = train(
        ddp,
        optimizer,
        ids,
        config,
        args.steps,
        start,
        log_every=args.log_every,
        checkpoint=args.checkpoint,
        save_every=args.save_every,
    )
    seconds = time.perf_counter() - clock
    summary = report(model, args, config, losses, seconds, start, world, threads)
    passed = True
    if dist.get_rank() == 0:
        print(json.dumps(summary), flush=True)
        if args.check:
            passed = check(model, config, ids, start_state, args.steps, start, world)
    dist.barrier()  # the other processes wait for the check
    # DDP's reducer holds the process group: free it while the group is still
    # registered, so that the gloo group is destroyed by destroy_process_group (which
    # releases the GIL) and not by the reducer's destructor (which holds it, and can
    # deadlock with a gloo worker thread that needs the GIL to free a tensor).
    del ddp
    gc.collect()  # in case DDP's hooks left a reference cycle
    dist.destroy_process_group()
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
