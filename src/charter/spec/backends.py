"""The `models` section: the chat, strong and judge models, their prices, and routing.

Each model has a backend: local, openai, litellm, fake, or one an installed package registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from charter import plugins
from charter.spec.base import (
    StrictModel,
    inner_errors,
    nested_error,
    registered,
)


class Price(StrictModel):
    """What the model costs, for the cost per case in `charter eval`."""

    input_per_million: float = Field(ge=0.0, description="Per million prompt tokens.")
    output_per_million: float = Field(ge=0.0, description="Per million completion tokens.")
    currency: str = "USD"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


class ModelSpecBase(StrictModel):
    """What every model spec has: its sampling settings and price.

    A backend from another package subclasses it with its own fields and
    `backend: Literal["<name>"]`.
    """

    if TYPE_CHECKING:
        # Every subclass declares it, as a Literal of its own name (declared here, it would
        # come before their other fields, and change the order they are written in).
        backend: str

    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, gt=0)
    seed: int | None = None
    price: Price | None = Field(
        default=None, description="Token prices; without one, eval reports tokens but no cost."
    )


class LoraAdapterSpec(StrictModel):
    """A LoRA adapter in GGUF (`charter tune` writes one) that llama.cpp applies to the model."""

    path: str = Field(description="The adapter's .gguf file (relative: to the working folder).")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Its SHA-256, checked before every load (`charter tune` prints it).",
    )
    scale: float = Field(
        default=1.0,
        ge=-100.0,
        le=100.0,
        description="How strongly it is applied: 0 turns it off, 1 is as trained.",
    )


class SteeringSpec(StrictModel):
    """A persona steering file (`charter steer` writes one), baked into a copy of the model."""

    path: str = Field(description="The steering .gguf file (relative: to the working folder).")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Its SHA-256, checked before every load (`charter steer` prints it).",
    )
    strength: float = Field(
        default=1.0,
        ge=-20.0,
        le=20.0,
        description="How far to steer: 1 moves the model's hidden states by the mean "
        "difference between replies that keep the persona and replies that break it; 0 is off.",
    )


class LocalModelSpec(ModelSpecBase):
    """A GGUF model run in-process by llama.cpp."""

    backend: Literal["local"] = "local"
    model: str = Field(
        default="qwen2.5-coder-1.5b",
        description="A name from `charter models list`, or a path to a .gguf file.",
    )
    path: str | None = Field(default=None, description="Explicit .gguf path (still verified).")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Expected SHA-256 of a .gguf file that is not in the catalog.",
    )
    adapter: LoraAdapterSpec | None = Field(
        default=None, description="A LoRA adapter applied on top of the model (`charter tune`)."
    )
    steering: SteeringSpec | None = Field(
        default=None,
        description="Persona steering baked into a copy of the model's weights (`charter steer`).",
    )
    runtime: Literal["xllamacpp", "llama-cpp-python"] = "xllamacpp"
    n_ctx: int = Field(default=4096, ge=256)
    threads: int | None = Field(
        default=None, gt=0, description="CPU threads; default: the number of cores."
    )


class _ServedModelCommon(ModelSpecBase):
    """What every model reached over the network has: its key, time limit and retries."""

    api_key_env: str | None = Field(
        default=None, description="Environment variable that holds the API key."
    )
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    context_window: int = Field(default=8192, ge=256)


class OpenAIModelSpec(_ServedModelCommon):
    """Any OpenAI-compatible chat completions endpoint (vLLM, llama.cpp server, Ollama, ...)."""

    backend: Literal["openai"]
    base_url: str = Field(description="e.g. http://localhost:8000/v1")
    model: str
    tool_calls: Literal["native", "json"] = Field(
        default="native",
        description="native: tools go out as the API's `tools` and come back as `tool_calls`; "
        "json: schema-forced JSON decisions (for servers without tool calling).",
    )


class LiteLLMModelSpec(_ServedModelCommon):
    """A provider that does not speak OpenAI's API (Anthropic, Bedrock, Vertex, Azure, ...).

    It is reached through LiteLLM (the `litellm` extra).
    """

    backend: Literal["litellm"]
    model: str = Field(
        pattern=r"^[^/\s]+/\S+$",
        description="LiteLLM's 'provider/model', e.g. 'anthropic/claude-3-5-haiku-latest', "
        "'bedrock/anthropic.claude-3-haiku-20240307-v1:0', 'vertex_ai/gemini-1.5-flash', "
        "'azure/<deployment>'.",
    )
    api_base: str | None = Field(
        default=None, description="The provider's endpoint, when not its default."
    )
    tool_calls: Literal["native", "json"] = Field(
        default="native",
        description="native: the provider's own tool calling (where LiteLLM supports it); "
        "json: schema-forced JSON decisions.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="More arguments for litellm.completion, e.g. {api_version: ...} for "
        "Azure, {aws_region_name: ...} for Bedrock, {vertex_project: ...} for Vertex.",
    )


class FakeModelSpec(ModelSpecBase):
    """Replies from a fixed list, for tests and demos without a model."""

    backend: Literal["fake"]
    replies: list[str] = Field(default_factory=lambda: ["(fake reply)"], min_length=1)
    context_window: int = Field(default=8192, ge=256)


BuiltinModelSpec = Annotated[
    LocalModelSpec | OpenAIModelSpec | LiteLLMModelSpec | FakeModelSpec,
    Field(discriminator="backend"),
]
BUILTIN_SPECS: tuple[type[ModelSpecBase], ...] = (
    LocalModelSpec,
    OpenAIModelSpec,
    LiteLLMModelSpec,
    FakeModelSpec,
)
BUILTIN_BACKENDS: tuple[str, ...] = tuple(
    tag for spec in BUILTIN_SPECS for tag in get_args(spec.model_fields["backend"].annotation)
)


def _model_spec(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a model spec by the class its backend names.

    A built-in backend's spec by its own class (`BuiltinModelSpec`); any other backend's by the spec
    class its package registers (`charter.backends`).
    """
    if isinstance(value, ModelSpecBase) and not isinstance(value, BUILTIN_SPECS):
        return value  # a registered backend's spec, already validated
    backend = value.get("backend") if isinstance(value, dict) else None
    if not isinstance(backend, str) or backend in BUILTIN_BACKENDS:
        return handler(value)
    if backend not in plugins.backends:
        reason = plugins.backends.unknown(backend, first=BUILTIN_BACKENDS)
        raise PydanticCustomError("plugin", "{reason}", {"reason": reason})
    factory = registered(plugins.backends, backend)
    try:
        return factory.spec.model_validate(value)
    except ValidationError as exc:
        raise nested_error(f"backend {backend!r}", inner_errors(exc, ())) from None


class _RegisteredBackends:
    """Validation, serialisation and JSON Schema of a model spec of any registered backend.

    The backend may be Charter's own or one an installed package registers.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_wrap_validator_function(
            _model_spec,
            handler.generate_schema(BuiltinModelSpec),
            # each spec is written by its own class, registered ones too
            serialization=core_schema.wrap_serializer_function_ser_schema(
                lambda value, write: write(value), schema=core_schema.any_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = dict(handler(schema))
        other = {
            "type": "object",
            "title": "RegisteredModelSpec",
            "description": "A backend an installed package registers (docs/extending.md); "
            "its own fields.",
            "properties": {"backend": {"type": "string", "not": {"enum": list(BUILTIN_BACKENDS)}}},
            "required": ["backend"],
        }
        # A closed mapping of tags no longer describes it: the branches say it themselves.
        json_schema.pop("discriminator", None)
        json_schema["oneOf"] = [*json_schema["oneOf"], other]
        return json_schema


ModelSpec = Annotated[
    LocalModelSpec | OpenAIModelSpec | LiteLLMModelSpec | FakeModelSpec | ModelSpecBase,
    _RegisteredBackends(),
]
"""A model spec: `backend:` local, openai, litellm or fake, or a backend an installed
package registers (validated by its own spec class)."""


class Routing(StrictModel):
    """Cheap or strong model per turn (needs `models.strong`)."""

    mode: Literal["auto", "cheap", "strong"] = Field(
        default="auto",
        description="auto: the strong model when enough task signals say so; cheap or "
        "strong: always that one.",
    )
    threshold: int = Field(
        default=2,
        ge=1,
        le=6,
        description="How many task signals (long message, code, reasoning asked, several "
        "questions, tool results to report, persona slipped) send a turn to the strong model.",
    )
    long_message_words: int = Field(default=80, gt=0)
    tools: Literal["cheap", "strong"] = Field(
        default="cheap",
        description="Which model makes the tool decisions. They run before the route is "
        "chosen, so they are not routed per turn. On BFCL's test half (40 cases a category) "
        "the 1.5B model called right in 69% of the calling questions against 59% for the "
        "0.5B, at 2.4 times the time.",
    )
    fallback: bool = Field(
        default=True,
        description="When the chosen model fails (timeout, error, malformed answer), try the "
        "other one before failing the turn.",
    )


class Models(StrictModel):
    """The models a charter uses: the chat model, and optionally a strong one and a judge.

    `routing` says which of the chat and strong models answers each turn.
    """

    chat: ModelSpec = Field(default_factory=LocalModelSpec)
    strong: ModelSpec | None = Field(
        default=None,
        description="A stronger, dearer model the router sends harder turns to; also the "
        "fallback when the chat model fails.",
    )
    routing: Routing = Field(default_factory=Routing)
    judge: ModelSpec | None = Field(default=None, description="Defaults to the chat model.")

    @model_validator(mode="after")
    def _strong_for_routing(self) -> Models:
        if self.routing.mode == "strong" and self.strong is None:
            raise ValueError("routing.mode 'strong' needs models.strong")
        return self
