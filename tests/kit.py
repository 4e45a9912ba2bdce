"""Tests that read as a conversation: a charter, a scripted model, and what the user sees.

    chat = TestChat(acme_file, "Hello, I'm Penny.")
    turn = chat.say("Who are you?")
    assert turn.text == "Hello, I'm Penny." and not turn.blocked

A `TestChat` is a real `Conversation` (the one `charter chat` holds) kept in an in-memory
store, so blocked streaks, escalations and drift carry from turn to turn as they do for a
user. Its model is a `FakeModel` (charter/models/fake.py): queue text, `decision(...)`s for
tool calls and `Structured(...)` JSON answers, in the order the turn asks for them. A
`Turn` says what the user got (text, blocked, citations, escalations) and which tools ran;
`turn.asked` holds the requests the model got this turn, for the tests that are about what
the model is told.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from charter import Charter, Conversation, Store
from charter.assistant import Reply
from charter.models.base import ChatRequest, Message
from charter.models.factory import build_model
from charter.models.fake import Answer, FakeModel, ToolCall
from charter.models.fake import Reply as Scripted
from charter.spec import CharterSpec, FakeModelSpec, load_charter
from charter.spec.loader import parse_charter
from charter.store.records import StoredEscalation

CharterLike = CharterSpec | Path | str | Mapping[str, Any]
"""A charter: its spec, its file, its YAML text, or its data."""


def as_spec(charter: CharterLike) -> CharterSpec:
    if isinstance(charter, CharterSpec):
        return charter
    if isinstance(charter, Path):
        return load_charter(charter)
    if isinstance(charter, str):
        return parse_charter(charter)
    return CharterSpec.model_validate(dict(charter))


@dataclass(frozen=True)
class Turn:
    """One turn as the user sees it, and the few facts about it tests check."""

    reply: Reply
    """Everything the turn returned (its trace, usage, cost), for what the fields below
    leave out."""
    asked: list[ChatRequest]
    """The requests the model got this turn (tool decisions, judges, the reply), in order."""

    @property
    def text(self) -> str:
        return self.reply.text

    @property
    def blocked(self) -> bool:
        return self.reply.blocked

    @property
    def escalations(self) -> list[dict[str, Any]]:
        """Hand-offs to a person this turn raised: id (the user's reference), trigger, reason."""
        return self.reply.escalations

    @property
    def triggers(self) -> list[str]:
        """Why each hand-off was raised ("user_request", "repeated_failure", ...)."""
        return [e["trigger"] for e in self.reply.escalations]

    @property
    def citations(self) -> list[str]:
        """Where each knowledge passage the reply cites comes from, in the order cited."""
        return [c["where"] for c in self.reply.citations]

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The calls to the charter's tools that ran this turn, with the arguments they ran
        with (a dangerous tool's call awaits a person instead: see `escalations`)."""
        if "tools" not in self.reply.trace:
            return []
        steps = self.reply.trace["tools"].detail.get("steps", [])
        return [
            ToolCall(s["decision"]["tool"], s["decision"]["arguments"])
            for s in steps
            if s.get("action") == "ran"
        ]

    @property
    def verdicts(self) -> dict[str, str]:
        """The stages that did more than pass the turn on: {stage: verdict} ("block",
        "rewrite", "escalate", "error")."""
        return {r.stage: r.verdict for r in self.reply.trace.records if r.verdict != "pass"}


class TestChat:
    """A conversation with `charter` whose model answers from `replies` (then `default`).

    With neither, a charter whose chat model is `backend: fake` answers with its own
    replies. `model` gives a ready `FakeModel` instead (a subclass, one shared by two
    chats). `native_tools`: the model calls tools as an OpenAI-compatible backend does.
    """

    __test__ = False  # a helper, not a class of tests

    def __init__(
        self,
        charter: CharterLike,
        *replies: Scripted,
        default: Answer | None = None,
        native_tools: bool | None = None,
        model: FakeModel | None = None,
        user: str | None = None,
    ) -> None:
        self.spec = as_spec(charter)
        self.model = model or self._model(list(replies), default, native_tools)
        self.charter = Charter(self.spec, model=self.model)
        self.store = Store(":memory:")
        self.conversation = Conversation(self.charter, self.store, user=user)
        self.turns: list[Turn] = []

    def _model(
        self, replies: list[Scripted], default: Answer | None, native_tools: bool | None
    ) -> FakeModel:
        chat = self.spec.models.chat
        if not replies and default is None and isinstance(chat, FakeModelSpec):
            model = build_model(chat)
            assert isinstance(model, FakeModel)
            if native_tools is not None:
                model.native_tools = native_tools
            return model
        return FakeModel(replies, default=default, native_tools=native_tools)

    def say(self, text: str) -> Turn:
        """The user says `text`; the turn as they see it."""
        before = len(self.model.calls)
        reply = self.conversation.send(text)
        turn = Turn(reply=reply, asked=self.model.calls[before:])
        self.turns.append(turn)
        return turn

    @property
    def history(self) -> list[Message]:
        """The conversation so far, both sides, as the user saw it."""
        said: list[Message] = []
        for turn in self.store.turns(self.conversation.id):
            said += [
                Message(role="user", content=turn.user),
                Message(role="assistant", content=turn.reply),
            ]
        return said

    @property
    def queued(self) -> list[StoredEscalation]:
        """The hand-offs waiting for a person (the support team's queue)."""
        return self.store.escalations("open")

    def close(self) -> None:
        self.charter.close()
        self.store.close()

    def __enter__(self) -> TestChat:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
