"""A scripted model for tests and demos: queued replies, every call recorded."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from charter.errors import ModelError
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent, TextDelta, Usage

Reply = str | BaseException | Callable[[ChatRequest], str]


class FakeModel(ChatModel):
    """Answers from a queue. When the queue runs dry it repeats `default` (or raises
    `ModelError` if there is none). An exception in the queue is raised for that call,
    which is how tests exercise failure policies. Token counts are whitespace words, which
    is enough for logic tests and keeps the fake free of any tokenizer."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: str | None = None,
        name: str = "fake",
        context_window: int = 8192,
    ) -> None:
        self.name = name
        self.context_window = context_window
        self._queue: deque[Reply] = deque(replies)
        self._default = default
        self.calls: list[ChatRequest] = []

    def enqueue(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    def _next(self, request: ChatRequest) -> str:
        self.calls.append(request)
        if self._queue:
            reply = self._queue.popleft()
        elif self._default is not None:
            reply = self._default
        else:
            raise ModelError("FakeModel has no reply queued")
        if isinstance(reply, BaseException):
            raise reply
        text = reply(request) if callable(reply) else reply
        if request.json_schema is not None:
            try:
                json.loads(text)
            except ValueError as exc:
                raise ModelError(
                    f"FakeModel reply is not JSON but a schema was asked: {exc}"
                ) from exc
        return text

    def _completion(self, request: ChatRequest, text: str) -> Completion:
        prompt_tokens = sum(len(m.content.split()) + 4 for m in request.messages)
        return Completion(
            text=text,
            model=self.name,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(text.split())),
        )

    def complete(self, request: ChatRequest) -> Completion:
        return self._completion(request, self._next(request))

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        text = self._next(request)
        words = text.split(" ")
        for index, word in enumerate(words):
            yield TextDelta(word if index == 0 else " " + word)
        yield self._completion(request, text)
