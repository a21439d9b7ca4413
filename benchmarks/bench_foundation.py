"""Chapter 0: the widget callback must redraw within the course's 1 s budget."""

import ipywidgets as widgets
import matplotlib

from utils.experiments.receptive_field import draw_receptive_fields
from utils.widgets import Experiment

from .timing import callback_row


def bench_receptive_field_widget():
    matplotlib.use("Agg")
    experiment = Experiment(
        draw_receptive_fields,
        kernel_size=widgets.Dropdown(options=[3, 5, 7], value=7),
        depth=widgets.IntSlider(value=14, min=1, max=14),
        dilation=widgets.IntSlider(value=4, min=1, max=4),
    )
    return [callback_row("ch0 widget callback (worst setting)", experiment)]
