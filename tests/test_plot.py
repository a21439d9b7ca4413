"""utils.plot: heatmaps, attention maps, images and grids."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils import plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_heatmap_and_attention_map():
    fig, (a, b) = plt.subplots(1, 2)
    image = plot.heatmap(
        a,
        torch.arange(6.0).reshape(2, 3),
        xticklabels=list("abc"),
        yticklabels=list("xy"),
        title="t",
        xlabel="x",
        ylabel="y",
    )
    assert image.get_array().shape == (2, 3)
    assert [t.get_text() for t in a.get_xticklabels()] == list("abc")
    assert a.get_title() == "t" and a.get_xlabel() == "x" and a.get_ylabel() == "y"
    weights = torch.softmax(torch.randn(3, 3), -1).requires_grad_(
        True
    )  # tensors with grad are fine
    image = plot.attention_map(b, weights)
    assert b.get_xlabel() == "key" and b.get_ylabel() == "query"
    assert image.get_clim() == (0.0, 1.0)
    assert len(fig.axes) == 4  # two colorbars


def test_heatmap_without_colorbar_and_with_arrays():
    fig, ax = plt.subplots()
    plot.heatmap(ax, np.eye(3), colorbar=False)
    assert len(fig.axes) == 1


def test_plot_helpers_reject_bad_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(ax, torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="tick labels"):
        plot.heatmap(ax, torch.zeros(2, 3), xticklabels=["a"])
    with pytest.raises(ValueError, match="tick labels"):
        plot.heatmap(ax, torch.zeros(2, 3), yticklabels=["a", "b", "c"])
    with pytest.raises(ValueError, match="n must be"):
        plot.grid(0)


def test_image_with_an_overlay():
    fig, ax = plt.subplots()
    overlay = torch.full((4, 4), float("nan"))
    overlay[1, 1] = 0.5
    plot.image(
        ax, torch.rand(4, 4), title="digit", overlay=overlay, overlay_range=(0.0, 1.0)
    )
    assert len(ax.images) == 2 and ax.images[1].get_clim() == (0.0, 1.0)
    assert ax.get_title() == "digit" and list(ax.get_xticks()) == []


def test_grid_hides_the_spare_axes():
    fig, axes = plot.grid(5, ncols=3)
    assert len(axes) == 5 and len(fig.axes) == 6 and not fig.axes[5].get_visible()
    fig, axes = plot.grid(2, ncols=4)  # fewer panels than columns: one row of 2
    assert len(fig.axes) == 2


def test_use_course_style(monkeypatch):
    monkeypatch.setattr(
        plt, "rcParams", plt.rcParams.copy()
    )  # leave the global style as it was
    plot.use_course_style()
    assert plt.rcParams["image.cmap"] == plot.CMAP and plt.rcParams["figure.dpi"] == 100


def test_the_course_style_is_the_one_the_book_documents(monkeypatch):
    monkeypatch.setattr(plt, "rcParams", plt.rcParams.copy())
    plot.use_course_style()
    style = {key: plt.rcParams[key] for key in (
        "figure.dpi", "savefig.dpi", "figure.figsize", "axes.spines.top",
        "axes.spines.right", "axes.grid", "font.size", "axes.titlesize")}
    assert style == {"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": [6, 3.5],
                     "axes.spines.top": False, "axes.spines.right": False,
                     "axes.grid": False, "font.size": 10, "axes.titlesize": 10}


def test_grid_sizes_the_figure_and_passes_the_axes_options():
    fig, axes = plot.grid(5, ncols=3, size=2.0)
    assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 3.6))  # 2 rows, 0.9 high
    fig, axes = plot.grid(1, projection="polar")  # one panel is still a list
    assert len(axes) == 1 and axes[0].name == "polar" and axes[0].get_visible()
    with pytest.raises(ValueError, match="n must be >= 1, got n=0"):
        plot.grid(0)


def test_heatmap_draws_cells_as_they_are_with_labels_turned_for_room():
    fig, ax = plt.subplots(figsize=(4, 4))
    image = plot.heatmap(ax, [[1, 2, 3], [4, 5, 6]], xticklabels=list("abc"),
                         yticklabels=list("xy"), cmap="magma")
    assert image.get_array().dtype == float  # ints are drawn as numbers
    assert image.get_cmap().name == "magma" and image.get_interpolation() == "nearest"
    assert ax.get_aspect() == "auto"  # cells fill the panel, whatever its shape
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {90.0}
    assert {t.get_rotation() for t in ax.get_yticklabels()} == {0.0}
    colorbar = fig.axes[1]  # a narrow bar beside this axes, drawn from this image
    assert image.colorbar is not None and image.colorbar.ax is colorbar
    assert colorbar.get_position().width < 0.1 * ax.get_position().width + 0.05
    assert colorbar.get_position().x0 > ax.get_position().x1  # to its right
    assert plot.heatmap(plt.subplots()[1], [[0.5]]).get_cmap().name == plot.CMAP


def test_attention_map_labels_queries_and_keys():
    fig, ax = plt.subplots()
    plot.attention_map(ax, torch.full((2, 3), 1 / 3), queries=["q1", "q2"],
                       keys=["k1", "k2", "k3"], colorbar=False)
    assert ax.get_title() == "attention weights" and len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["q1", "q2"]


def test_image_draws_the_overlay_as_asked_without_a_frame():
    fig, ax = plt.subplots()
    overlay = torch.rand(4, 4)
    plot.image(ax, torch.rand(4, 4), overlay=overlay, overlay_cmap="viridis", alpha=0.3)
    digit, heat = ax.images
    assert digit.get_cmap().name == "gray_r" and digit.get_interpolation() == "nearest"
    assert heat.get_cmap().name == "viridis" and heat.get_alpha() == 0.3
    assert heat.get_interpolation() == "nearest"
    assert not any(spine.get_visible() for spine in ax.spines.values())
    fig, ax = plt.subplots()
    plot.image(ax, torch.rand(4, 4), cmap="Blues", overlay=overlay)
    assert ax.images[0].get_cmap().name == "Blues"
    assert ax.images[1].get_cmap().name == "magma" and ax.images[1].get_alpha() == 0.6


def test_grid_defaults_to_rows_of_four_panels_of_2_6_inches():
    fig, axes = plot.grid(8)
    assert tuple(fig.get_size_inches()) == pytest.approx((4 * 2.6, 2 * 2.6 * 0.9))
