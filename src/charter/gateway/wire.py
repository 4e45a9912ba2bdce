"""The OpenAI chat-completions API as the gateway speaks it: request and response bodies.

Requests are validated strictly where a silent misreading would hurt (roles, content,
numbers) and leniently where clients differ (unknown fields are accepted and ignored, as
OpenAI's own API does). Each response carries a `charter` object with the turn's verdict
and trace, which OpenAI clients ignore and Charter-aware clients read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from charter.store.records import AuditRecord, StoredEscalation


class WireFunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=64)
    arguments: str = Field(max_length=100_000, description="The arguments, as JSON text.")


class WireToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=100)
    type: Literal["function"] = "function"
    function: WireFunctionCall


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = Field(default=None, max_length=200_000)
    tool_calls: list[WireToolCall] | None = Field(default=None, max_length=32)
    tool_call_id: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _content_where_needed(self) -> WireMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self


class WireFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str | None = Field(default=None, max_length=4000)
    parameters: dict[str, Any] | None = None


class WireTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"] = "function"
    function: WireFunction


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def schema_or_none(self) -> dict[str, Any] | None:
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema":
            return (self.json_schema.schema_ if self.json_schema else None) or {"type": "object"}
        return None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="A charter id from GET /v1/models.")
    messages: list[WireMessage] = Field(min_length=1, max_length=500)
    stream: bool = False
    user: str | None = Field(default=None, max_length=200)
    tools: list[WireTool] | None = Field(
        default=None,
        max_length=64,
        description="Functions the caller runs itself; the reply may call them.",
    )
    tool_choice: Literal["auto", "none"] | None = None
    response_format: ResponseFormat | None = None


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[WireToolCall] | None = None


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop", "content_filter", "tool_calls"]


class WireUsage(BaseModel):
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
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: WireUsage
    charter: CharterInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "charter"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class AuditEntry(BaseModel):
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
    object: Literal["list"] = "list"
    data: list[AuditEntry]


class EscalationEntry(BaseModel):
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
    object: Literal["list"] = "list"
    data: list[EscalationEntry]
