"""The OpenAI chat-completions wire format, shared by the local and HTTP backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from charter.errors import ModelError
from charter.models.base import ChatRequest, Completion, TextDelta, Usage


def request_payload(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The OpenAI-style body for a request (shared by the local and HTTP backends)."""
    body: dict[str, Any] = {
        "messages": [m.to_wire() for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": stream,
    }
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [{"type": "function", "function": dict(t)} for t in request.tools]
        body["tool_choice"] = request.tool_choice
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
        }
    return body


def completion_from_openai(data: dict[str, Any], *, model: str) -> Completion:
    """Read an OpenAI chat completion body; a shape we cannot read is a `ModelError`."""
    if "error" in data:
        raise ModelError(f"{model}: {data['error']}")
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
        calls = tuple(_tool_call(c) for c in choice["message"].get("tool_calls") or ())
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelError(f"{model}: malformed completion ({exc!r}): {str(data)[:300]}") from None
    reported = timings(data.get("timings"))
    return Completion(
        text=text,
        model=model,
        usage=usage_from_openai(data.get("usage")),
        finish_reason=str(finish),
        tool_calls=calls,
        prompt_ms=reported.get("prompt_ms"),
        generate_ms=reported.get("generate_ms"),
    )


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = raw  # validation tells the model its arguments are not a JSON object
    return {"name": str(function["name"]), "arguments": arguments}


def usage_from_openai(usage: Any) -> Usage:
    """The token usage of an OpenAI-style `usage` object (zeros when it is missing)."""
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def timings(timings: Any) -> dict[str, float]:
    """llama.cpp's `timings` of a response as `prompt_ms` and `generate_ms` (those it reports)."""
    if not isinstance(timings, dict):
        return {}
    out: dict[str, float] = {}
    if "prompt_ms" in timings:
        out["prompt_ms"] = float(timings["prompt_ms"])
    if "predicted_ms" in timings:
        out["generate_ms"] = float(timings["predicted_ms"])
    return out


class StreamAssembler:
    """Reads OpenAI-style stream chunks (dicts) and yields their text deltas.

    It keeps what the final `Completion` needs (text, finish reason, usage, timings).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.usage = Usage()
        self.finish_reason = "stop"
        self.timings: dict[str, float] = {}

    def feed(self, chunk: dict[str, Any]) -> Iterator[TextDelta]:
        if "error" in chunk:
            raise ModelError(f"{self.model}: {chunk['error']}")
        for choice in chunk.get("choices") or []:
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                self.parts.append(delta)
                yield TextDelta(delta)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        reported = chunk.get("timings")
        if isinstance(reported, dict):
            self.timings = timings(reported)
            if self.usage.total_tokens == 0:
                self.usage = Usage(
                    prompt_tokens=int(reported.get("prompt_n", 0))
                    + int(reported.get("cache_n", 0)),
                    completion_tokens=int(reported.get("predicted_n", 0)),
                )

    def completion(self) -> Completion:
        return Completion(
            text="".join(self.parts),
            model=self.model,
            usage=self.usage,
            finish_reason=self.finish_reason,
            prompt_ms=self.timings.get("prompt_ms"),
            generate_ms=self.timings.get("generate_ms"),
        )
