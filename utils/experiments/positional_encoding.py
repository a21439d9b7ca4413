"""Chapter 6's picture of the sinusoidal positional encoding and its dot products."""

from utils.checks import check_int
from utils.plot import DIVERGING_CMAP, heatmap
from utils.transformer import sinusoidal_positional_encoding


def draw_positions(fig, d_model: int = 64, dimensions: int = 32, T: int = 64):
    """The widget's callback: the first `dimensions` of the encoding of T positions,
    the matrix of dot products PE_t · PE_t', and two of its rows."""
    check_int("dimensions", dimensions)
    pe = sinusoidal_positional_encoding(T, d_model)  # (T, d_model)
    similarity = pe @ pe.T  # (T, T)
    axes = fig.subplots(1, 3)
    heatmap(
        axes[0],
        pe[:, :dimensions].T,
        title="encoding PE",
        xlabel="position t",
        ylabel="dimension",
        cmap=DIVERGING_CMAP,
        vmin=-1,
        vmax=1,
        colorbar=False,
    )
    heatmap(
        axes[1],
        similarity,
        title="PE_t · PE_t'",
        xlabel="t'",
        ylabel="t",
        colorbar=False,
    )
    for t in (0, T // 2):
        axes[2].plot(similarity[t], label=f"t = {t}")
    low, high = similarity.min().item(), similarity.max().item()
    axes[2].set(
        title="rows t of PE_t · PE_t'",
        xlabel="t'",
        ylim=(low - 0.05 * (high - low), high + 0.35 * (high - low)),
    )
    axes[2].legend(frameon=False, ncols=2, loc="upper center")  # above the curves
    return axes
