"""Constitutional critique and drift control, read as conversations on a fake model."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from charter import Charter, FakeModel
from charter.models.base import Message
from charter.models.fake import Structured
from charter.persona.checks import cut_to_words, persona_checks
from charter.spec import CharterSpec
from tests.kit import TestChat

Chat = Callable[..., TestChat]  # the `chat` fixture (conftest.py)

BASE = {
    "id": "tutor",
    "persona": {
        "name": "Ada",
        "role": "tutor",
        "style": {"max_words": 12, "sign_off": "Happy coding!"},
    },
    "constitution": [
        {"id": "kind", "text": "Never belittle the learner."},
        {"id": "no-jargon", "text": "Avoid jargon.", "check": {"forbidden": ["monad"]}},
    ],
    "guards": {"input": [], "output": []},
}


def spec(**changes: object) -> CharterSpec:
    data = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        data[key] = value
    return CharterSpec.model_validate(data)


def test_checks_are_compiled_from_style_and_principles() -> None:
    ids = [c.id for c in persona_checks(spec())]
    assert ids == ["style.max_words", "style.ends_with", "no-jargon.forbidden"]


def test_checks_normalise_punctuation_and_case() -> None:
    checks = {c.id: c for c in persona_checks(spec())}
    assert checks["style.ends_with"].passes("Great question. happy coding")
    assert not checks["style.ends_with"].passes("Great question.")


def test_cut_keeps_whole_sentences() -> None:
    assert (
        cut_to_words("One two three. Four five six. Seven.", 6) == "One two three. Four five six."
    )
    assert cut_to_words("a b c d e f g", 3) == "a b c…"


def test_a_compliant_draft_is_not_revised(chat: Chat) -> None:
    # Only the draft is scripted: a revision asked for would find no reply and fail the turn.
    turn = chat(spec(), "Loops repeat code. Happy coding!").say("What is a loop?")
    assert turn.text == "Loops repeat code. Happy coding!"
    assert not turn.blocked
    assert turn.verdicts == {}  # critique passed the draft on unchanged


def test_a_violating_draft_is_revised_with_the_reasons(chat: Chat) -> None:
    draft = "A monad is a monoid in the category of endofunctors, obviously, as you know."
    turn = chat(spec(), draft, "A loop repeats code. Happy coding!").say("What is a loop?")
    assert turn.text == "A loop repeats code. Happy coding!"  # the revision, as it came
    _, revision = turn.asked
    asked = revision.messages[-1].content
    # The model is told what its draft broke: every rule, with the charter's words.
    assert "style.max_words: must have at most 12 words" in asked
    assert "style.ends_with" in asked and "Happy coding!" in asked
    assert 'no-jargon.forbidden: Avoid jargon. (The reply must not contain "monad".)' in asked
    assert revision.messages[-2] == Message(role="assistant", content=draft)
    assert turn.verdicts == {"critique": "rewrite"}  # the revision is recorded in the trace


def test_what_revision_cannot_fix_is_repaired_in_code() -> None:
    long = "Loops run code again. They stop when a condition is false. Use them often."
    model = FakeModel([long, long])
    reply = Charter(spec(), model=model).respond("What is a loop?")
    # Cut to the word limit at a sentence boundary, and signed off: both rules hold.
    assert reply.text == "Loops run code again.\nHappy coding!"
    assert not reply.blocked


def test_rounds_zero_means_repair_only() -> None:
    # Only the draft is scripted: a revision asked for would find no reply and fail the turn.
    model = FakeModel(["Loops repeat code."])
    reply = Charter(spec(critique={"rounds": 0}), model=model).respond("What is a loop?")
    assert reply.text == "Loops repeat code.\nHappy coding!"
    assert not reply.blocked


def test_judge_critique_for_principles_without_a_check(chat: Chat) -> None:
    # The judge's verdicts are Structured: the fake answers them only to a request that
    # asks for a JSON schema, and checks them against it (the judge answers in its schema).
    unkind = Structured({"violations": [{"principle": "kind", "why": "calls them slow"}]})
    tutor = chat(
        spec(critique={"judge": True, "rounds": 2}),
        "Even a slow learner gets loops. Happy coding!",
        unkind,
        "Loops are easy, even for you. Happy coding!",  # the revision is judged again ...
        unkind,
        "Loops repeat code for you. Happy coding!",  # ... and revised while it is unkind
        Structured({"violations": []}),
    )
    turn = tutor.say("What is a loop?")
    assert turn.text == "Loops repeat code for you. Happy coding!"
    revisions = [r.messages[-1].content for r in turn.asked if r.json_schema is None][1:]
    assert len(revisions) == 2
    assert all("kind: Never belittle the learner. (calls them slow)" in r for r in revisions)


def test_drift_re_anchors_the_next_turn(chat: Chat) -> None:
    tutor = chat(
        spec(),
        "Sure thing, here is a very long answer that goes on and on past the limit.",
        "Loops repeat. Happy coding!",  # the revision of turn 1
        "Functions group code. Happy coding!",  # turn 2
    )
    first = tutor.say("What is a loop?")
    assert first.reply.carry.reanchor  # the draft drifted: the next turn is re-anchored
    assert "re-anchored" in (first.reply.trace["drift"].reason or "")  # the trace says why
    second = tutor.say("And a function?")
    [request] = second.asked
    sent = request.messages[-1].content
    assert sent.startswith("(Reminder: You are Ada, a tutor.")
    assert "Avoid jargon." in sent  # the checked principles are restated too
    assert sent.endswith("And a function?")
    assert not second.reply.carry.reanchor  # back on persona: the turn after is not
    stored = [m.content for m in tutor.store.context_messages(tutor.conversation.id)]
    assert "And a function?" in stored  # the reminder is not saved as the user's words


def test_a_revision_sees_the_latest_exchange_only() -> None:
    """With the whole conversation in view, a small model 'revised' by copying an earlier
    reply; the revision request carries the latest user message and the draft only."""
    model = FakeModel(
        [
            "Functions are monads of code. Happy coding!",
            "Functions group code. Happy coding!",
        ]
    )
    history = [
        {"role": "user", "content": "What is a loop?"},
        {"role": "assistant", "content": "Loops repeat code. Happy coding!"},
        {"role": "user", "content": "And a function?"},
    ]
    reply = Charter(spec(), model=model).respond(history)
    assert reply.text == "Functions group code. Happy coding!"
    sent = [m.content for m in model.calls[1].messages]
    assert "Loops repeat code. Happy coding!" not in sent
    assert sent[1:3] == ["And a function?", "Functions are monads of code. Happy coding!"]
    assert model.calls[1].messages[0].role == "system"


def test_critique_can_be_turned_off() -> None:
    model = FakeModel(["x " * 40])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    reply = charter.respond("hi")
    assert "critique" not in reply.trace
    assert "drift" not in reply.trace


@pytest.mark.parametrize("rounds", [4, -1])
def test_rounds_are_bounded(rounds: int) -> None:
    with pytest.raises(ValueError, match=r"critique\.rounds"):
        spec(critique={"rounds": rounds})
