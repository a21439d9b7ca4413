"""utils.phrases.say glues a phrase under its key in English and `_zh` in Chinese."""

import pytest

from utils import phrases


@pytest.fixture
def glued(monkeypatch):
    calls = []
    monkeypatch.setattr(
        phrases, "glue", lambda key, value, display: calls.append((key, value, display))
    )
    return calls


def test_say_glues_both_languages_without_display(glued):
    phrases.say("zero_verdict", "gets it wrong ('20')", "译错了（'20'）")
    assert glued == [
        ("zero_verdict", "gets it wrong ('20')", False),
        ("zero_verdict_zh", "译错了（'20'）", False),
    ]


@pytest.mark.parametrize(
    "key, en, zh, message",
    [
        ("two words", "a", "甲", "key must be a name"),
        ("k", "", "甲", "en must be a non-empty str"),
        ("k", "a", "  ", "zh must be a non-empty str"),
        ("k", "a", None, "zh must be a non-empty str"),
    ],
)
def test_say_names_a_bad_argument(glued, key, en, zh, message):
    with pytest.raises(ValueError, match=message):
        phrases.say(key, en, zh)
    assert glued == []
