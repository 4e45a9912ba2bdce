"""The OpenAI chat-completions API as the gateway speaks it: request and response bodies.

Requests are validated strictly where a silent misreading would hurt (roles, content,
numbers, sampling options) and leniently where clients differ (fields the gateway does not
use are accepted and ignored, as OpenAI's own API does: see docs/gateway.md for which).
Each response carries a `charter` object with the turn's verdict and trace, which OpenAI
clients ignore and Charter-aware clients read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from charter.store.records import AuditRecord, StoredEscalation


class WireFunctionCall(BaseModel):
    """A call to a function: its name and arguments."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=64)
    arguments: str = Field(max_length=100_000, description="The arguments, as JSON text.")


class WireToolCall(BaseModel):
    """A call to one of the caller's functions, with the id a `tool` message answers it by."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=100)
    type: Literal["function"] = "function"
    function: WireFunctionCall


TEXT_PARTS = ("text", "refusal")
"""Content parts read as text (an assistant's `refusal` part is what it said)."""


class ContentPart(BaseModel):
    """One part of an array `content`.

    Only text is read; any other type (image_url, input_audio, file) is refused by the gateway,
    naming the part.
    """

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=64)
    text: str | None = Field(default=None, max_length=200_000)
    refusal: str | None = Field(default=None, max_length=200_000)


Content = (
    Annotated[str, Field(max_length=200_000)] | Annotated[list[ContentPart], Field(max_length=100)]
)


class WireMessage(BaseModel):
    """One message of the conversation the request sends.

    A `tool` message carries the result of the call `tool_call_id` names; an assistant message may
    carry `tool_calls` instead of content.
    """

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"] = Field(
        description="system and developer messages are operator instructions: placed below "
        "the charter's own prompt, which takes precedence (or refused, with "
        "`gateway.client_system: reject`)."
    )
    content: Content | None = Field(
        default=None, description="Text, or an array of parts of which only text is read."
    )
    tool_calls: list[WireToolCall] | None = Field(default=None, max_length=32)
    tool_call_id: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _content_where_needed(self) -> WireMessage:
        missing = self.content is None or self.content == []
        if missing and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self


class WireFunction(BaseModel):
    """A function the caller offers: its name, description and JSON Schema `parameters`."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str | None = Field(default=None, max_length=4000)
    parameters: dict[str, Any] | None = None


class WireTool(BaseModel):
    """A tool the caller offers: one function."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"] = "function"
    function: WireFunction


class JsonSchemaFormat(BaseModel):
    """The JSON Schema a `json_schema` response format asks the reply to match."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class ResponseFormat(BaseModel):
    """The reply's format: text, any JSON object, or JSON matching a schema."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def schema_or_none(self) -> dict[str, Any] | None:
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema":
            return (self.json_schema.schema_ if self.json_schema else None) or {"type": "object"}
        return None


class NamedFunction(BaseModel):
    """The function a named `tool_choice` picks."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=64)


class NamedToolChoice(BaseModel):
    """`{"type": "function", "function": {"name": ...}}`: call this function."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(BaseModel):
    """Options of a streamed response: `include_usage` adds a last chunk with the usage."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


MetadataKey = Annotated[str, Field(max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]


class ChatCompletionRequest(BaseModel):
    """A chat-completions request: the charter (`model`) and the conversation to answer.

    Fields the gateway does not use are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="A charter id from GET /v1/models.")
    messages: list[WireMessage] = Field(min_length=1, max_length=500)
    stream: bool = False
    stream_options: StreamOptions | None = Field(
        default=None,
        description="With stream: include_usage adds a last chunk with the usage (and no choices).",
    )
    user: str | None = Field(
        default=None, max_length=200, description="The end user: keys the rate limit."
    )
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        default=None, max_length=16, description="Recorded in the turn's trace (audit log)."
    )
    tools: list[WireTool] | None = Field(
        default=None,
        max_length=64,
        description="Functions the caller runs itself; the reply may call them.",
    )
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = Field(
        default=None, description="false: at most one call per reply."
    )
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(
        default=None, ge=1, description="At most the charter's own max_tokens."
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="As max_tokens (the newer name)."
    )
    stop: str | list[str] | None = Field(default=None, description="Up to 4 sequences.")
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, description="Only 1: one choice per request.")
    logprobs: bool | None = Field(default=None, description="Not available: true is refused.")
    top_logprobs: int | None = Field(default=None, description="Not available: refused.")

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else value or []
        if len(items) > 4:
            raise ValueError(f"at most 4 stop sequences, not {len(items)}")
        if any(not 1 <= len(item) <= 200 for item in items):
            raise ValueError("each stop sequence is 1-200 characters")
        return value


class ChoiceMessage(BaseModel):
    """The reply: its text, or the calls to the caller's functions it makes instead."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[WireToolCall] | None = None


class Choice(BaseModel):
    """The one choice of a completion: the reply and why it finished.

    `finish_reason` is "content_filter" when the turn was blocked, "tool_calls" when the reply calls
    the caller's functions, else "stop".
    """

    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop", "content_filter", "tool_calls"]


class WireUsage(BaseModel):
    """The tokens the turn spent, over all its model calls."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CharterInfo(BaseModel):
    """What Charter did this turn (not part of OpenAI's API; clients may ignore it)."""

    blocked: bool
    block_reason: str | None
    guards: list[str] = Field(description="Every guard that ran this turn, in order.")
    trace: list[dict[str, Any]]
    escalations: list[dict[str, Any]] = Field(default_factory=list)
    cost: float | None = Field(
        default=None, description="The turn's cost at the charter's prices; null without prices."
    )


class ChatCompletion(BaseModel):
    """A chat completion: the reply as one choice, its usage, and what Charter did (`charter`)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: WireUsage
    charter: CharterInfo


class ModelCard(BaseModel):
    """A model of GET /v1/models: one charter, by its id."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "charter"


class ModelList(BaseModel):
    """The charters the caller may use, as models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    """What went wrong: a message, its type and the request field at fault (`param`)."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """An error response, in OpenAI's format."""

    error: ErrorBody


class AuditEntry(BaseModel):
    """One turn of the audit log: the request, the reply, its verdict, tokens, cost and trace.

    `model` is the charter id; `created_at` is a Unix time in seconds; `ms` is the turn's time in
    milliseconds.
    """

    id: int
    created_at: float
    key_id: str | None
    model: str
    stream: bool
    messages: list[dict[str, str]]
    reply: str
    blocked: bool
    block_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    ms: float
    error: str | None
    trace: list[dict[str, Any]]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntry:
        return cls(
            id=record.id,
            created_at=record.created_at,
            key_id=record.key_id,
            model=record.charter_id,
            stream=record.stream,
            messages=record.request,
            reply=record.reply,
            blocked=record.blocked,
            block_reason=record.block_reason,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cost=record.cost,
            ms=record.ms,
            error=record.error,
            trace=record.trace,
        )


class AuditList(BaseModel):
    """The caller's tenant's latest turns, newest first."""

    object: Literal["list"] = "list"
    data: list[AuditEntry]


class EscalationEntry(BaseModel):
    """A hand-off to a human: its id (the user's reference), the charter, trigger and reason.

    `model` is the charter id; `created_at` is a Unix time in seconds.
    """

    id: str
    model: str
    trigger: str
    reason: str
    created_at: float

    @classmethod
    def of(cls, item: StoredEscalation) -> EscalationEntry:
        return cls(
            id=item.id,
            model=item.charter_id,
            trigger=item.trigger,
            reason=item.reason,
            created_at=item.created_at,
        )


class EscalationList(BaseModel):
    """The caller's tenant's open hand-offs to a human."""

    object: Literal["list"] = "list"
    data: list[EscalationEntry]
