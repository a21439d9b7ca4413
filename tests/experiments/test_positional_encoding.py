"""Chapter 6's picture of the positional encoding shows the encoding and its products."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from utils.experiments.positional_encoding import draw_positions
from utils.plot import CMAP, DIVERGING_CMAP
from utils.transformer import sinusoidal_positional_encoding


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_three_panels_show_the_encoding_its_dot_products_and_two_rows():
    fig = plt.figure()
    encoding, products, rows = draw_positions(fig, d_model=16, dimensions=4, T=8)
    pe = sinusoidal_positional_encoding(8, 16)
    similarity = (pe @ pe.T).numpy()

    image = encoding.images[0]
    np.testing.assert_allclose(image.get_array(), pe[:, :4].T.numpy())
    assert image.get_cmap().name == DIVERGING_CMAP and image.get_clim() == (-1, 1)
    assert (encoding.get_title(), encoding.get_xlabel(), encoding.get_ylabel()) == (
        "encoding PE", "position t", "dimension")

    image = products.images[0]
    np.testing.assert_allclose(image.get_array(), similarity, rtol=1e-6)
    assert image.get_cmap().name == CMAP
    assert (products.get_title(), products.get_xlabel(), products.get_ylabel()) == (
        "PE_t · PE_t'", "t'", "t")
    assert len(fig.axes) == 3  # no colorbars

    first, middle = rows.get_lines()
    np.testing.assert_allclose(first.get_ydata(), similarity[0], rtol=1e-6)
    np.testing.assert_allclose(middle.get_ydata(), similarity[4], rtol=1e-6)
    assert [t.get_text() for t in rows.get_legend().get_texts()] == ["t = 0", "t = 4"]
    assert (rows.get_title(), rows.get_xlabel()) == ("rows t of PE_t · PE_t'", "t'")
    low, high = similarity.min(), similarity.max()  # room above the curves for the key
    assert rows.get_ylim() == pytest.approx(
        (low - 0.05 * (high - low), high + 0.35 * (high - low)), rel=1e-5)
    legend = rows.get_legend()
    assert legend._ncols == 2 and not legend.get_frame_on() and legend._loc == 9


def test_dimensions_must_be_a_positive_int():
    with pytest.raises(ValueError, match="dimensions must be a positive int"):
        draw_positions(plt.figure(), dimensions=0)
