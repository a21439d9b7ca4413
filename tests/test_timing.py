"""utils.timing: candidates run in turns, and their medians."""

import pytest

from utils import timing


def test_candidates_run_in_turns_after_the_warmup():
    calls = []
    times = timing.interleaved_times(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        repeat=3,
        warmup=1,
    )
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    assert all(s >= 0 for t in times.values() for s in t)


def test_the_median_ignores_one_disturbed_run(monkeypatch):
    clock = iter([0, 1, 10, 10 + 100, 200, 201, 300, 301, 400, 401])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    medians = timing.median_times({"a": lambda: None}, repeat=5, warmup=0)
    assert medians == {"a": 1}  # runs of 1, 100, 1, 1, 1 seconds


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"candidates": {}}, "candidates must name at least one"),
        ({"candidates": {"a": print}, "repeat": 0}, "repeat must be a positive int"),
        ({"candidates": {"a": print}, "warmup": -1}, "warmup must be an int >= 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timing.interleaved_times(**kwargs)
