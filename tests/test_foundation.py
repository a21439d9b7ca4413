"""Unit tests of the foundation modules: env, source, train, plot, widgets, data."""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch

from utils import data, env, plot, source, train
from utils.widgets import Experiment


# --- env ---------------------------------------------------------------------------------

def test_set_seed_makes_torch_repeatable():
    env.set_seed(123)
    a = torch.randn(5)
    env.set_seed(123)
    assert torch.equal(a, torch.randn(5))


def test_set_seed_seeds_numpy_and_python_too():
    import random

    import numpy as np
    env.set_seed(7)
    first = (random.random(), np.random.rand())
    env.set_seed(7)
    assert (random.random(), np.random.rand()) == first


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_set_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        env.set_seed(seed)


def test_get_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.get_device().type == expected
    assert env.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        env.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            env.get_device("cuda")


def test_limit_threads():
    assert env.limit_threads(1) == 1 and torch.get_num_threads() == 1
    env.limit_threads(2)
    with pytest.raises(ValueError, match="n must be"):
        env.limit_threads(0)


# --- source ------------------------------------------------------------------------------

def test_show_source_is_a_python_block_naming_the_object():
    text = source.show_source(env.set_seed).data
    assert text.startswith("```python\n# utils.env.set_seed\n")
    assert "def set_seed" in text and text.endswith("```")


def test_show_source_of_a_class_and_a_module():
    assert "class TrainConfig" in source.show_source(train.TrainConfig).data
    assert "def train(" in source.show_source(train).data


def test_show_source_rejects_non_code():
    with pytest.raises(ValueError, match="int"):
        source.show_source(3)


# --- train -------------------------------------------------------------------------------

def _regression_batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-3.0]])
    while True:
        x = torch.randn(32, 2, generator=g)
        yield x, x @ w + 0.5


def _mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def test_train_reduces_the_loss_and_records_history():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    history = train.train(model, _regression_batches(), _mse,
                          train.TrainConfig(steps=200, lr=0.05, log_every=20, eval_every=50),
                          evaluate=lambda m: _mse(m, next(_regression_batches(1))))
    assert history.steps_done == 200
    assert history.step == list(range(20, 201, 20))
    assert history.eval_step == [50, 100, 150, 200]
    assert history.loss[-1] < 0.01 * history.loss[0]
    assert history.eval_loss[-1] < 1e-2
    assert not model.training


def test_train_is_deterministic_given_the_seed():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        losses.append(train.train(model, _regression_batches(), _mse, train.TrainConfig(steps=30)).loss)
    assert losses[0] == losses[1]


def test_train_stops_on_a_non_finite_loss():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="step 1"):
        train.train(model, _regression_batches(), lambda m, b: m(b[0]).sum() * float("nan"),
                    train.TrainConfig(steps=5))


@pytest.mark.parametrize("kwargs, name", [({"steps": 0}, "steps"), ({"lr": 0}, "lr"),
                                          ({"grad_clip": -1.0}, "grad_clip"),
                                          ({"max_seconds": 0}, "max_seconds")])
def test_train_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train.TrainConfig(**kwargs)


# --- plot --------------------------------------------------------------------------------

def test_heatmap_and_attention_map():
    fig, (a, b) = plt.subplots(1, 2)
    image = plot.heatmap(a, torch.arange(6.0).reshape(2, 3), xticklabels=list("abc"), yticklabels=list("xy"))
    assert image.get_array().shape == (2, 3)
    plot.attention_map(b, torch.softmax(torch.randn(3, 3), -1))
    assert b.get_xlabel() == "key" and b.get_ylabel() == "query"
    plt.close(fig)


def test_plot_helpers_reject_bad_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(ax, torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="tick labels"):
        plot.heatmap(ax, torch.zeros(2, 3), xticklabels=["a"])
    with pytest.raises(ValueError, match="n must be"):
        plot.grid(0)
    plt.close(fig)


def test_grid_hides_the_spare_axes():
    fig, axes = plot.grid(5, ncols=3)
    assert len(axes) == 5 and len(fig.axes) == 6 and not fig.axes[5].get_visible()
    plt.close(fig)


# --- widgets -----------------------------------------------------------------------------

def _draw(fig, size, flip):
    ax = fig.subplots()
    ax.plot(range(size), range(size)[::-1] if flip else range(size))
    if size == 4:
        raise ValueError("size 4 is not allowed")


def _experiment():
    return Experiment(_draw, size=widgets.IntSlider(value=2, min=2, max=5),
                      flip=widgets.Dropdown(options=[("no", False), ("yes", True)], value=False))


def test_experiment_widget_draws_the_initial_setting_and_redraws():
    experiment = _experiment()
    box = experiment.widget()
    controls, output = box.children
    assert [c.description for c in controls.children] == ["size", "flip"]
    assert experiment.last_draw_seconds is not None
    experiment.controls["size"].value = 3
    assert experiment.setting() == {"size": 3, "flip": False}
    assert all(not c.continuous_update for c in controls.children if hasattr(c, "continuous_update"))


def test_experiment_sweep_draws_one_panel_per_value():
    experiment = _experiment()
    fig = experiment.sweep("flip")
    assert [s.get_suptitle() for s in fig.subfigs] == ["flip = False", "flip = True"]
    fig = experiment.sweep("size", values=[2, 3, 5], ncols=2)
    assert len([s for s in fig.subfigs if s.axes]) == 3
    plt.close("all")


def test_experiment_rejects_bad_controls_and_settings():
    with pytest.raises(ValueError, match="at least one control"):
        Experiment(_draw)
    with pytest.raises(ValueError, match="control 'size'"):
        Experiment(_draw, size=3)
    experiment = _experiment()
    with pytest.raises(ValueError, match="unknown control"):
        experiment.setting(colour="red")
    with pytest.raises(ValueError, match="over='colour'"):
        experiment.sweep("colour")
    with pytest.raises(ValueError, match="size 4"):  # the callback's own check reaches the caller
        experiment.figure(size=4)


def test_experiment_widget_reports_an_invalid_setting_in_its_output():
    experiment = _experiment()
    _, output = experiment.widget().children
    experiment.controls["size"].value = 4  # the callback rejects it; the widget must not raise
    assert output.outputs[-1]["text"] == "Invalid setting: size 4 is not allowed\n"
    plt.close("all")


# --- data --------------------------------------------------------------------------------

def test_load_mnist():
    images, labels = data.load_mnist()
    assert images.shape == (5000, 28, 28) and labels.shape == (5000,)
    assert images.dtype == torch.float32 and 0.0 <= images.min() and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))
    assert data.load_mnist(10)[0].shape == (10, 28, 28)
    with pytest.raises(ValueError, match="n must be"):
        data.load_mnist(0)


def test_load_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and images.max() == 1.0 and labels.max() == 9


def test_load_corpus_is_a_real_text_of_over_a_million_characters():
    text = data.load_corpus()
    assert len(text) > 1_000_000
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    genesis = data.load_corpus(["Genesis"])
    assert 100_000 < len(genesis) < len(text)
    with pytest.raises(ValueError, match="Narnia"):
        data.load_corpus(["Narnia"])
