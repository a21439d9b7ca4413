"""Plotting helpers: one consistent style for heatmaps, attention maps and small
multiples.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

CMAP = "viridis"  # sequential values: weights, gradients, activations
DIVERGING_CMAP = "RdBu_r"  # signed values: encodings, weight matrices

# The course palette (Okabe-Ito, safe for colour-blind readers): one role, one colour,
# in every figure and diagram
QUERY = "#0072B2"  # blue
KEY = "#E69F00"  # orange
VALUE = "#009E73"  # bluish green
ENCODER = "#56B4E9"  # sky blue (fills)
DECODER = "#D55E00"  # vermillion (fills)
STATE = "#CC79A7"  # reddish purple: recurrent state, and a third category
MASKED = "#DDDDDD"  # light grey, hatched: forbidden or hidden positions
EDGE = "#999999"  # outlines of masked boxes
TEXT = "#333333"  # text and arrows


def use_course_style():
    """Matplotlib defaults used throughout the book."""
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "figure.figsize": (6, 3.5),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": False,
            "font.size": 10,
            "axes.titlesize": 10,
            "image.cmap": CMAP,
        }
    )


def _as_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().float().numpy()
    array = np.asarray(values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(array.shape)}")
    return array


def heatmap(
    ax,
    values,
    title=None,
    xlabel=None,
    ylabel=None,
    cmap=CMAP,
    colorbar=True,
    vmin=None,
    vmax=None,
    xticklabels=None,
    yticklabels=None,
):
    """Draw a 2-D matrix on `ax` and return the image."""
    array = _as_array(values)
    image = ax.imshow(
        array, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest"
    )
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    for labels, set_ticks, set_labels, size in (
        (xticklabels, ax.set_xticks, ax.set_xticklabels, array.shape[1]),
        (yticklabels, ax.set_yticks, ax.set_yticklabels, array.shape[0]),
    ):
        if labels is not None:
            if len(labels) != size:
                raise ValueError(
                    f"got {len(labels)} tick labels for an axis of length {size}"
                )
            set_ticks(range(size))
            set_labels(labels, rotation=90 if set_ticks == ax.set_xticks else 0)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return image


def attention_map(
    ax, weights, queries=None, keys=None, title="attention weights", colorbar=True
):
    """Draw attention weights (rows: queries, columns: keys; each row sums to 1)."""
    return heatmap(
        ax,
        weights,
        title=title,
        xlabel="key",
        ylabel="query",
        vmin=0.0,
        vmax=1.0,
        xticklabels=keys,
        yticklabels=queries,
        colorbar=colorbar,
    )


def image(
    ax,
    values,
    title=None,
    cmap="gray_r",
    overlay=None,
    overlay_cmap="magma",
    alpha=0.6,
    overlay_range=(None, None),
):
    """Show an image (e.g. a digit), optionally under a heat overlay (a gradient map).

    NaN overlay pixels stay transparent; `overlay_range` fixes the colour scale across
    panels.
    """
    ax.imshow(_as_array(values), cmap=cmap, interpolation="nearest")
    if overlay is not None:
        vmin, vmax = overlay_range
        ax.imshow(
            _as_array(overlay),
            cmap=overlay_cmap,
            alpha=alpha,
            interpolation="nearest",
            vmin=vmin,
            vmax=vmax,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)


def grid(n: int, ncols: int = 4, size: float = 2.6, **subplot_kw):
    """A figure with `n` axes in rows of `ncols` (extra ones hidden): (fig, axes)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got n={n}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows * 0.9),
        squeeze=False,
        subplot_kw=subplot_kw,
    )
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]
