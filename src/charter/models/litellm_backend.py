"""Providers that do not speak OpenAI's API (Anthropic, Bedrock, Vertex, Azure, ...).

They are reached through LiteLLM (the `litellm` extra).

The charter names the model as LiteLLM does, "provider/model" (`anthropic/claude-...`,
`bedrock/...`, `vertex_ai/...`, `azure/...`); LiteLLM translates Charter's OpenAI-shaped
request into the provider's wire format and the answer back, so the OpenAI readers of
`openai_wire` read it. Sync calls use `litellm.completion`, async ones its native
`litellm.acompletion`. Every failure (an upstream 4xx/5xx, a timeout, a refused
connection, a parameter the provider lacks) is a `ModelError` with the provider's words.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from charter.errors import ModelError
from charter.extras import requires_extra
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent
from charter.models.openai_wire import StreamAssembler, completion_from_openai, request_payload

# LiteLLM fetches its model price map from the internet on import unless told not to; the
# copy it ships is enough (Charter prices models itself: `price:` in the charter).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

with requires_extra("the litellm backend", "litellm", ModelError):
    import litellm

litellm.telemetry = False
litellm.suppress_debug_info = True


class LiteLLMModel(ChatModel):
    """A model of any provider LiteLLM reaches, named "provider/model" (`anthropic/claude-...`).

    `params` go to every LiteLLM call as extra options; every failure is a ModelError with the
    provider's words.
    """

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        context_window: int = 8192,
        native_tools: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        provider, _, bare = model.partition("/")
        if not bare:
            raise ModelError(
                f"litellm model {model!r} must be 'provider/model', e.g. 'anthropic/claude-...'"
            )
        self.name = model
        self.provider = provider
        self.api_base = api_base
        self.context_window = context_window
        self._options: dict[str, Any] = {
            **(params or {}),
            "model": model,
            "timeout": timeout_s,
            "num_retries": max_retries,
        }
        if api_base:
            self._options["api_base"] = api_base
        if api_key:
            self._options["api_key"] = api_key
        try:
            supported = litellm.get_supported_openai_params(
                model=bare, custom_llm_provider=provider
            )
        except Exception as exc:  # an unknown provider, in LiteLLM's words
            raise ModelError(f"litellm model {model!r}: {exc}") from exc
        self._supported = set(supported or ())
        self.native_tools = native_tools and "tools" in self._supported

    def _kwargs(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = request_payload(request, stream=stream)
        if request.json_schema is not None and "response_format" not in self._supported:
            raise ModelError(
                f"{self.name}: LiteLLM's {self.provider!r} provider cannot constrain a reply to "
                "a JSON schema (no response_format); use another model for this charter"
            )
        if request.tools and "tools" not in self._supported:
            raise ModelError(f"{self.name}: LiteLLM's {self.provider!r} provider has no tools")
        for optional in ("seed", "stop", "top_p"):  # sampling hints a provider may lack
            if optional in body and optional not in self._supported:
                del body[optional]
        if stream:
            body["stream_options"] = {"include_usage": True}
        return {**self._options, **body}

    def _error(self, exc: Exception) -> ModelError:
        status = _upstream_status(exc)
        message = str(getattr(exc, "message", "") or exc)
        where = f"{self.api_base} " if self.api_base else ""
        if status is not None:
            return ModelError(f"{self.name}: {where}answered HTTP {status}: {message[:500]}")
        return ModelError(f"{self.name}: {where}{type(exc).__name__}: {message[:500]}")

    # -- whole replies --------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Completion:
        kwargs = self._kwargs(request, stream=False)
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:  # every provider failure, whatever LiteLLM calls it
            raise self._error(exc) from exc
        return completion_from_openai(_as_dict(response), model=self.name)

    async def acomplete(self, request: ChatRequest) -> Completion:
        kwargs = self._kwargs(request, stream=False)
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise self._error(exc) from exc
        return completion_from_openai(_as_dict(response), model=self.name)

    # -- streams --------------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        kwargs = self._kwargs(request, stream=True)
        assembler = StreamAssembler(self.name)
        try:
            for chunk in litellm.completion(**kwargs):
                yield from assembler.feed(_as_dict(chunk))
        except ModelError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        yield assembler.completion()

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        kwargs = self._kwargs(request, stream=True)
        assembler = StreamAssembler(self.name)
        try:
            async for chunk in await litellm.acompletion(**kwargs):
                for event in assembler.feed(_as_dict(chunk)):
                    yield event
        except ModelError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        yield assembler.completion()


def _upstream_status(exc: BaseException) -> int | None:
    """The HTTP status the provider answered with.

    LiteLLM's own exception may carry a status of its choosing (500 for Anthropic's 529); the
    provider's is deeper in the chain.
    """
    status = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "status_code", None)
        if isinstance(code, int) and code >= 400:
            status = code
        current = current.__cause__ or current.__context__
    return status


def _as_dict(response: Any) -> dict[str, Any]:
    """LiteLLM's response or stream chunk (a pydantic model) as the OpenAI JSON it mirrors."""
    data = response.model_dump(exclude_none=True) if hasattr(response, "model_dump") else response
    if not isinstance(data, dict):
        raise ModelError(f"LiteLLM answered with {type(response).__name__}, not a completion")
    return data
