"""utils.widgets: one callback, drawn as a widget, a figure and a sweep."""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest

from utils.widgets import Experiment


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _draw(fig, size, flip):
    ax = fig.subplots()
    ax.plot(range(size), range(size)[::-1] if flip else range(size))
    if size == 4:
        raise ValueError("size 4 is not allowed")


def _experiment(draw=_draw):
    return Experiment(
        draw,
        size=widgets.IntSlider(value=2, min=2, max=5),
        flip=widgets.Dropdown(options=[("no", False), ("yes", True)], value=False),
    )


def test_experiment_widget_draws_the_initial_setting_and_redraws():
    calls = []

    def draw(fig, size, flip):
        calls.append((size, flip))
        _draw(fig, size, flip)

    experiment = _experiment(draw)
    box = experiment.widget()
    controls, output = box.children
    assert [c.description for c in controls.children] == ["size", "flip"]
    assert all(
        not c.continuous_update
        for c in controls.children
        if hasattr(c, "continuous_update")
    )
    assert calls == [(2, False)] and experiment.last_draw_seconds is not None
    experiment.controls["size"].value = 3  # a change redraws with the new value
    assert calls == [(2, False), (3, False)]
    experiment.controls["flip"].value = True
    assert calls == [(2, False), (3, False), (3, True)]
    assert experiment.setting() == {"size": 3, "flip": True}
    assert plt.get_fignums() == []  # every drawn figure was closed after display


def test_experiment_figure_draws_one_setting():
    experiment = _experiment()
    fig = experiment.figure(flip=True)
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [1, 0]
    assert experiment.last_draw_seconds >= 0


def test_experiment_figure_closes_the_figure_when_the_callback_fails():
    experiment = _experiment()
    before = plt.get_fignums()
    with pytest.raises(
        ValueError, match="size 4"
    ):  # the callback's own check reaches the caller
        experiment.figure(size=4)
    assert plt.get_fignums() == before


def test_experiment_sweep_draws_one_panel_per_value():
    experiment = _experiment()
    fig = experiment.sweep("flip")
    assert [s.get_suptitle() for s in fig.subfigs] == ["flip = False", "flip = True"]
    fig = experiment.sweep("size", values=[2, 3, 5], ncols=2)
    assert len([s for s in fig.subfigs if s.axes]) == 3
    fig = experiment.sweep(
        "size", values=[2, 3], flip=True
    )  # the other controls can be fixed
    assert [list(s.axes[0].get_lines()[0].get_ydata()) for s in fig.subfigs] == [
        [1, 0],
        [2, 1, 0],
    ]


def test_sweep_over_a_slider_never_exceeds_its_max():
    seen = []
    experiment = Experiment(
        lambda fig, n: seen.append(n),
        n=widgets.IntSlider(value=0, min=0, max=10, step=3),
    )
    experiment.sweep("n")
    assert seen == [0, 3, 6, 9]


@pytest.mark.parametrize(
    "control, values",
    [
        (widgets.IntSlider(min=0, max=10, step=3), [0, 3, 6, 9]),
        (widgets.IntSlider(min=2, max=5), [2, 3, 4, 5]),
        (widgets.FloatSlider(min=0.0, max=1.0, step=0.25), [0.0, 0.25, 0.5, 0.75, 1.0]),
        (widgets.Dropdown(options=[("no", False), ("yes", True)]), [False, True]),
        (widgets.Dropdown(options={"a": 1, "b": 2}), [1, 2]),
        (widgets.ToggleButtons(options=["x", "y"]), ["x", "y"]),
        (widgets.Checkbox(), [False, True]),
    ],
)
def test_sweep_draws_every_value_a_control_allows(control, values):
    assert _swept(control) == pytest.approx(values)


def _swept(control):
    seen = []
    plt.close(
        Experiment(lambda fig, value: seen.append(value), value=control).sweep("value")
    )
    return seen


def test_sweep_over_a_float_slider_stays_within_max():
    values = _swept(widgets.FloatSlider(min=0.0, max=1.0, step=0.3))
    assert values == pytest.approx([0.0, 0.3, 0.6, 0.9]) and max(values) <= 1.0


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
    with pytest.raises(ValueError, match="values must not be empty"):
        experiment.sweep("size", values=[])
    with pytest.raises(ValueError, match="cannot list the values of a Text"):
        Experiment(_draw, size=widgets.Text()).sweep("size")


def test_experiment_widget_reports_an_invalid_setting_in_its_output():
    experiment = _experiment()
    _, output = experiment.widget().children
    experiment.controls[
        "size"
    ].value = 4  # the callback rejects it; the widget must not raise
    assert output.outputs[-1]["text"] == "Invalid setting: size 4 is not allowed\n"
    assert plt.get_fignums() == []  # the half-drawn figure was closed


def test_figure_has_the_experiments_size_and_a_constrained_layout():
    experiment = Experiment(_draw, figsize=(5.0, 2.0), size=widgets.IntSlider(2, 2, 5),
                            flip=widgets.Checkbox())
    fig = experiment.figure()
    assert tuple(fig.get_size_inches()) == (5.0, 2.0)
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    assert 0 <= experiment.last_draw_seconds < 60
    assert Experiment(_draw, size=widgets.IntSlider(2, 2, 5)).last_draw_seconds is None


def test_widget_error_output_is_a_stdout_stream():
    experiment = _experiment()
    _, output = experiment.widget().children
    experiment.controls["size"].value = 4
    assert output.outputs == ({"output_type": "stream", "name": "stdout",
                               "text": "Invalid setting: size 4 is not allowed\n"},)


def test_sweep_is_width_inches_wide_in_rows_of_three_with_bold_titles():
    experiment = _experiment()  # figsize (8, 3.2): a panel is 10/3 wide, 4/3 + 0.25 high
    fig = experiment.sweep("size", values=[2, 3, 5, 2])  # two rows of three
    assert fig.get_size_inches() == pytest.approx((10.0, 2 * (10 / 3 * 0.4 + 0.25)))
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    title = fig.subfigs[0]._suptitle
    assert title.get_fontsize() == 10 and title.get_fontweight() == "bold"
    one = experiment.sweep("size", values=[3], width=4.0)  # a single panel
    assert one.get_size_inches() == pytest.approx((4.0, 4.0 * 0.4 + 0.25))


def test_sweep_closes_its_figure_when_the_callback_fails():
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="size 4"):
        _experiment().sweep("size")
    assert plt.get_fignums() == before
