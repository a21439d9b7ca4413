"""utils.igpt (chapter 9): the palette, raster order, completion and layer features."""

import pytest
import torch

from utils.gpt import GPT, GPTConfig
from utils.igpt import (
    complete,
    downsample,
    layer_features,
    with_start,
)
from utils.tokenizers import PixelTokenizer


def _images(n=6, H=4, W=5, seed=0):
    return torch.rand(n, H, W, generator=torch.Generator().manual_seed(seed))


def test_fit_finds_the_grey_levels_of_an_image_made_of_them():
    levels = torch.tensor([0.0, 0.3, 0.7, 1.0])
    ids = torch.randint(4, (20, 6, 6), generator=torch.Generator().manual_seed(1))
    tokenizer = PixelTokenizer(4).fit(levels[ids])
    torch.testing.assert_close(tokenizer.centroids, levels)
    assert torch.equal(tokenizer.encode(levels[ids]), ids.flatten(1))


def test_palette_round_trips():
    images = _images()
    tokenizer = PixelTokenizer(5).fit(images)
    assert tokenizer.vocab_size == 6 and tokenizer.start_id == 5
    assert (tokenizer.centroids[1:] > tokenizer.centroids[:-1]).all()
    ids = tokenizer.encode(images)
    assert ids.shape == (6, 20) and ids.dtype == torch.long
    assert torch.equal(tokenizer.encode(tokenizer.decode(ids, (4, 5))), ids)
    decoded = tokenizer.decode(ids, (4, 5))  # each pixel's nearest centroid
    nearest = (images[..., None] - tokenizer.centroids).abs().argmin(-1)
    assert torch.equal(decoded, tokenizer.centroids[nearest])


def test_more_levels_lose_less():
    images = _images(20, 8, 8)
    errors = []
    for n in (1, 2, 4, 8):
        tokenizer = PixelTokenizer(n).fit(images)
        decoded = tokenizer.decode(tokenizer.encode(images), (8, 8))
        errors.append((decoded - images).pow(2).mean().item())
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 10


def test_encode_reads_rows_left_to_right_then_top_to_bottom():
    tokenizer = PixelTokenizer(6)
    tokenizer.centroids = torch.arange(6.0)
    image = torch.arange(6.0).view(1, 2, 3)  # rows [0 1 2], [3 4 5]
    assert tokenizer.encode(image).tolist() == [[0, 1, 2, 3, 4, 5]]
    assert torch.equal(tokenizer.decode(torch.tensor([[0, 1, 2, 3, 4, 5]]), (2, 3)),
                       image)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="n_levels"):
        PixelTokenizer(0)
    tokenizer = PixelTokenizer(3)
    with pytest.raises(ValueError, match="fit"):
        tokenizer.encode(_images())
    tokenizer.fit(_images())
    with pytest.raises(ValueError, match="images must have shape"):
        tokenizer.encode(torch.rand(4, 5))
    with pytest.raises(ValueError, match="floating"):
        tokenizer.encode(torch.ones(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="n_levels=3"):
        tokenizer.decode(torch.tensor([[0, 3, 1, 1]]), (2, 2))
    with pytest.raises(ValueError, match="ids must have shape"):
        tokenizer.decode(torch.tensor([[0, 1, 1]]), (2, 2))
    with pytest.raises(ValueError, match="divisible"):
        downsample(torch.rand(1, 5, 4))


def test_downsample_averages_blocks():
    image = torch.arange(16.0).view(1, 4, 4)
    assert downsample(image).tolist() == [[[2.5, 4.5], [10.5, 12.5]]]


def _gpt(vocab=5, T=13):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, block_size=T, num_layers=2, num_heads=2,
                         d_model=16)).eval()


def test_complete_keeps_the_given_rows_and_the_cache_changes_nothing():
    gpt = _gpt()
    ids = torch.randint(4, (3, 12))  # 3 images of 3 rows × 4 pixels
    before = torch.get_rng_state()
    done = complete(gpt, ids, rows_given=1, width=4, start_id=4, seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert done.shape == ids.shape
    assert torch.equal(done[:, :4], ids[:, :4])
    assert done.max() < 4  # never the start token
    uncached = complete(gpt, ids, rows_given=1, width=4, start_id=4, seed=2,
                        use_cache=False)
    assert torch.equal(done, uncached)
    again = complete(gpt, ids, rows_given=1, width=4, start_id=4, seed=2)
    assert torch.equal(done, again)
    with pytest.raises(ValueError, match="rows_given"):
        complete(gpt, ids, rows_given=3, width=4, start_id=4)
    with pytest.raises(ValueError, match="block_size"):
        complete(gpt, torch.randint(4, (1, 16)), rows_given=1, width=4, start_id=4)
    with pytest.raises(ValueError, match="width"):
        complete(gpt, ids, rows_given=1, width=5, start_id=4)


def test_with_start_prepends_the_start_token():
    assert with_start(torch.tensor([[1, 2]]), 9).tolist() == [[9, 1, 2]]


def test_layer_features_are_each_blocks_output():
    gpt = _gpt()
    seq = with_start(torch.randint(4, (2, 12)), 4)
    features = layer_features(gpt, seq)
    assert len(features) == 2 and features[0].shape == (2, 13, 16)
    with torch.no_grad():
        last = gpt.transformer.ln_f(features[-1])
        torch.testing.assert_close(last, gpt.features(seq))
    assert all(not b._forward_hooks for b in gpt.transformer.h)  # hooks removed


def test_fit_keeps_an_unused_level_and_moves_a_level_with_one_pixel():
    image = torch.zeros(1, 4, 4)
    image[0, 3, 3] = 1.0  # one bright pixel among fifteen dark ones
    two = PixelTokenizer(2).fit(image)
    torch.testing.assert_close(two.centroids, torch.tensor([0.0, 1.0]))
    three = PixelTokenizer(3).fit(image)  # a level that no pixel is nearest to
    assert three.centroids.shape == (3,) and three.centroids[0] == 0.0
    assert three.centroids[-1] == 1.0 and torch.isfinite(three.centroids).all()


@pytest.mark.parametrize("call, message", [
    (lambda t: PixelTokenizer(0), "^n_levels must be a positive int"),
    (lambda t: t.fit(torch.rand(1, 2, 2), iterations=0), "^iterations must"),
    (lambda t: t.decode(torch.zeros(1, 4, dtype=torch.long), (0, 4)), "^H must"),
    (lambda t: t.decode(torch.zeros(1, 4, dtype=torch.long), (4, 0)), "^W must"),
    (lambda t: t.decode(torch.zeros(1, 4), (2, 2)), "^ids must have dtype"),
    (lambda t: t.decode(torch.zeros(4, dtype=torch.long), (2, 2)),
     r"^ids must have shape \(B, 4\)"),
    (lambda t: t.encode(torch.rand(2, 2)), r"^images must have shape \(B, H, W\)"),
])
def test_refusals_name_the_argument_exactly(call, message):
    tokenizer = PixelTokenizer(2).fit(torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match=message):
        call(tokenizer)


def test_an_empty_level_keeps_its_place_and_the_default_is_four_levels():
    image = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # half black, half white
    tokenizer = PixelTokenizer(3).fit(image)  # starts at the quantiles 0, 0.5, 1
    torch.testing.assert_close(tokenizer.centroids, torch.tensor([0.0, 0.5, 1.0]))
    assert PixelTokenizer().n_levels == 4


def test_complete_never_samples_the_start_token_and_greedy_is_the_argmax():
    gpt = _gpt()
    ids = torch.randint(4, (64, 12))
    hot = complete(gpt, ids, rows_given=0, width=4, start_id=4, temperature=5.0)
    assert hot.max() < 4 and hot.min() >= 0
    greedy = complete(gpt, ids[:2], rows_given=1, width=4, start_id=4, top_k=1)
    by_hand = with_start(ids[:2, :4], 4)
    while by_hand.shape[1] < 13:  # full forward passes, start token excluded
        logits = gpt(by_hand)[0][:, -1, :4]
        by_hand = torch.cat([by_hand, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, by_hand[:, 1:])
