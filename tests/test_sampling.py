"""utils.sampling: sample_next draws from softmax(logits / temperature), top-k, with its own generator."""

import pytest
import torch

from utils.sampling import next_token_probs, sample_next


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_returns_one_id_per_row():
    logits = torch.randn(3, 10, generator=_generator(1))
    ids = sample_next(logits, _generator())
    assert ids.shape == (3, 1) and ids.dtype == torch.long
    assert ((0 <= ids) & (ids < 10)).all()


def test_a_tiny_temperature_is_greedy_without_nan():
    logits = 100 * torch.randn(
        4, 50, generator=_generator(2)
    )  # large logits: exp would overflow
    for seed in range(5):
        ids = sample_next(logits, _generator(seed), temperature=1e-8)
        assert torch.equal(ids[:, 0], logits.argmax(-1))


@pytest.mark.parametrize(
    "dtype, temperature", [(torch.float32, 1e-37), (torch.float16, 1e-3)]
)
def test_a_temperature_that_would_overflow_the_logits_is_still_greedy(
    dtype, temperature
):
    # logits / temperature passes the dtype's largest number (3.4e38, 65504): only
    # subtracting the largest logit first keeps the division finite
    logits = torch.randn(4, 50, generator=_generator(5)).to(dtype) * 100
    probs = next_token_probs(logits, temperature)
    assert torch.isfinite(probs).all()
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    ids = sample_next(logits, _generator(), temperature=temperature)
    assert torch.equal(ids[:, 0], logits.argmax(-1))


def test_top_k_one_is_the_argmax():
    logits = torch.randn(6, 20, generator=_generator(3))
    for seed in range(5):
        assert torch.equal(
            sample_next(logits, _generator(seed), temperature=10.0, top_k=1)[:, 0],
            logits.argmax(-1),
        )


def test_top_k_draws_only_from_the_k_most_likely():
    logits = torch.randn(1, 20, generator=_generator(4)).repeat(400, 1)
    ids = sample_next(logits, _generator(), temperature=5.0, top_k=3)
    allowed = set(logits[0].topk(3).indices.tolist())
    assert set(ids[:, 0].tolist()) == allowed  # all three, and nothing else
    every = sample_next(
        logits, _generator(), temperature=5.0, top_k=20
    )  # k = V: no restriction
    assert len(set(every[:, 0].tolist())) > 3
    assert sample_next(logits[:1], _generator(), top_k=50).shape == (
        1,
        1,
    )  # k > V is fine


def test_frequencies_follow_the_softmax():
    probs = torch.tensor([0.1, 0.2, 0.7])
    logits = probs.log().repeat(20_000, 1)
    ids = sample_next(logits, _generator(5))[:, 0]
    torch.testing.assert_close(
        torch.bincount(ids, minlength=3) / 20_000, probs, atol=0.015, rtol=0
    )
    hot = sample_next(logits, _generator(5), temperature=0.5)[
        :, 0
    ]  # sharper: p² normalised
    sharp = probs**2 / (probs**2).sum()
    torch.testing.assert_close(
        torch.bincount(hot, minlength=3) / 20_000, sharp, atol=0.015, rtol=0
    )


def test_same_generator_seed_same_draws():
    logits = torch.randn(8, 30, generator=_generator(6))
    assert torch.equal(
        sample_next(logits, _generator(9)), sample_next(logits, _generator(9))
    )


def test_does_not_touch_the_global_random_state():
    logits = torch.randn(4, 30, generator=_generator(7))
    before = torch.get_rng_state()
    sample_next(logits, _generator(), temperature=0.7, top_k=5)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(logits=torch.randn(5)), r"logits must have shape \(B, V\)"),
        (
            dict(logits=torch.zeros(2, 5, dtype=torch.long)),
            "logits must be a floating-point tensor",
        ),
        (dict(generator=None), "generator must be a torch.Generator"),
        (dict(generator=0), "generator must be a torch.Generator"),
        (dict(temperature=0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=0), "top_k must be a positive int"),
        (dict(top_k=2.0), "top_k must be a positive int"),
        (dict(top_p=0.0), r"top_p must be in \(0.0, 1.0\]"),
        (dict(top_p=1.5), r"top_p must be in \(0.0, 1.0\]"),
        (dict(top_p="0.9"), "top_p must be a number"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    arguments = dict(logits=torch.randn(2, 5), generator=_generator()) | kwargs
    with pytest.raises(ValueError, match=match):
        sample_next(**arguments)


def test_next_token_probs_is_the_distribution_sample_next_draws_from():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    probs = next_token_probs(logits, temperature=0.5, top_k=3)
    expected = torch.softmax(torch.tensor([4.0, 2.0, 0.0]), dim=0)
    torch.testing.assert_close(probs[0, :3], expected)
    assert probs[0, 3] == 0 and torch.isclose(probs.sum(), torch.tensor(1.0))
    torch.testing.assert_close(next_token_probs(logits), torch.softmax(logits, -1))
    draws = torch.cat([sample_next(logits.expand(4000, -1), torch.Generator()
                                   .manual_seed(0), 0.5, 3)])
    counts = torch.bincount(draws.flatten(), minlength=4) / 4000
    torch.testing.assert_close(counts, probs[0], atol=0.03, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        next_token_probs(logits, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        next_token_probs(logits, top_k=0)


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_equals_the_transformers_nucleus_warper(top_p):
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 3
    theirs = TopPLogitsWarper(top_p)(None, logits.clone()).softmax(-1)
    ours = next_token_probs(logits, top_p=top_p)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_top_p_of_one_changes_nothing():
    logits = torch.randn(3, 20)
    torch.testing.assert_close(next_token_probs(logits, top_p=1.0), next_token_probs(logits))


def test_top_p_keeps_the_smallest_set_that_reaches_it():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    for top_p, kept in ((0.5, 1), (0.51, 2), (0.8, 2), (0.81, 3), (1.0, 4)):
        nucleus = next_token_probs(probs.log(), top_p=top_p)
        assert int((nucleus > 0).sum()) == kept, top_p
        torch.testing.assert_close(nucleus.sum(-1), torch.ones(1))


def test_gpt_generate_samples_only_from_the_nucleus():
    from utils.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=12, block_size=8, num_layers=1, num_heads=2,
                        d_model=16)).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    greedy = gpt.generate(prompt, 6, top_k=1)
    tiny_nucleus = gpt.generate(prompt, 6, top_p=1e-6, seed=3)
    assert torch.equal(greedy, tiny_nucleus)  # a nucleus of one token is greedy
