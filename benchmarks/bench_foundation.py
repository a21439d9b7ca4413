"""Chapter 0: the widget callback must redraw within the course's 1 s budget."""

import ipywidgets as widgets
import matplotlib

from utils.receptive_field import draw_receptive_fields
from utils.widgets import Experiment

from .timing import best_of


def bench_receptive_field_widget():
    matplotlib.use("Agg")
    experiment = Experiment(draw_receptive_fields,
                            kernel_size=widgets.Dropdown(options=[3, 5, 7], value=7),
                            depth=widgets.IntSlider(value=14, min=1, max=14),
                            dilation=widgets.IntSlider(value=4, min=1, max=4))
    seconds = best_of(lambda: matplotlib.pyplot.close(experiment.figure()), repeat=3)
    return [{"name": "ch0 widget callback (worst setting)", "ours_s": seconds, "reference_s": None,
             "ratio": None, "target": "<= 1.0 s", "ok": seconds <= 1.0}]
