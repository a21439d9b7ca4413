"""Copying a reference model's weights into ours: the one copier behind every
``from_hf`` and ``from_torch``.

A converter checks that the source is what it supports (:func:`check_source`,
:func:`check_supported`), builds our model with :func:`build_like` (on the
source's dtype and device, in its train/eval mode, without touching the global
random state) and copies each tensor with :func:`copy_weights`, under the name a
table gives it there (:func:`hf_name`).
"""

from collections.abc import Callable

import torch
import torch.nn as nn


def check_source(model, name: str) -> None:
    """The source must be a Hugging Face model of the class called `name`."""
    if type(model).__name__ != name:
        raise ValueError(f"from_hf needs a {name}, got {type(model).__name__}")


def check_supported(settings: dict, ours: str) -> None:
    """Each setting ``{key: (the source's value, the one we support)}`` must match;
    `ours` says in words what our model has."""
    for key, (got, supported) in settings.items():
        if got != supported:
            raise ValueError(
                f"from_hf supports {key}={supported!r} ({ours}), got {key}={got!r}"
            )


def build_like(build: Callable[[], nn.Module], like: torch.Tensor, training: bool):
    """Our model from ``build()``, with the dtype and device of the source's tensor
    `like` and in its mode. The random initial weights are all replaced, so the
    global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        ours = build()
    return ours.to(dtype=like.dtype, device=like.device).train(training)


def copy_weights(
    ours: nn.Module,
    theirs: dict,
    name_of: Callable[[str], str],
    skip: tuple = (),
    transpose: tuple = (),
) -> nn.Module:
    """Copy ``theirs[name_of(name)]`` into each of our tensors, except those in
    `skip` (tied weights), transposed where our name ends with one of `transpose`."""
    with torch.no_grad():
        for name, p in ours.state_dict().items():
            if name in skip:
                continue
            source = name_of(name)
            if source not in theirs:
                raise ValueError(f"the source has no tensor {source!r} (ours: {name})")
            w = theirs[source].t() if name.endswith(transpose) else theirs[source]
            if w.shape != p.shape:
                raise ValueError(
                    f"{source} has shape {tuple(w.shape)}, our {name} has "
                    f"{tuple(p.shape)}"
                )
            p.copy_(w)
    return ours


def hf_name(ours: str, table: dict, layer: str) -> str:
    """The source's name for one of our tensors. `table` lists (theirs, ours) name
    pairs: ``table["layer"]`` inside layer i, whose prefix there is
    ``layer.format(i)``, and ``table["model"]`` outside the layers."""
    if ours.startswith("layers."):
        _, i, rest = ours.split(".", 2)
        for theirs, mine in table["layer"]:
            if rest.startswith(mine + "."):
                return layer.format(i) + theirs + rest[len(mine) :]
    for theirs, mine in table["model"]:
        if ours == mine or ours.startswith(mine + "."):
            return theirs + ours[len(mine) :]
    raise ValueError(f"no Hugging Face name for {ours!r}")
