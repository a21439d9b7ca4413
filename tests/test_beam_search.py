"""Beam search against an exhaustive search over every sequence, on toy models."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.beam_search import beam_search, beam_search_batch

BOS, EOS = 0, 1


def _second_order_model(V, seed):
    """A toy model whose next token depends on the last two tokens.

    The state holds the previous token, so a search that reorders the states wrongly
    scores the wrong sequences.
    """
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(V, V, V, generator=g).log_softmax(-1)  # (prev, last, next)

    def step(tokens, state):
        (previous,) = state  # (K, 1)
        return table[previous[:, 0], tokens], (tokens[:, None],)

    return step, table


def _exhaustive(table, V, max_len):
    """Every sequence (ending at EOS, or cut at max_len) and its log-probability."""
    out = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                continue
            previous, last, score = BOS, BOS, 0.0
            for token in seq:
                score += table[previous, last, token].item()
                previous, last = last, token
            out.append((list(seq), score))
    return out


def _search(step, V, beam_size, max_len):
    start = (torch.tensor([[BOS]]),)
    return beam_search(step, start, bos_id=BOS, eos_id=EOS, beam_size=beam_size,
                       max_len=max_len)


@settings(max_examples=30, deadline=None)
@given(V=st.integers(2, 4), max_len=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_a_beam_as_wide_as_every_sequence_finds_the_best_one(V, max_len, seed):
    step, table = _second_order_model(V, seed)
    best_seq, best_score = max(_exhaustive(table, V, max_len), key=lambda s: s[1])
    seq, score = _search(step, V, V**max_len, max_len)[0]
    assert seq == best_seq
    assert score == pytest.approx(best_score, abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(V=st.integers(2, 5), max_len=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_a_beam_of_one_is_greedy_decoding(V, max_len, seed):
    step, table = _second_order_model(V, seed)
    previous, last, greedy, score = BOS, BOS, [], 0.0
    while len(greedy) < max_len and (not greedy or greedy[-1] != EOS):
        log_probs = table[previous, last]
        token = log_probs.argmax().item()
        greedy.append(token)
        score += log_probs[token].item()
        previous, last = last, token
    seq, got = _search(step, V, 1, max_len)[0]
    assert seq == greedy
    assert got == pytest.approx(score, abs=1e-5)


def test_scores_are_sorted_and_are_the_sequences_log_probabilities():
    V, max_len = 4, 3
    step, table = _second_order_model(V, 0)
    exact = {tuple(s): p for s, p in _exhaustive(table, V, max_len)}
    results = _search(step, V, 3, max_len)
    assert [p for _, p in results] == sorted((p for _, p in results), reverse=True)
    for seq, score in results:
        assert score == pytest.approx(exact[tuple(seq)], abs=1e-5)


def test_a_wider_beam_sometimes_beats_greedy_and_never_loses_to_it_here():
    gains = []
    for seed in range(40):
        step, _ = _second_order_model(4, seed)
        greedy = _search(step, 4, 1, 4)[0][1]
        wide = _search(step, 4, 4**4, 4)[0][1]
        gains.append(wide - greedy)
    assert min(gains) >= -1e-6  # the exhaustive beam is never worse
    assert max(gains) > 0.1  # and on some models clearly better


@settings(max_examples=40, deadline=None)
@given(V=st.integers(2, 5), max_len=st.integers(1, 5), beam_size=st.integers(1, 12),
       rows=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_the_batched_search_finds_each_rows_best_as_the_single_one_does(
        V, max_len, beam_size, rows, seed):
    # rows start from different previous tokens, so they stop at different steps
    step, _ = _second_order_model(V, seed)
    starts = torch.randint(V, (rows, 1), generator=torch.Generator().manual_seed(seed))
    args = dict(bos_id=BOS, eos_id=EOS, beam_size=beam_size, max_len=max_len)
    batched = beam_search_batch(step, (starts,), **args)
    assert len(batched) == rows
    for row, (seq, score) in zip(starts, batched):
        alone, alone_score = beam_search(step, (row[None],), **args)[0]
        assert seq == alone
        assert score == alone_score


def test_the_batched_search_stops_a_row_once_its_best_is_finished():
    # a model that ends at once with probability 0.9: no longer sequence can win, and
    # a step that counts its calls shows that the search did not run to max_len
    log_probs = torch.tensor([0.05, 0.9, 0.05]).log()  # BOS, EOS, another token
    calls = []

    def step(tokens, state):
        calls.append(len(tokens))
        return log_probs.expand(len(tokens), 3), state

    found = beam_search_batch(step, (torch.zeros(2, 1),), bos_id=BOS, eos_id=EOS,
                              beam_size=2, max_len=6)
    assert [seq for seq, _ in found] == [[EOS], [EOS]]
    assert found[0][1] == pytest.approx(float(log_probs[EOS]))
    assert len(calls) == 1 and calls[0] == 4  # one step, 2 rows x 2 beams


@pytest.mark.parametrize("kwargs, words", [
    (dict(beam_size=0), "beam_size"),
    (dict(max_len=0), "max_len"),
    (dict(state=(torch.zeros(2, 1),)), "one sequence"),
])
def test_bad_arguments_get_a_clear_error(kwargs, words):
    step, _ = _second_order_model(3, 0)
    args = dict(state=(torch.tensor([[BOS]]),), bos_id=BOS, eos_id=EOS, beam_size=2,
                max_len=3)
    args.update(kwargs)
    state = args.pop("state")
    with pytest.raises(ValueError, match=words):
        beam_search(step, state, **args)


def test_the_batched_search_refuses_a_state_of_mixed_batch_sizes():
    step, _ = _second_order_model(3, 0)
    with pytest.raises(ValueError, match="same first dimension"):
        beam_search_batch(step, (torch.zeros(2, 1), torch.zeros(3, 1)), bos_id=BOS,
                          eos_id=EOS, beam_size=2, max_len=3)
