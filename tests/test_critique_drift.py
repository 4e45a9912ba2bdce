"""Constitutional critique and drift control, read as conversations on a fake model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter import Charter, Conversation, FakeModel, Store
from charter.persona.checks import cut_to_words, persona_checks
from charter.spec import CharterSpec

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


def test_a_compliant_draft_is_not_revised() -> None:
    model = FakeModel(["Loops repeat code. Happy coding!"])
    reply = Charter(spec(), model=model).respond("What is a loop?")
    assert reply.text == "Loops repeat code. Happy coding!"
    assert len(model.calls) == 1
    critique = reply.trace["critique"]
    assert critique.verdict == "pass"
    assert critique.detail["draft_violations"] == []
    assert critique.detail["revisions"] == 0


def test_a_violating_draft_is_revised_with_the_reasons() -> None:
    model = FakeModel(
        [
            "A monad is a monoid in the category of endofunctors, obviously, as you know.",
            "A loop repeats code. Happy coding!",
        ]
    )
    reply = Charter(spec(), model=model).respond("What is a loop?")
    assert reply.text == "A loop repeats code. Happy coding!"
    revision = model.calls[1].messages[-1].content
    assert "style.max_words: must have at most 12 words" in revision
    assert 'no-jargon.forbidden: Avoid jargon. (The reply must not contain "monad".)' in revision
    assert model.calls[1].messages[-2].role == "assistant"
    critique = reply.trace["critique"]
    assert [v.split(":")[0] for v in critique.detail["draft_violations"]] == [
        "style.max_words",
        "style.ends_with",
        "no-jargon.forbidden",
    ]
    assert critique.verdict == "rewrite"
    assert critique.detail["revisions"] == 1
    assert critique.detail["final_violations"] == []


def test_what_revision_cannot_fix_is_repaired_in_code() -> None:
    long = "Loops run code again. They stop when a condition is false. Use them often."
    model = FakeModel([long, long])
    reply = Charter(spec(), model=model).respond("What is a loop?")
    assert reply.text == "Loops run code again.\nHappy coding!"
    assert reply.trace["critique"].detail["repaired"] is True
    assert reply.trace["critique"].detail["final_violations"] == []


def test_rounds_zero_means_repair_only() -> None:
    model = FakeModel(["Loops repeat code."])
    reply = Charter(spec(critique={"rounds": 0}), model=model).respond("What is a loop?")
    assert reply.text == "Loops repeat code.\nHappy coding!"
    assert len(model.calls) == 1


def test_judge_critique_for_principles_without_a_check() -> None:
    judge_says = json.dumps({"violations": [{"principle": "kind", "why": "calls them slow"}]})
    model = FakeModel(
        [
            "Even a slow learner gets loops. Happy coding!",
            judge_says,
            "Loops repeat code for you. Happy coding!",
            json.dumps({"violations": []}),
        ]
    )
    reply = Charter(spec(critique={"judge": True}), model=model).respond("What is a loop?")
    assert reply.text == "Loops repeat code for you. Happy coding!"
    assert model.calls[1].json_schema is not None  # the judge answers in its schema
    assert "kind: Never belittle the learner." in model.calls[2].messages[-1].content
    assert reply.trace["critique"].detail["judge_calls"] == 2


def test_drift_re_anchors_the_next_turn(tmp_path: Path) -> None:
    model = FakeModel(
        [
            "Sure thing, here is a very long answer that goes on and on past the limit.",
            "Loops repeat. Happy coding!",  # the revision of turn 1
            "Functions group code. Happy coding!",  # turn 2
        ]
    )
    store = Store(tmp_path / "c.db")
    try:
        chat = Conversation(Charter(spec(), model=model), store)
        first = chat.send("What is a loop?")
        drift = first.trace["drift"]
        assert drift.detail["score"] < 1.0
        assert drift.detail["reanchor_next"] is True
        assert "re-anchored" in (drift.reason or "")
        second = chat.send("And a function?")
        sent = model.calls[2].messages[-1].content
        assert sent.startswith("(Reminder: You are Ada, a tutor.")
        assert "Avoid jargon." in sent  # the checked principles are restated too
        assert sent.endswith("And a function?")
        assert second.trace["generate"].detail["reanchored"] is True
        assert second.trace["drift"].detail["reanchor_next"] is False
        stored = [m.content for m in store.context_messages(chat.id)]
        assert "And a function?" in stored  # the reminder is not saved as the user's words
    finally:
        store.close()


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
