"""Style features: how a reply is written, in the persona's own words."""

from __future__ import annotations

import pytest

from charter.persona.style import NAMES, own_words, style_features


def feature(text: str, name: str) -> float:
    return float(style_features(text)[NAMES.index(name)])


def test_exclamations_and_emoji_count_per_sentence() -> None:
    calm = "Your transfer is on its way. It arrives within two working days."
    excited = "Your transfer is on its way! It arrives within two working days!"
    assert feature(calm, "exclamations") == 0.0
    assert feature(excited, "exclamations") == pytest.approx(1.0)
    assert feature("Done. Anything else? 😊", "emoji") > 0
    assert feature("Done. Anything else? :)", "emoji") > 0
    assert feature("Done. Anything else?", "emoji") == 0.0
    assert feature("Done. Anything else?", "questions") == pytest.approx(0.5)


def test_code_and_quoted_text_are_not_the_personas_voice() -> None:
    reply = 'Run `print("Hi!")` and it prints the text "Hello there!" to the screen.'
    assert "!" not in own_words(reply)
    assert feature(reply, "exclamations") == 0.0
    fenced = "Here is the fix.\n```python\nraise SystemExit('Stop!!!')\n```\nRun it again."
    assert feature(fenced, "exclamations") == 0.0


def test_capitals_and_contractions_are_rates_of_the_words() -> None:
    assert feature("This is VERY IMPORTANT, please read it.", "shouting") > 0
    assert feature("The NASA mission launched in 1969.", "shouting") > 0  # acronyms count too
    assert feature("I'm sure you'll love it, don't worry.", "contractions") > feature(
        "I am sure you will love it; do not worry.", "contractions"
    )


def test_every_feature_lies_in_the_unit_interval() -> None:
    for text in ("", "!!!!!!", "A " * 500, "😊" * 40, "WOW " * 30, "?"):
        values = style_features(text)
        assert len(values) == len(NAMES)
        assert ((values >= 0) & (values <= 1)).all(), text
