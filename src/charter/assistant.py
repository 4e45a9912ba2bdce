"""`Charter`: a charter file made into an assistant you can talk to.

    charter = Charter.from_file("charter.yaml")
    reply = charter.respond("Who are you?")
    print(reply.text, reply.trace.stages)

A turn goes: the caller's messages -> `TurnState` -> the pipeline's stages (see
`pipeline.py`; today persona, then generate) -> `Reply`. Follow one turn by reading
`arespond` below and then each stage in `stages/`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.models.base import ChatModel, Message, Usage
from charter.models.factory import build_model
from charter.pipeline import Pipeline, Stage, Trace, TurnState
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec
from charter.stages import GenerateStage, PersonaStage

MessagesLike = str | Sequence[Message | dict[str, str]]


@dataclass(frozen=True)
class Reply:
    text: str
    blocked: bool
    block_reason: str | None
    trace: Trace
    usage: Usage
    ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.text,
            "blocked": self.blocked,
            "block_reason": self.block_reason,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "ms": round(self.ms, 3),
            "trace": self.trace.to_list(),
        }


class Charter:
    def __init__(self, spec: CharterSpec, *, model: ChatModel | None = None) -> None:
        self.spec = spec
        self._model = model
        self._pipeline: Pipeline | None = None

    @classmethod
    def from_file(cls, path: str | Path, *, model: ChatModel | None = None) -> Charter:
        return cls(load_charter(path), model=model)

    @property
    def model(self) -> ChatModel:
        """The chat model, built (and for local models, verified and loaded) on first use."""
        if self._model is None:
            self._model = build_model(self.spec.models.chat)
        return self._model

    def stages(self) -> list[Stage]:
        return [PersonaStage(self.spec), GenerateStage(self.model, self.spec.models.chat)]

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(
                self.stages(),
                failure=self.spec.on_failure,
                fallback_reply=self.spec.persona.fallback_reply(),
            )
        return self._pipeline

    async def arespond(
        self, messages: MessagesLike, *, on_delta: Callable[[str], None] | None = None
    ) -> Reply:
        """Answer the last user message of `messages` (a string is one user message)."""
        pipeline = self.pipeline  # builds (and loads the model) outside the turn's clock
        started = time.perf_counter()
        state = TurnState(charter=self.spec, messages=to_messages(messages), on_delta=on_delta)
        state = await pipeline.run(state)
        return Reply(
            text=state.reply or "",
            blocked=state.blocked,
            block_reason=state.block_reason,
            trace=state.trace,
            usage=state.usage,
            ms=(time.perf_counter() - started) * 1000,
        )

    def respond(
        self, messages: MessagesLike, *, on_delta: Callable[[str], None] | None = None
    ) -> Reply:
        """Blocking `arespond`, for scripts and the terminal (not inside an event loop)."""
        return asyncio.run(self.arespond(messages, on_delta=on_delta))

    def close(self) -> None:
        if self._model is not None:
            self._model.close()

    def __enter__(self) -> Charter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_messages(messages: MessagesLike) -> list[Message]:
    if isinstance(messages, str):
        items: list[Message] = [Message(role="user", content=messages)]
    else:
        items = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
    if not items or items[-1].role != "user":
        raise ValueError("the last message must be from the user")
    if any(m.role == "system" for m in items):
        raise ValueError(
            "system messages come from the charter; put instructions in the charter file"
        )
    return items
