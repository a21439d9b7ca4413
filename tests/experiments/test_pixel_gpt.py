import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from utils.experiments import pixel_gpt as px
from utils.gpt import GPT, GPTConfig
from utils.igpt import layer_features, with_start
from utils.tokenizers import PixelTokenizer


@pytest.fixture(scope="module")
def digits():
    return px.pixel_digits(n_levels=4, n_test=1000)


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=5, block_size=197, num_layers=2, num_heads=2,
                         d_model=16)).eval()


def test_pixel_digits_are_shuffled_split_and_fitted_on_training_digits(digits):
    train_images, train_ids, train_labels = digits.part("train")
    test_images, test_ids, test_labels = digits.part("test")
    assert digits.shape == (14, 14)
    assert len(train_ids) == 4000 and len(test_ids) == 1000 and digits.n_train == 4000
    assert train_ids.shape == (4000, 196) and test_images.shape == (1000, 14, 14)
    # the stored digits are sorted by class; the held-out part must have every class
    assert torch.bincount(test_labels, minlength=10).min() > 50
    assert torch.bincount(train_labels, minlength=10).min() > 300
    palette = PixelTokenizer(4).fit(train_images).centroids
    assert torch.allclose(digits.tokenizer.centroids, palette)
    assert torch.equal(digits.ids, digits.tokenizer.encode(digits.images))
    again = px.pixel_digits(n_levels=4, n_test=1000)
    assert torch.equal(again.labels, digits.labels)
    assert not torch.equal(px.pixel_digits(4, 1000, seed=1).labels, digits.labels)
    with pytest.raises(ValueError, match="part"):
        digits.part("validation")
    with pytest.raises(ValueError, match="n_test"):
        px.pixel_digits(n_test=5000)


def test_more_grey_levels_lose_less(digits):
    images = digits.part("train")[0][:200]
    palettes = px.quantisation_errors(images, [1, 2, 4, 8])
    errors = [error for _, error in palettes.values()]
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 4
    tokenizer, error = palettes[4]
    decoded = tokenizer.decode(tokenizer.encode(images), (14, 14))
    assert error == pytest.approx((decoded - images).abs().mean().item())
    fig = plt.figure()
    px.draw_palettes(fig, images[:3], palettes)
    assert len(fig.axes) == 5 * 3
    assert "error" in fig.axes[3 * 3].get_ylabel()
    plt.close(fig)


def test_pixel_batches_feed_every_pixel_after_the_start_token(digits):
    ids = digits.part("train")[1]
    x, y = next(px.pixel_batches(ids, 8, start_id=4, seed=3))
    assert x.shape == y.shape == (8, 196)
    assert (x[:, 0] == 4).all() and torch.equal(x[:, 1:], y[:, :-1])
    assert any(torch.equal(y[0], row) for row in ids)
    x2, _ = next(px.pixel_batches(ids, 8, start_id=4, seed=3))
    assert torch.equal(x, x2)


def test_pixel_nats_is_the_models_cross_entropy_at_each_pixel(digits, gpt):
    ids = digits.part("test")[1][:7]
    per_pixel = px.pixel_nats(gpt, ids, start_id=4, batch_size=3)
    assert per_pixel.shape == (196,)
    logits, loss = gpt(with_start(ids, 4)[:, :-1], ids)
    assert per_pixel.mean().item() == pytest.approx(loss.item(), rel=1e-5)
    first = F.cross_entropy(logits[:, 0], ids[:, 0])
    assert per_pixel[0].item() == pytest.approx(first.item(), rel=1e-5)
    assert px.next_pixel_loss(gpt, (with_start(ids, 4)[:, :-1], ids)).item() == (
        pytest.approx(loss.item()))


def test_marginal_baseline_counts_each_position_with_add_one_smoothing():
    train = torch.tensor([[0, 1], [0, 0], [0, 1]])
    test = torch.tensor([[0, 1]])
    # position 0: counts (3, 0) + 1 -> p(0) = 4/5; position 1: (1, 2) + 1 -> p(1) = 3/5
    expected = torch.tensor([-math.log(4 / 5), -math.log(3 / 5)])
    assert torch.allclose(px.marginal_nats(train, test, 2), expected)


def test_neighbour_baseline_conditions_on_the_pixel_above_and_left():
    # 2×2 images whose every pixel copies the one to its left, and starts at random
    train = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    test = torch.tensor([[1, 1, 0, 0]])
    nats = px.neighbour_nats(train, test, width=2, n_levels=2)
    # pixel 0 (context edge, edge): counts 0 -> 2, 1 -> 2, +1 each: p = 1/2
    # pixel 1 (edge above, left 1): train has the pair (1 -> 1) twice: p = 3/4
    # pixel 2 (above 1, edge left): train (above 1 -> 0) once, (1 -> 1) once: p = 2/4
    # pixel 3 (above 1, left 0): train (1, 0 -> 0) once: p = 2/3
    expected = -torch.tensor([1 / 2, 3 / 4, 2 / 4, 2 / 3]).log()
    assert torch.allclose(nats, expected)
    assert nats.mean() < px.marginal_nats(train, test, 2).mean()


def test_forward_seconds_times_a_forward_pass_and_leaves_the_global_rng():
    before = torch.get_rng_state()
    assert 0 < px.forward_seconds(4, d_model=8, repeat=1) < 5
    assert torch.equal(torch.get_rng_state(), before)


def test_raster_diagram_marks_the_pixels_read_and_the_one_predicted(digits):
    ids = digits.part("test")[1][0]
    fig = plt.figure()
    px.draw_raster_order(fig, ids, digits.tokenizer, (14, 14), step=20)
    image_ax, sequence_ax = fig.axes
    assert len(image_ax.patches) == 21  # pixels 0..20: read, and the one predicted
    texts = [t.get_text() for t in sequence_ax.texts]
    assert texts[:2] == ["<s>", "…"] and "?" in texts and "·" in texts
    read = [int(t) for t in texts[2 : texts.index("?")]]
    assert read == ids[12:20].tolist()  # the last 8 pixels before the predicted one
    plt.close(fig)
    with pytest.raises(ValueError, match="step"):
        px.draw_raster_order(plt.figure(), ids, digits.tokenizer, (14, 14), step=196)
    plt.close("all")


def test_completion_figure_keeps_the_given_rows_and_refuses_bad_input(digits, gpt):
    before = torch.get_rng_state()
    fig = plt.figure()
    px.draw_completions(fig, gpt, digits, index=2, rows_given=5, temperature=1.0,
                        n_samples=3)
    titles = [ax.get_title() for ax in fig.axes]
    label = digits.part("test")[2][2].item()
    assert titles == ["given", "sample 1", "sample 2", "sample 3",
                      f"original (a {label})"]
    given = fig.axes[0].images[0].get_array()
    assert given[5:].mask.all() and not given[:5].mask.any()  # NaN below the given rows
    plt.close(fig)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(ValueError, match="index"):
        px.draw_completions(plt.figure(), gpt, digits, 1000, 5, 1.0)
    plt.close("all")


def test_completion_accuracy_scores_originals_blanks_and_completions(digits, gpt):
    pixels, labels = digits.part("train")[0][:500].flatten(1), digits.part("train")[2][:500]
    classifier = LogisticRegression(max_iter=300).fit(pixels.numpy(), labels.numpy())
    scores = px.completion_accuracy(gpt, classifier, digits, rows_given=13, n=40)
    assert set(scores) == {"original", "given rows only", "completed"}
    assert all(0 <= s <= 1 for s in scores.values())
    # with 13 of 14 rows given, the completion is nearly the original
    assert abs(scores["completed"] - scores["original"]) <= 0.1
    blank = px.completion_accuracy(gpt, classifier, digits, rows_given=0, n=40)
    assert blank["original"] == scores["original"]


def test_probe_features_average_each_row_of_every_layer(digits, gpt):
    ids = digits.part("test")[1][:5]
    features = px.probe_features(gpt, ids, start_id=4, shape=(14, 14), batch_size=2)
    assert len(features) == 2 and features[0].shape == (5, 14 * 16)
    raw = layer_features(gpt, with_start(ids, 4))[1][:, 1:]  # (5, 196, 16)
    assert torch.allclose(features[1][:, :16], raw[:, :14].mean(1), atol=1e-6)
    mean = px.mean_over_rows(features[1], height=14)
    assert torch.allclose(mean, raw.mean(1), atol=1e-6)


def test_pixel_batches_follow_their_seed():
    ids = torch.randint(4, (50, 9))
    first = next(px.pixel_batches(ids, 8, start_id=4, seed=1))
    again = next(px.pixel_batches(ids, 8, start_id=4, seed=1))
    other = next(px.pixel_batches(ids, 8, start_id=4, seed=2))
    assert torch.equal(first[1], again[1]) and not torch.equal(first[1], other[1])
