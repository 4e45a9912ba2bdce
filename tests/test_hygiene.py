"""What the user sees when the model echoes the pipeline's words or starts spinning."""

from __future__ import annotations

from typing import Any

from charter import Charter
from charter.models.base import ChatRequest, Message
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
    assert len(model.calls) == 4  # three new tries, then the honest note
    assert not any(m.role == "assistant" for m in model.calls[2].messages)
    told = model.calls[3].messages
    assert [m.role for m in told[-3:]] == ["user", "assistant", "user"]
    assert told[-2].content == LONG and "same answer as one of your earlier" in told[-1].content
    assert reply.trace["hygiene"].detail["told"] is True


def test_each_new_try_is_a_warmer_draw_with_another_seed() -> None:
    model = FakeModel([], default=LONG)
    charter = Charter(
        spec(
            critique={"enabled": False},
            models={"chat": {"backend": "fake", "replies": ["hi"], "temperature": 0.1, "seed": 7}},
        ),
        model=model,
    )
    history = [
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="Sorry, when?"),
    ]
    charter.respond(history)
    draws = [(call.temperature, call.seed) for call in model.calls]
    assert draws == [(0.1, 7), (0.8, 8), (0.8, 9), (0.8, 10)]


def test_a_copy_that_survives_one_new_try_is_tried_again_on_the_users_words_only() -> None:
    model = FakeModel([LONG, OTHER, "We open at nine on weekdays and at ten on Saturdays."])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    history = [
        Message(role="user", content="Hello"),
        Message(role="assistant", content="Hello! How can I help you with Acme Bank today?"),
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="How else can I reach you?"),
        Message(role="assistant", content=OTHER),
        Message(role="user", content="And on Saturdays?"),
    ]
    reply = charter.respond(history)
    assert reply.text == "We open at nine on weekdays and at ten on Saturdays."
    first_try, second_try = model.calls[1].messages, model.calls[2].messages
    assert [m.content for m in first_try if m.role == "assistant"][-2:] == [
        "Hello! How can I help you with Acme Bank today?",  # only the copied reply left out
        OTHER,
    ]
    assert not any(m.role == "assistant" for m in second_try)
    assert [m.content for m in second_try if m.role == "user"][-4:] == [
        "Hello",
        "When do you open?",
        "How else can I reach you?",
        "And on Saturdays?",
    ]
    assert reply.trace["hygiene"].detail["left_out"] == "every earlier reply"


def test_the_last_try_is_told_what_was_wrong_and_its_frame_is_taken_out() -> None:
    model = FakeModel(
        [LONG, LONG, LONG, "Sure, here's the rewritten message:\n\nWe open at ten on Saturdays."]
    )
    charter = Charter(spec(critique={"enabled": False}), model=model)
    history = [
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="And on Saturdays, exactly?"),
    ]
    reply = charter.respond(history)
    assert reply.text == "We open at ten on Saturdays."
    assert "Note from your supervisor" in model.calls[3].messages[-1].content


def test_the_told_try_is_still_held_to_what_the_user_asked() -> None:
    told = "We open at nine, Monday to Friday, and at ten on Saturdays until one."

    def answer(request: ChatRequest) -> str:
        last = request.messages[-1].content
        if "Rewrite your last reply" in last:  # critique's revision: the draft unchanged
            return request.messages[-2].content
        return told if "same answer as one of your earlier" in last else LONG

    model = FakeModel([], default=answer)
    charter = Charter(spec(), model=model)
    history = [
        Message(role="user", content="When do you open?"),
        Message(role="assistant", content=LONG),
        Message(role="user", content="Sorry, when exactly? Please do not use any commas."),
    ]
    reply = charter.respond(history)
    assert reply.trace["hygiene"].detail["told"] is True
    assert reply.text.startswith("We open at nine") and "," not in reply.text  # repaired


def test_a_reply_that_repeats_itself_is_tried_again_without_the_earlier_replies() -> None:
    looping = "\n".join(f"{n}. CEU Innovators" for n in range(1, 19))
    model = FakeModel([looping, "1. CEU Innovators\n2. Flow Forge\n3. Build Loop"])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    history = [
        Message(role="user", content="We are the Continuous Engineering Unit."),
        Message(role="assistant", content="Nice to meet you."),
        Message(role="user", content="Suggest team names."),
    ]
    reply = charter.respond(history)
    assert reply.text.endswith("Build Loop")
    assert not any(m.role == "assistant" for m in model.calls[1].messages)


def test_a_streamed_reply_loses_an_echoed_reminder_before_the_user_sees_it() -> None:
    model = FakeModel(["Branches open at nine.\n(Reminder: You are Penny, an assistant.)\nBye."])
    charter = Charter(spec(critique={"enabled": False}), model=model)
    released: list[str] = []
    reply = charter.respond("When do you open?", on_delta=released.append)
    shown = "".join(released)
    assert "Reminder" not in shown
    assert "Branches open at nine." in shown
    assert reply.text == shown
