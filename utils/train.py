"""One small training loop, shared by every chapter that trains a model, and its
helpers.

The progress bar is `tqdm.auto`: a widget in Jupyter, plain text lines in a terminal or
CI log. Chapters train for a fixed number of steps so that "Restart & Run All" gives the
same numbers; `max_seconds` is only a safety bound.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils.checks import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_number,
    check_positive,
    check_tensor,
)


def check_targets(logits, targets, ignore_index: int = -100) -> torch.Tensor:
    """Class ids shaped like (..., V) logits without V: long, in [0, V) or
    `ignore_index`. Returns the mask of the positions that count."""
    check_tensor("logits", logits, floating=True)
    if targets.dtype != torch.long or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"targets must be long ids shaped like logits without the last "
            f"dimension {tuple(logits.shape[:-1])}, got {tuple(targets.shape)} "
            f"and dtype {targets.dtype}"
        )
    keep = targets != ignore_index  # (...)
    if not keep.any():
        raise ValueError(
            f"no targets to score: there are none, or every target is "
            f"ignore_index={ignore_index}"
        )
    V = logits.shape[-1]
    if (keep & ((targets < 0) | (targets >= V))).any():  # one check, no copy
        kept = targets[keep]
        raise ValueError(
            f"targets must be in [0, {V}) or ignore_index={ignore_index}, got "
            f"targets from {kept.min().item()} to {kept.max().item()}"
        )
    return keep


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy (nats) of (..., V) logits against (...) target ids.

    Works for classes (B, V) and for tokens (B, T, V); targets equal to `ignore_index`
    (padding) are left out of the mean.
    """
    check_targets(logits, targets, ignore_index)
    return F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), ignore_index=ignore_index
    )


@torch.no_grad()
def accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> float:
    """Fraction of positions whose most likely class is the target.

    Targets equal to `ignore_index` are left out.
    """
    keep = check_targets(logits, targets, ignore_index)
    check_finite("logits", logits)  # argmax would pick a NaN: a silent wrong score
    return (logits.argmax(-1) == targets)[keep].float().mean().item()


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """The loss of a classifier on a batch ``(inputs, labels)``: a `loss_fn` for
    :func:`train`."""
    inputs, labels = batch
    return cross_entropy(model(inputs), labels)


@torch.no_grad()
def held_out_accuracy(model: nn.Module, inputs, labels, batch_size: int = 500) -> float:
    """A classifier's accuracy on (inputs, labels), in eval mode and in batches; the
    model's mode is restored afterwards."""
    check_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    logits = torch.cat(
        [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    )
    model.train(was_training)
    return accuracy(logits, labels)


def count_parameters(module: nn.Module, kind: str = "all") -> int:
    """Number of parameters (tied weights count once); kind 'all', 'weight', 'bias'."""
    check_choice("kind", kind, ("all", "weight", "bias"))
    return sum(
        p.numel()
        for name, p in module.named_parameters()
        if kind == "all" or name.rsplit(".", 1)[-1].startswith(kind)
    )


@dataclass
class TrainConfig:
    steps: int = 500  # optimisation steps (an upper bound)
    lr: float = 3e-3  # AdamW's learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float | None = 1.0  # max global gradient norm, None for no clipping
    max_seconds: float | None = None  # wall-clock budget: stop early when reached
    eval_every: int = 100  # steps between calls of `evaluate`
    log_every: int = 10  # steps averaged into one logged training loss

    def __post_init__(self):
        check_int("steps", self.steps)
        check_positive("lr", self.lr)
        check_number("weight_decay", self.weight_decay, low=0)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        if self.max_seconds is not None:
            check_positive("max_seconds", self.max_seconds)
        check_int("eval_every", self.eval_every)
        check_int("log_every", self.log_every)


@dataclass
class History:
    step: list = field(default_factory=list)  # steps at which `loss` was logged
    loss: list = field(default_factory=list)  # training loss (mean since the last log)
    eval_step: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0

    def extend(self, later: "History") -> "History":
        """Append the history of a later run on the same model (a second phase of
        training), its steps counted on from this run's last one. Returns self."""
        if not isinstance(later, History):
            raise ValueError(f"later must be a History, got {type(later).__name__}")
        offset = self.steps_done
        self.step += [offset + step for step in later.step]
        self.loss += later.loss
        self.eval_step += [offset + step for step in later.eval_step]
        self.eval_loss += later.eval_loss
        self.seconds += later.seconds
        self.steps_done += later.steps_done
        return self


def train(
    model: nn.Module,
    batches: Iterator,
    loss_fn: Callable,
    config: TrainConfig | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> History:
    """Train `model` on `batches` with AdamW and return the loss history.

    `batches` yields whatever `loss_fn(model, batch)` needs; `loss_fn` returns a scalar
    loss. `evaluate(model)`, if given, returns a validation loss every
    `config.eval_every` steps (in eval mode, without gradients). Afterwards the model
    is in eval mode, ready to be used. `progress=False` hides the progress bar.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not hasattr(batches, "__next__"):
        raise ValueError(
            f"batches must be an iterator (e.g. endless_batches(...)), "
            f"got {type(batches).__name__}"
        )
    check_bool("progress", progress)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    history, running, n_running = History(), 0.0, 0
    start = time.perf_counter()
    model.train()
    bar = tqdm(
        range(1, config.steps + 1), desc=desc, mininterval=1.0, disable=not progress
    )
    for step in bar:
        batch = next(batches, None)
        if batch is None:
            raise ValueError(
                f"batches ran out at step {step} of {config.steps}; "
                "pass an endless iterator"
            )
        loss = loss_fn(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss)
            raise ValueError(f"loss_fn must return a scalar tensor, got {got}")
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss.item()} at step {step}; lower lr or clip gradients"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        running, n_running = running + loss.item(), n_running + 1
        if step % config.log_every == 0:
            history.step.append(step)
            history.loss.append(running / n_running)
            bar.set_postfix(loss=f"{running / n_running:.3f}")
            running, n_running = 0.0, 0
        if evaluate is not None and step % config.eval_every == 0:
            model.eval()
            with torch.no_grad():
                history.eval_step.append(step)
                history.eval_loss.append(float(evaluate(model)))
            model.train()
        history.steps_done = step
        if (
            config.max_seconds is not None
            and time.perf_counter() - start > config.max_seconds
        ):
            break
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
