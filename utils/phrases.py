"""Words that the text glues in, in both editions' languages.

A chapter's verdicts ("about as fast as", "gets it wrong ('20')") are computed from the
run's numbers and glued into the prose. The Chinese edition is built from the same
execution (scripts/zh_edition.py), so every such phrase is glued twice: in English
under its key and in Chinese under the key with `_zh`, which the Chinese pages use.
Numbers are glued once: they read the same in both.

    say("zero_verdict", *(("translates it correctly", "翻译正确") if ok else
                          (f"gets it wrong ({guess!r})", f"译错了（{guess!r}）")))
"""

from myst_nb import glue


def say(key: str, en: str, zh: str) -> None:
    """Glue the phrase `en` as `key` and its Chinese `zh` as `key + "_zh"`."""
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"key must be a name like 'zero_verdict', got {key!r}")
    for name, text in (("en", en), ("zh", zh)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty str, got {name}={text!r}")
    glue(key, en, display=False)
    glue(f"{key}_zh", zh, display=False)
