"""The OpenAI chat-completions wire format, shared by the local and HTTP backends."""

from __future__ import annotations

from typing import Any

from charter.errors import ModelError
from charter.models.base import ChatRequest, Completion, Usage


def request_payload(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The OpenAI-style body for a request (shared by the local and HTTP backends)."""
    body: dict[str, Any] = {
        "messages": [m.to_wire() for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": stream,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
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
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelError(f"{model}: malformed completion ({exc!r}): {str(data)[:300]}") from None
    return Completion(
        text=text,
        model=model,
        usage=usage_from_openai(data.get("usage")),
        finish_reason=str(finish),
        **timings(data.get("timings")),
    )


def usage_from_openai(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def timings(timings: Any) -> dict[str, float]:
    if not isinstance(timings, dict):
        return {}
    out: dict[str, float] = {}
    if "prompt_ms" in timings:
        out["prompt_ms"] = float(timings["prompt_ms"])
    if "predicted_ms" in timings:
        out["generate_ms"] = float(timings["predicted_ms"])
    return out
