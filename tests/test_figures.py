"""Every chapter figure drawn at one fixed setting matches its recorded fingerprint.

A fingerprint lists each artist of the figure (lines, images, patches, texts, legends,
axes) with its data and its style: what a reader sees, without the pixels, so that the
test does not depend on the font renderer. A change to a drawing that was meant must be
looked at in the built book, then recorded again with

    UPDATE_FIGURE_BASELINES=1 pytest tests/test_figures.py

Layout (positions in the page, the tick locations the layout chooses) is left out.
"""

import json
import os
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from test_widget_corners import CALLBACKS

BASELINES = Path(__file__).parent / "baselines"
UPDATE = os.environ.get("UPDATE_FIGURE_BASELINES") == "1"
# the properties that make up what an artist shows; the rest is layout or plumbing
SHOWN = {
    "alpha", "antialiased", "capstyle", "clim", "cmap", "color", "data", "edgecolor",
    "facecolor", "fill", "fontsize", "fontstyle", "fontweight", "hatch",
    "horizontalalignment", "interpolation", "label", "linestyle", "linewidth",
    "marker", "markeredgecolor", "markerfacecolor", "markersize", "rotation", "text",
    "title", "verticalalignment", "visible", "xlabel", "xlim", "xscale", "xy", "ylabel",
    "ylim", "yscale", "zorder", "bounds", "array", "extent", "aspect", "xdata", "ydata",
    "position", "width", "height", "boxstyle", "arrowstyle",
}
LAID_OUT = ("Axes", "Figure", "SubFigure", "Legend")  # their position is the layout's
SKIPPED = ("XTick", "YTick", "XAxis", "YAxis")  # tick marks follow the layout


def _plain(value):
    """A JSON-friendly value: numbers rounded to 4 significant digits."""
    if hasattr(value, "name") and not isinstance(value, str):  # a colour map
        return value.name
    if isinstance(value, (np.ndarray, torch.Tensor, list, tuple)):
        array = np.ma.filled(np.asarray(value, dtype=object), None)
        return [_plain(v) for v in array.tolist()] if array.ndim else _plain(array.item())
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return value if not isinstance(value, np.bool_) else bool(value)
    if isinstance(value, (int, float, np.number)):
        value = float(value)
        return value if not np.isfinite(value) else float(f"{value:.4g}")
    return type(value).__name__


def fingerprint(fig) -> list:
    entries = []
    for artist in fig.findobj():
        kind = type(artist).__name__
        if kind in SKIPPED or (kind == "Text" and not artist.get_text()):
            continue
        properties = artist.properties()
        shown = SHOWN - {"position"} if kind in LAID_OUT else SHOWN
        entries.append([kind, {k: _plain(properties[k]) for k in sorted(shown)
                               if k in properties}])
    return entries


def _same(got, want, where="figure"):
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=2e-3, abs=1e-5, nan_ok=True), where
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: {len(got)} items, recorded {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, dict) and isinstance(got, dict):
        assert got.keys() == want.keys(), where
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    else:
        assert got == want, where


def _minilm_figures():
    from utils.experiments import masked_lm
    model, tokenizer = masked_lm.load_minilm()
    sentence = "In the beginning God created the heaven and the earth."
    return {
        "ch8-corruption": partial(masked_lm.draw_corruption_setting, sentence=sentence,
                                  tokenizer=tokenizer),
        "ch8-attention": partial(masked_lm.draw_attention_setting, model=model,
                                 tokenizer=tokenizer, sentence=sentence, layer=1,
                                 head=2),
    }


def _pixel_figures():
    from utils.experiments import pixel_gpt
    digits = pixel_gpt.pixel_digits(n_levels=4)
    _, ids, _ = digits.part("test")
    images = digits.images[:3]
    palettes = {n: (pixel_gpt.PixelTokenizer(n).fit(images), 0.1 * n) for n in (2, 4)}
    return {
        "ch9-raster": partial(pixel_gpt.draw_raster_order, digit_ids=ids[0],
                              tokenizer=digits.tokenizer, shape=(14, 14), step=20),
        "ch9-palettes": partial(pixel_gpt.draw_palettes, images=images,
                                palettes=palettes),
    }


def _figures():
    from utils.experiments import masked_lm
    figures = {}
    for name, (make, controls) in CALLBACKS.items():  # at the controls' smallest values
        with torch.random.fork_rng():  # the same random model whatever ran before
            torch.manual_seed(0)
            figures[name] = partial(make(), **{c: low for c, (low, _) in controls.items()})
    figures["ch8-masks"] = masked_lm.draw_masks_and_mlm
    figures.update(_vit_figures())
    return figures


def _vit_figures():
    from utils.experiments import vit_digits as vd
    from utils.vit import ViT, ViTConfig
    digit = vd.load_digits_split().test_part()[0][0, 0]
    torch.manual_seed(0)
    similarity = vd.position_similarity(ViT(ViTConfig()))
    sizes, results = [250, 1000], {"ViT": torch.tensor([[0.5, 0.6], [0.7, 0.8]])}

    def sweep(fig):
        vd.draw_data_sweep(fig.subplots(), sizes, results, {"ViT": "#0072B2"})

    return {"ch10-pipeline": partial(vd.draw_vit_pipeline, digit=digit),
            "ch10-positions": partial(vd.draw_position_similarity, similarity=similarity),
            "ch10-sweep": sweep}


FIGURES = sorted([*CALLBACKS, "ch8-masks", "ch8-corruption", "ch8-attention",
                  "ch9-raster", "ch9-palettes", "ch10-pipeline", "ch10-positions",
                  "ch10-sweep"])


@pytest.fixture(scope="module")
def draws():
    return {**_figures(), **_minilm_figures(), **_pixel_figures()}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_matches_its_recorded_fingerprint(name, draws):
    fig = plt.figure(figsize=(8, 3), layout="constrained")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        draws[name](fig)
    got = json.loads(json.dumps(fingerprint(fig)))
    plt.close(fig)
    path = BASELINES / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(got, indent=0) + "\n")
    assert path.exists(), f"no baseline for {name}: record it (see the module docstring)"
    _same(got, json.loads(path.read_text()), name)
