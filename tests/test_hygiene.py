"""What the user sees when the model echoes the pipeline's words or starts spinning."""

from __future__ import annotations

from typing import Any

from charter import Charter
from charter.models.base import Message
from charter.models.fake import FakeModel
from charter.spec.models import CharterSpec

LONG = (
    "Our branches open at nine in the morning and close at five in the evening on weekdays, "
    "and on Saturdays they open from ten until one."
)
OTHER = "You can also reach us by phone any day between eight in the morning and eight at night."


def spec(**fields: Any) -> CharterSpec:
    base: dict[str, Any] = {
        "id": "hygiene",
        "persona": {"name": "Penny", "role": "assistant", "organisation": "Acme Bank"},
        "models": {"chat": {"backend": "fake", "replies": ["hi"]}},
        "guards": {"input": [], "output": []},
        "drift": {"enabled": False},
    }
    return CharterSpec.model_validate({**base, **fields})


def test_a_revision_the_model_framed_reaches_the_user_without_its_frame() -> None:
    model = FakeModel(
        [
            "Our branches open at nine in the morning and close at five in the evening.",
            "Sure, here's the rewritten message that follows the rules:\n\n---\n\n"
            "Branches open 9 to 5.\n\n---",
        ]
    )
    charter = Charter(
        spec(persona={"name": "Penny", "role": "assistant", "style": {"max_words": 8}}), model=model
    )
    released: list[str] = []
    reply = charter.respond("When do you open?", on_delta=released.append)
    assert reply.text == "Branches open 9 to 5."
    assert "".join(released) == reply.text
    assert reply.trace["critique"].verdict == "rewrite"  # the trace keeps the draft


def test_a_reply_that_copies_an_earlier_one_is_asked_for_again_without_it() -> None:
    model = FakeModel([LONG, OTHER])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    history = [
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="And how else can I reach you?"),
    ]
    reply = charter.respond(history)
    assert reply.text == OTHER
    second = model.calls[1]
    assert all(m.content != LONG for m in second.messages)  # the copied reply is left out


def test_a_conversation_that_keeps_spinning_is_told_so_and_offered_a_person() -> None:
    model = FakeModel([], default=LONG)
    escalation = {"contact": "a member of our support team"}
    charter = Charter(
        spec(
            critique={"enabled": False},
            persona={"name": "Penny", "role": "assistant", "escalation": escalation},
        ),
        model=model,
    )
    history = [
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="Sorry, when?"),
    ]
    reply = charter.respond(history)
    assert "same answer" in reply.text
    assert "a member of our support team" in reply.text
    assert LONG not in reply.text
    assert len(model.calls) == 2  # one new try, then the honest note


def test_a_streamed_reply_loses_an_echoed_reminder_before_the_user_sees_it() -> None:
    model = FakeModel(["Branches open at nine.\n(Reminder: You are Penny, an assistant.)\nBye."])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    released: list[str] = []
    reply = charter.respond("When do you open?", on_delta=released.append)
    shown = "".join(released)
    assert "Reminder" not in shown
    assert "Branches open at nine." in shown
    assert reply.text == shown
