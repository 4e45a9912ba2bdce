"""A scripted model for tests and demos: queued replies, every call recorded.

A reply is text, or one of the answers a real backend gives besides text:

    FakeModel([
        decision(tool_call("get_balance", account="premium")),  # the model calls a tool
        decision(),                                              # ... then is done with tools
        "You have 8020.0 EUR.",                                  # ... and answers
    ])

`decision(...)` is answered in the form the request asks for: the backend's own
`tool_calls` when the request offers `tools` (a model made with `native_tools=True`), the
tool loop's JSON `{"calls": [...]}` when it asks for a JSON schema. So one script drives
both kinds of backend. `Structured(value)` is any other JSON answer (a judge's verdict, a
caller's `response_format`). Both are checked against the schema the request asks for, as a
grammar-constrained backend guarantees (`check=False` plays a backend that does not).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from charter.errors import ModelError
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent, TextDelta, Usage


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes: a function's name and its arguments."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    """A dict, or raw text: arguments that are not JSON, as a backend hands them on when
    the model's JSON did not parse (the caller's validation then says so)."""

    def to_completion(self) -> dict[str, Any]:
        """The call as `Completion.tool_calls` holds it."""
        return {"name": self.name, "arguments": self.arguments}

    def to_decision(self) -> dict[str, Any]:
        """The call as an item of the tool loop's JSON decision."""
        return {"tool": self.name, "arguments": self.arguments}


def tool_call(name: str, /, **arguments: Any) -> ToolCall:
    """`tool_call("get_balance", account="premium")`."""
    return ToolCall(name, arguments)


@dataclass(frozen=True)
class Decision:
    """The tool calls the model decides on at one step; none: it is done with tools."""

    calls: tuple[ToolCall, ...] = ()
    count: int | None = None
    """The number of calls the request needs, which a turn's first JSON decision states
    (`tool_limits.count_calls`). None: the number of `calls`, given when the schema asks."""
    check: bool = True
    """As JSON, the decision must match the request's schema (a grammar-forced backend)."""

    def to_json(self, schema: dict[str, Any]) -> Any:
        """The decision as the tool loop's JSON.

        With `count` when given, or when `schema` asks for it.
        """
        value: dict[str, Any] = {"calls": [c.to_decision() for c in self.calls]}
        if self.count is not None or _asks_count(schema):
            value = {"count": len(self.calls) if self.count is None else self.count, **value}
        return value


def decision(*calls: ToolCall, count: int | None = None, check: bool = True) -> Decision:
    """`decision(tool_call("a", x=1), tool_call("b"))`; `decision()`: no call."""
    return Decision(calls, count=count, check=check)


@dataclass(frozen=True)
class Structured:
    """A JSON answer to a request that asks for a JSON schema."""

    value: Any
    check: bool = True
    """The value must match the request's schema (a grammar-forced backend)."""


Answer = str | ToolCall | Decision | Structured
Reply = Answer | BaseException | Callable[[ChatRequest], Answer]
Answered = str | tuple[dict[str, Any], ...]
"""What a request gets: text, or native tool calls (`Completion.tool_calls`)."""


class FakeModel(ChatModel):
    """Answers from a queue.

    When the queue runs dry it repeats `default` (or raises `ModelError` if there is none). An
    exception in the queue is raised for that call, which is how tests exercise failure policies; a
    callable is called with the request and answers for it. Every request is kept in `calls`, in
    order. A reply that does not fit the request (text where a JSON schema is asked, a tool decision
    where neither tools nor JSON are) is a `ModelError` naming the mismatch: a script out of step
    with the turn fails loudly. Token counts are whitespace words, which is enough for logic tests
    and keeps the fake free of any tokenizer.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Answer | None = None,
        name: str = "fake",
        context_window: int = 8192,
        native_tools: bool | None = None,
    ) -> None:
        """A fake that answers with `replies`, in order, then `default`.

        `native_tools`: the model takes `tools` and answers with `tool_calls`, as the
        OpenAI-compatible backends do (else the tool loop asks for JSON decisions); None keeps the
        class's setting (off).
        """
        self.name = name
        self.context_window = context_window
        if native_tools is not None:
            self.native_tools = native_tools
        self._queue: deque[Reply] = deque(replies)
        self._default = default
        self.calls: list[ChatRequest] = []

    def enqueue(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not used yet (the default aside)."""
        return len(self._queue)

    def _next(self, request: ChatRequest) -> Answered:
        self.calls.append(request)
        if self._queue:
            reply = self._queue.popleft()
        elif self._default is not None:
            reply = self._default
        else:
            raise ModelError("FakeModel has no reply queued")
        if isinstance(reply, BaseException):
            raise reply
        answer = reply(request) if callable(reply) else reply
        return _render(answer, request)

    def _completion(self, request: ChatRequest, answered: Answered) -> Completion:
        prompt_tokens = sum(len(m.content.split()) + 4 for m in request.messages)
        text = answered if isinstance(answered, str) else ""
        calls = () if isinstance(answered, str) else answered
        spoken = text or (json.dumps(calls) if calls else "")
        return Completion(
            text=text,
            model=self.name,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(spoken.split())),
            finish_reason="tool_calls" if calls else "stop",
            tool_calls=calls,
        )

    def complete(self, request: ChatRequest) -> Completion:
        return self._completion(request, self._next(request))

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        answered = self._next(request)
        if isinstance(answered, str):
            for index, word in enumerate(answered.split(" ")):
                yield TextDelta(word if index == 0 else " " + word)
        yield self._completion(request, answered)


def _render(answer: Answer, request: ChatRequest) -> Answered:
    """The answer in the form `request` asks for."""
    if isinstance(answer, ToolCall):
        answer = Decision((answer,))
    if isinstance(answer, Decision):
        if request.tools:
            return tuple(c.to_completion() for c in answer.calls)
        if request.json_schema is None:
            raise ModelError(
                "FakeModel: a tool decision was scripted, but the request offers no tools "
                "and asks for no JSON (a plain reply was expected here)"
            )
        answer = Structured(answer.to_json(request.json_schema), check=answer.check)
    if isinstance(answer, Structured):
        if request.json_schema is None:
            raise ModelError("FakeModel: a JSON answer was scripted, but the request asks for none")
        if answer.check:
            _conform(answer.value, request.json_schema)
        return json.dumps(answer.value)
    if request.json_schema is not None:
        try:
            json.loads(answer)
        except ValueError as exc:
            raise ModelError(f"FakeModel reply is not JSON but a schema was asked: {exc}") from exc
    return answer


def _conform(value: Any, schema: dict[str, Any]) -> None:
    """Raise `ModelError` when `value` does not match `schema`."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ModelError(
            f"FakeModel: the scripted JSON does not match the schema asked ({where}: "
            f"{error.message}); Structured(..., check=False) plays a backend that ignores it"
        )


def _asks_count(schema: dict[str, Any]) -> bool:
    """Whether a decision schema requires `count` (the turn's first decision)."""
    branches = schema.get("anyOf", [schema])
    return any(isinstance(b, dict) and "count" in b.get("required", ()) for b in branches)
