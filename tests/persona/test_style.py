"""Marks of tone held in code: no exclamation marks, no emoji, in the persona's own words."""

from __future__ import annotations

import pytest

from charter import Charter, FakeModel
from charter.persona.checks import persona_checks
from charter.persona.compile import compile_system_prompt
from charter.persona.style import calm, exclaims, has_emoji, own_words, without_emoji
from charter.spec import CharterSpec


def charter(**style: bool) -> CharterSpec:
    return CharterSpec.model_validate(
        {
            "id": "calm",
            "persona": {"name": "Nova", "role": "assistant", "style": style},
            "guards": {"input": [], "output": []},
            "models": {"chat": {"backend": "fake"}},
        }
    )


@pytest.mark.parametrize(
    ("text", "calmed"),
    [
        ("You're welcome! Here's your roll.", "You're welcome. Here's your roll."),
        ("Really?! Great!!", "Really? Great."),
        ("¡Hola! Bien.", "Hola. Bien."),
        ('Run `print("Hi!")` and you will see it!', 'Run `print("Hi!")` and you will see it.'),
        ('The film "Airplane!" is a comedy!', 'The film "Airplane!" is a comedy.'),
        (
            "```\nraise SystemExit('Stop!')\n```\nRun it again!",
            "```\nraise SystemExit('Stop!')\n```\nRun it again.",
        ),
    ],
)
def test_exclamation_marks_of_its_own_words_become_full_stops(text: str, calmed: str) -> None:
    assert exclaims(text)
    assert calm(text) == calmed
    assert not exclaims(calmed)


def test_code_and_quotes_are_not_its_own_words() -> None:
    assert not exclaims('Type `echo "Hi!"` to print it.')
    assert not exclaims('She said "Stop!" and left.')
    assert "Stop" not in own_words('She said "Stop!" and left.')


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("Done 😊 anything else?", "Done anything else?"),
        ("Great choice 🎉.", "Great choice."),
        ("Thanks :) see you", "Thanks see you"),
        ("Family 👨‍👩‍👧 plans", "Family plans"),
    ],
)
def test_emoji_and_emoticons_are_taken_out(text: str, bare: str) -> None:
    assert has_emoji(text)
    assert without_emoji(text) == bare


def test_times_ratios_and_links_are_not_emoticons() -> None:
    for text in ("Meet at 10:30 (not 11).", "Mix at a ratio of 3:1 :", "See https://x.io/a:b"):
        assert not has_emoji(text), text


def test_the_style_fields_compile_into_the_prompt_and_into_checks() -> None:
    spec = charter(no_exclamation_marks=True, no_emoji=True)
    assert [c.id for c in persona_checks(spec)] == ["style.no_exclamation_marks", "style.no_emoji"]
    prompt = compile_system_prompt(spec).text
    assert "Never use exclamation marks." in prompt and "Never use emoji or emoticons." in prompt
    assert persona_checks(charter()) == []  # off by default


def test_a_principle_can_carry_the_check_too() -> None:
    spec = CharterSpec.model_validate(
        {
            "id": "calm",
            "persona": {"name": "Nova", "role": "assistant"},
            "constitution": [
                {"id": "calm", "text": "Stay calm.", "check": {"no_exclamation_marks": True}}
            ],
            "models": {"chat": {"backend": "fake"}},
        }
    )
    [check] = persona_checks(spec)
    assert check.id == "calm.no_exclamation_marks" and not check.passes("Wow!")


def test_critique_revises_then_repairs_an_exclaiming_reply() -> None:
    loud = "You're welcome! Your card arrives on Monday 🎉"
    model = FakeModel([loud, loud])  # the draft, and a revision that exclaims again
    reply = Charter(charter(no_exclamation_marks=True, no_emoji=True), model=model).respond(
        "Thanks, when does my card come?"
    )
    assert reply.text == "You're welcome. Your card arrives on Monday"
    critique = reply.trace["critique"].detail
    assert critique["draft_violations"][:2] == [
        "style.no_exclamation_marks: must not use exclamation marks (quotes and code aside)",
        "style.no_emoji: must not use emoji or emoticons (quotes and code aside)",
    ]
    assert critique["repaired"] is True
