"""utils.experiments.temperature.repeated_phrase: greedy decoding's loops."""

from utils.experiments.temperature import repeated_phrase


def test_finds_the_longest_phrase_that_repeats():
    text = "And the LORD said, the LORD hold the LORD hold the LORD hold the LORD"
    phrase, count = repeated_phrase(text)
    assert count >= 3 and text.count(phrase) == count
    assert "the LORD" in phrase and len(phrase) > len("the LORD")
    longer = [text[i : i + len(phrase) + 1] for i in range(len(text) - len(phrase))]
    assert all(text.count(p) < 3 for p in longer)


def test_a_loop_that_does_not_fill_the_tail_is_still_found():
    # the case: the loop is not an exact period of the last 60 characters
    text = "the beginning was dark, " + "hold the LORD " * 3 + "and he said"
    phrase, count = repeated_phrase(text)
    assert phrase.strip() == "hold the LORD" and count == 3


def test_no_repeat():
    assert repeated_phrase("abcdefghijklmnopqrstuvwxyz" * 2) == (None, 0)
    assert repeated_phrase("abcdefgh" * 3, min_count=4) == (None, 0)
    assert repeated_phrase("") == (None, 0)
