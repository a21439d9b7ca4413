"""One small training loop, shared by every chapter that trains a model.

The progress bar is `tqdm.auto`: a widget in Jupyter, plain text lines in a terminal or CI log.
Chapters train for a fixed number of steps so that "Restart & Run All" gives the same numbers;
`max_seconds` is only a safety bound.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    steps: int = 500              # optimisation steps (an upper bound)
    lr: float = 3e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # max global gradient norm, None for no clipping
    max_seconds: float | None = None  # wall-clock budget; training stops early when reached
    eval_every: int = 100
    log_every: int = 10

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got steps={self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got lr={self.lr}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got grad_clip={self.grad_clip}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0 or None, got max_seconds={self.max_seconds}")
        if self.eval_every < 1 or self.log_every < 1:
            raise ValueError("eval_every and log_every must be >= 1")


@dataclass
class History:
    step: list = field(default_factory=list)        # steps at which `loss` was logged
    loss: list = field(default_factory=list)        # training loss (mean since the last log)
    eval_step: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0


def train(model: torch.nn.Module,
          batches: Iterator,
          loss_fn: Callable,
          config: TrainConfig | None = None,
          evaluate: Callable[[torch.nn.Module], float] | None = None,
          desc: str = "train") -> History:
    """Train `model` on `batches` with AdamW and return the loss history.

    `batches` yields whatever `loss_fn(model, batch)` needs; `loss_fn` returns a scalar loss.
    `evaluate(model)`, if given, returns a validation loss every `config.eval_every` steps.
    """
    config = TrainConfig() if config is None else config
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history, running, n_running = History(), 0.0, 0
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(1, config.steps + 1), desc=desc, mininterval=1.0)
    for step in bar:
        loss = loss_fn(model, next(batches))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or clip gradients")
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
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            break
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
