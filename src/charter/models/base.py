"""The one protocol every model backend speaks: sync and async, whole or streamed.

Any call may be constrained to a JSON schema (`ChatRequest.json_schema`).

A backend implements `complete` and `stream` (the sync pair); the async pair defaults to
running those on a worker thread, and backends with a native async client override it.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from charter.errors import ModelError

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message, in the OpenAI wire shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str

    def to_wire(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def latest_user(messages: Sequence[Message]) -> str:
    """What the user said last in `messages` ("" when the user said nothing)."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


@dataclass(frozen=True)
class ChatRequest:
    """One call to a chat model: the messages and how to generate the reply."""

    messages: Sequence[Message]
    max_tokens: int = 256
    temperature: float = 0.2
    seed: int | None = None
    stop: Sequence[str] = ()
    json_schema: dict[str, Any] | None = None
    """When set, the reply must be JSON matching this schema (grammar-constrained locally)."""
    tools: Sequence[dict[str, Any]] = ()
    """Functions offered as native tool calls ({"name", "description", "parameters"}), for
    backends whose `native_tools` is true; the model may answer with `tool_calls`."""
    tool_choice: Literal["auto", "required"] = "auto"
    """With `tools`: "required" asks the backend for at least one call."""
    top_p: float | None = None
    """Nucleus sampling; None leaves the backend's default."""


@dataclass(frozen=True)
class Sampling:
    """A caller's generation options for one turn.

    They are the gateway's `temperature`, `top_p`, `max_tokens`, `stop` and `seed`. Each None (or
    empty `stop`) keeps the charter's model setting; `max_tokens` can only lower the model's own
    `max_tokens`, never raise it. They shape the reply (its generation and its revisions), not the
    internal calls (tool decisions, judges), which keep their own settings.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def limit(self, max_tokens: int) -> int:
        """The reply's token limit, given the model's own."""
        return max_tokens if self.max_tokens is None else min(self.max_tokens, max_tokens)

    def request(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        json_schema: dict[str, Any] | None = None,
    ) -> ChatRequest:
        """The request for a reply: the model's settings, overridden by these options.

        These options override the model's `max_tokens` (lower only), `temperature` and `seed`;
        `stop` and `top_p` are these options' own.
        """
        return ChatRequest(
            messages=messages,
            max_tokens=self.limit(max_tokens),
            temperature=temperature if self.temperature is None else self.temperature,
            seed=seed if self.seed is None else self.seed,
            stop=self.stop,
            top_p=self.top_p,
            json_schema=json_schema,
        )

    def to_dict(self) -> dict[str, Any]:
        """The options set (for the trace)."""
        out: dict[str, Any] = {}
        for key in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.stop:
            out["stop"] = list(self.stop)
        return out


@dataclass(frozen=True)
class Usage:
    """Tokens spent, prompt and completion; usages add up with `+`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """A model's whole answer: text or tool calls, the model's name, tokens, finish reason."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    prompt_ms: float | None = None
    """Time the backend spent reading the prompt, when it reports it."""
    generate_ms: float | None = None
    """Time the backend spent generating, when it reports it."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """Native tool calls: {"name", "arguments"} (arguments a dict, or the raw text when the
    model's JSON did not parse: the caller's validation then says so)."""


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed text. A stream yields these, then exactly one `Completion`."""

    text: str


StreamEvent = TextDelta | Completion


class ChatModel(ABC):
    """Base class of every backend."""

    name: str = "model"
    context_window: int = 4096
    native_tools: bool = False
    """The backend takes `ChatRequest.tools` and answers with `Completion.tool_calls`."""

    @abstractmethod
    def complete(self, request: ChatRequest) -> Completion: ...

    @abstractmethod
    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]: ...

    async def acomplete(self, request: ChatRequest) -> Completion:
        return await asyncio.to_thread(self.complete, request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        async for event in _iterate_in_thread(lambda: self.stream(request)):
            yield event

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release the backend's resources (loaded weights, connections)."""

    def share_connections(self) -> None:  # noqa: B027 - optional hook
        """Keep connections open across async calls (a server's event loop) until `aclose`.

        Backends without connections ignore it.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close what `share_connections` kept open, on the loop that used it."""

    def __enter__(self) -> ChatModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_DONE = object()


async def _iterate_in_thread(
    make: Callable[[], Iterator[StreamEvent]],
) -> AsyncIterator[StreamEvent]:
    """Drive a blocking iterator on a worker thread, handing items to the event loop.

    If the consumer stops early, the iterator is closed on its thread so that the backend
    can stop generating.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        iterator: Iterator[StreamEvent] = make()
        try:
            for item in iterator:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, re-raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = loop.run_in_executor(None, work)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield cast(StreamEvent, item)
    finally:
        stop.set()
        await worker


def collect(events: Iterator[StreamEvent]) -> Completion:
    """Drain a stream and return its final completion."""
    final: Completion | None = None
    for event in events:
        if isinstance(event, Completion):
            final = event
    if final is None:
        raise ModelError("the model's stream ended without a final completion")
    return final
