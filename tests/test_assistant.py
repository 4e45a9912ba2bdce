from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from charter import Charter, Conversation, ConversationNotFoundError, FakeModel, Message, Store
from charter.errors import ModelError
from charter.spec import load_charter
from tests.conftest import ACME_STAGES
from tests.kit import TestChat

Chat = Callable[..., TestChat]  # the `chat` fixture (conftest.py)


@pytest.fixture
def penny(acme_file: Path) -> tuple[Charter, FakeModel]:
    model = FakeModel(default="Hello, I'm Penny from Acme Bank.")
    return Charter(load_charter(acme_file), model=model), model


def test_respond_runs_persona_then_generate(penny: tuple[Charter, FakeModel]) -> None:
    charter, model = penny
    reply = charter.respond("Who are you?")
    assert reply.text == "Hello, I'm Penny from Acme Bank."
    assert reply.trace.stages == ACME_STAGES
    assert not reply.blocked
    [call] = model.calls
    assert call.messages[0].role == "system"
    assert call.messages[0].content.startswith("You are Penny")
    assert call.messages[-1] == Message(role="user", content="Who are you?")
    assert call.max_tokens == 200  # from the charter
    assert reply.usage.completion_tokens == reply.trace["generate"].completion_tokens > 0


def test_trace_does_not_expose_the_canary(penny: tuple[Charter, FakeModel]) -> None:
    charter, model = penny
    reply = charter.respond("hi")
    system = model.calls[0].messages[0].content
    canary = system.split("Internal reference ")[1].split(":")[0]
    assert canary not in str(reply.to_dict())


def test_streaming_deltas_add_up_to_the_reply(penny: tuple[Charter, FakeModel]) -> None:
    charter, _ = penny
    pieces: list[str] = []
    reply = charter.respond("hi", on_delta=pieces.append)
    assert "".join(pieces) == reply.text


def test_model_failure_fails_closed_with_the_persona_apology(acme_file: Path, chat: Chat) -> None:
    penny = chat(acme_file, ModelError("connection refused"))
    turn = penny.say("hi")
    assert turn.blocked
    assert turn.text == penny.spec.persona.fallback_reply()
    assert "0800 123 456" in turn.text
    assert turn.verdicts == {"generate": "error"}
    assert "connection refused" in (turn.reply.trace["generate"].error or "")


def test_bad_messages_are_rejected(penny: tuple[Charter, FakeModel]) -> None:
    charter, _ = penny
    with pytest.raises(ValueError, match="last message must be from the user"):
        charter.respond([{"role": "assistant", "content": "hi"}])
    with pytest.raises(ValueError, match="system messages come from the charter"):
        charter.respond([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])


def test_long_history_is_trimmed_to_the_window(acme_file: Path) -> None:
    model = FakeModel(default="ok", context_window=1200)
    charter = Charter(load_charter(acme_file), model=model)
    history: list[Message] = []
    for i in range(40):
        history += [
            Message(role="user", content=f"question {i} " + "word " * 40),
            Message(role="assistant", content=f"answer {i} " + "word " * 40),
        ]
    # a message no tool is relevant to: the last model call is the reply's (notes on the
    # dropped turns come first)
    reply = charter.respond([*history, Message(role="user", content="What is the weather today?")])
    sent = model.calls[-1].messages
    assert sent[-1].content == "What is the weather today?"
    assert len(sent) < len(history)
    assert reply.trace["generate"].detail["dropped_messages"] == len(history) + 2 - len(sent)


def test_conversation_is_saved_and_resumed(acme_file: Path, tmp_path: Path) -> None:
    spec = load_charter(acme_file)
    model = FakeModel(["first answer", "second answer"])
    store = Store(tmp_path / "c.db")
    try:
        first = Conversation(Charter(spec, model=model), store)
        first.send("first question")
        resumed = Conversation(Charter(spec, model=model), store, first.id)
        asyncio.run(resumed.asend("second question"))
        contents = [m.content for m in model.calls[1].messages[1:]]
        assert contents == ["first question", "first answer", "second question"]
        assert [t.reply for t in store.turns(first.id)] == ["first answer", "second answer"]
        with pytest.raises(ConversationNotFoundError):
            Conversation(Charter(spec, model=model), store, "missing")
        other = spec.model_copy(update={"id": "other-bank"})
        with pytest.raises(ConversationNotFoundError, match="belongs to charter"):
            Conversation(Charter(other, model=model), store, first.id)
    finally:
        store.close()


def test_trimmed_history_keeps_the_users_original_goal(acme_file: Path) -> None:
    model = FakeModel(default="ok", context_window=1200)
    charter = Charter(load_charter(acme_file), model=model)
    goal = "I want to move my savings account to the Premium plan before Friday."
    history = [Message(role="user", content=goal), Message(role="assistant", content="Sure.")]
    for i in range(30):
        history += [
            Message(role="user", content=f"detail {i} " + "word " * 40),
            Message(role="assistant", content=f"noted {i} " + "word " * 40),
        ]
    charter.respond([*history, Message(role="user", content="So, can you do it?")])
    sent = model.calls[-1].messages
    system = sent[0].content
    assert system.startswith("You are Penny")  # the persona is pinned, never cut
    assert f"The user's first request was: «{goal}»" in system
    assert sent[1].role == "user"
    assert sent[-1].content == "So, can you do it?"
    assert goal not in [m.content for m in sent[1:]]


def test_short_history_is_sent_whole(acme_file: Path, chat: Chat) -> None:
    penny = chat(acme_file, "hello", "We open at 9.")
    penny.say("hi")
    turn = penny.say("hours?")
    assert turn.text == "We open at 9."
    [request] = turn.asked
    assert [m.content for m in request.messages[1:]] == ["hi", "hello", "hours?"]
    assert "first request" not in request.messages[0].content
