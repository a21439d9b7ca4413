"""One pattern for every experiment in the book.

A chapter writes one callback, ``draw(fig, **setting)``, that draws a single setting
onto a Matplotlib figure (or sub-figure). :class:`Experiment` then gives it two faces:

* ``experiment.widget()``: the controls and an output that the callback redraws on every
  change (Jupyter, Binder, Colab; the built book shows its initial state);
* ``experiment.sweep("name")``: a static figure of small multiples, one panel per value
  of one control, drawn by the *same* callback, so a reader without a kernel still sees
  the effect.
"""

import time
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display


def _options(control: widgets.ValueWidget) -> list:
    """Every value a control allows, in order (sliders: min..max by step)."""
    if isinstance(
        control, (widgets.Dropdown, widgets.SelectionSlider, widgets.ToggleButtons)
    ):
        options = control.options  # values, (label, value) pairs, or {label: value}
        pairs = options.items() if isinstance(options, dict) else options
        return [o[1] if isinstance(o, tuple) else o for o in pairs]
    if isinstance(control, (widgets.IntSlider, widgets.FloatSlider)):
        # every step that stays within max, even when the step does not divide the range
        count = int((control.max - control.min) / control.step + 1e-9) + 1
        return [
            type(control.value)(control.min + i * control.step) for i in range(count)
        ]
    if isinstance(control, (widgets.Checkbox, widgets.ToggleButton)):
        return [False, True]
    raise ValueError(
        f"cannot list the values of a {type(control).__name__}; pass values="
    )


class Experiment:
    """``Experiment(draw, figsize=(8, 3.2), **controls)``: see the module docstring."""

    def __init__(
        self, draw: Callable, figsize=(8.0, 3.2), **controls: widgets.ValueWidget
    ):
        if not controls:
            raise ValueError("an Experiment needs at least one control")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise ValueError(
                    f"control {name!r} must be an ipywidgets value widget, "
                    f"got {type(control).__name__}"
                )
            if hasattr(control, "continuous_update"):
                # redraw on release, not on every pixel
                control.continuous_update = False
            if not control.description:
                control.description = name
        self.draw, self.figsize, self.controls = draw, figsize, controls
        self.last_draw_seconds = None

    def setting(self, **overrides) -> dict:
        """The controls' current values, with `overrides` applied (names checked)."""
        unknown = set(overrides) - set(self.controls)
        if unknown:
            raise ValueError(
                f"unknown control(s) {sorted(unknown)}; known: {sorted(self.controls)}"
            )
        return {name: c.value for name, c in self.controls.items()} | overrides

    def figure(self, **overrides) -> plt.Figure:
        """Draw one setting into a new figure and return it.

        The time it took is kept in `last_draw_seconds`.
        """
        start = time.perf_counter()
        setting = self.setting(**overrides)
        fig = plt.figure(figsize=self.figsize, layout="constrained")
        try:
            self.draw(fig, **setting)
        except Exception:
            plt.close(fig)  # no half-drawn figure left open
            raise
        self.last_draw_seconds = time.perf_counter() - start
        return fig

    def widget(self) -> widgets.VBox:
        """Controls, and an output redrawn on every change (first the initial one)."""
        output = widgets.Output()

        def redraw(_change=None):
            with output:
                output.clear_output(wait=True)
                try:
                    fig = self.figure()
                except ValueError as error:  # a setting the callback rejects: say why
                    output.outputs = (
                        {
                            "output_type": "stream",
                            "name": "stdout",
                            "text": f"Invalid setting: {error}\n",
                        },
                    )
                    return
                display(fig)
                plt.close(fig)

        for control in self.controls.values():
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox(list(self.controls.values())), output])

    def sweep(
        self, over: str, values=None, ncols: int = 3, width: float = 10.0, **fixed
    ) -> plt.Figure:
        """Small multiples: a panel per value of control `over`, the others fixed."""
        if over not in self.controls:
            raise ValueError(
                f"over={over!r} is not a control; known: {sorted(self.controls)}"
            )
        values = _options(self.controls[over]) if values is None else list(values)
        if not values:
            raise ValueError("values must not be empty")
        ncols = min(ncols, len(values))
        nrows = -(-len(values) // ncols)
        panel_width = width / ncols  # the whole figure is `width` inches
        panel_height = panel_width * self.figsize[1] / self.figsize[0] + 0.25
        fig = plt.figure(figsize=(width, panel_height * nrows), layout="constrained")
        panels = fig.subfigures(nrows, ncols, squeeze=False).flat
        try:
            for panel, value in zip(panels, values):
                self.draw(panel, **self.setting(**fixed, **{over: value}))
                panel.suptitle(f"{over} = {value}", fontsize=10, fontweight="bold")
        except Exception:
            plt.close(fig)  # no half-drawn figure left open
            raise
        return fig
