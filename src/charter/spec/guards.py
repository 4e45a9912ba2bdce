"""The `guards` section: which guards run on the way in and on the way out.

Also their settings: harm sensitivity, a safety model, allowed phrases, the rate limit.
"""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from charter import plugins
from charter.spec.base import (
    StrictModel,
    nested_error,
    option_problems,
    registered,
)


class _GuardOn:
    """A guard name registered for `side` (`charter.guards` entry points).

    The JSON Schema offers Charter's own as examples (editors complete them).
    """

    def __init__(self, side: plugins.Side) -> None:
        self.side = side

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        own: list[str] = []
        for name in plugins.guards.own():
            with contextlib.suppress(plugins.PluginError):  # its lookup says why, when used
                if self.side in plugins.guards.get(name).sides:
                    own.append(name)
        return {**handler(schema), "examples": own}

    def check(self, name: str) -> str:
        factory = registered(plugins.guards, name)
        if self.side not in factory.sides:
            raise PydanticCustomError(
                "guard_side",
                "the {name} guard runs on {sides} only, not on {side}",
                {"name": name, "sides": " and ".join(factory.sides), "side": self.side},
            )
        return name


InputGuardName = Annotated[str, _GuardOn("input")]
"""A guard that may run on the user's message: Charter's own (extraction, injection,
conversation, harm, safety_model) or one an installed package registers."""
OutputGuardName = Annotated[str, _GuardOn("output")]
"""A guard that may run on the reply: Charter's own (leak, toxicity, hate, pii, policy,
harm, safety_model) or one an installed package registers."""


DEFAULT_INPUT_GUARDS: tuple[str, ...] = ("extraction", "injection", "conversation", "harm")
DEFAULT_OUTPUT_GUARDS: tuple[str, ...] = ("leak", "toxicity", "pii", "policy", "harm")

Hazard = Literal[
    "violent_crime",
    "nonviolent_crime",
    "cyber",
    "sex_crime",
    "child_abuse",
    "defamation",
    "specialized_advice",
    "privacy",
    "ip",
    "weapons",
    "hate",
    "self_harm",
    "sexual_content",
    "elections",
    "misinformation",
    "other",
]


class Harm(StrictModel):
    """The `harm` guard: does a request ask for seriously harmful help, does a reply give it."""

    sensitivity: Literal["strict", "balanced", "permissive"] = Field(
        default="balanced",
        description="Which calibrated threshold blocks (measured TPR and FPR of each in "
        "docs/guards.md).",
    )
    allow_categories: list[Hazard] = Field(
        default_factory=list,
        description="Hazard categories this product may discuss (a security team: cyber; a "
        "clinic: self_harm, specialized_advice). A message whose top category is listed here "
        "is allowed.",
    )


class SafetyModel(StrictModel):
    """A served or local safety model, asked by the `safety_model` guard.

    Llama Guard, Qwen3Guard, Granite Guardian or ShieldGemma (`format`).
    """

    format: Literal["llama_guard", "qwen3guard", "granite_guardian", "shieldgemma"]
    model: str = Field(
        min_length=1,
        description="The model name on the server (e.g. 'llama-guard3:1b'), or with no "
        "base_url a path to a .gguf file run in-process.",
    )
    base_url: str | None = Field(
        default=None, description="An OpenAI-compatible server: Ollama, vLLM, llama.cpp server."
    )
    api_key_env: str | None = Field(default=None, description="Environment variable of the key.")
    when: Literal["always", "uncertain"] = Field(
        default="always",
        description="Ask on every message, or only when the cheap guards are unsure "
        "(a score in the injection or harm guard's uncertain band).",
    )
    threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="For formats that give a probability (ShieldGemma): block at or above it.",
    )
    timeout_s: float = Field(
        default=4.0,
        gt=0.0,
        description="Keep it under guards.timeout_ms, which bounds every guard.",
    )


class AllowRule(StrictModel):
    """A phrase or pattern this product's users legitimately send.

    The input guards read the message without it (and the trace says so).
    """

    phrase: str | None = Field(default=None, min_length=1, description="Case-insensitive text.")
    regex: str | None = Field(default=None, min_length=1, description="A Python regex.")
    reason: str = Field(default="", description="Why it is allowed, shown in the trace.")

    @model_validator(mode="after")
    def _one_of(self) -> AllowRule:
        if (self.phrase is None) == (self.regex is None):
            raise ValueError("give exactly one of `phrase` or `regex`")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return self


class RateLimit(StrictModel):
    """How many requests, and tokens spent, a user may have a minute.

    A turn over a limit is answered with a wait notice (the gateway answers 429 with Retry-After);
    null turns a limit off.
    """

    requests_per_minute: int | None = Field(default=30, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    redis_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://",
        description="Keep the buckets in Redis (redis://host:6379/0), so that several gateway "
        "replicas share one limit; default: in this process's memory.",
    )


class Guards(StrictModel):
    """Which guards run. Each list runs cheapest first; an empty list turns that side off."""

    input: list[InputGuardName] = Field(
        default_factory=lambda: list(DEFAULT_INPUT_GUARDS),
        description="Guards on the user's message: extraction, injection, conversation, harm, "
        "safety_model, or a guard an installed package registers (docs/extending.md).",
    )
    output: list[OutputGuardName] = Field(
        default_factory=lambda: list(DEFAULT_OUTPUT_GUARDS),
        description="Guards on the reply: leak, toxicity, hate, pii, policy, harm, "
        "safety_model, or a guard an installed package registers (docs/extending.md).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the guards that take them, by guard name: a guard from "
        "another package documents its own (Charter's own guards have their sections "
        "below).",
    )
    judge: bool = Field(
        default=False,
        description="Ask the judge model about messages in the classifier's uncertain band.",
    )
    timeout_ms: int = Field(default=5000, gt=0, description="Per guard; a timeout is a failure.")
    rate_limit: RateLimit | None = None
    classifier_weights: str | None = Field(
        default=None,
        description="Injection classifier weights from `charter guard train --out FILE` "
        "(default: the weights Charter ships).",
    )
    pii_entities: list[str] | None = Field(
        default=None, description="Presidio entity types to redact (default: identifiers)."
    )
    harm: Harm = Field(default_factory=Harm)
    safety_model: SafetyModel | None = Field(
        default=None, description="Required when `safety_model` is in the input or output list."
    )
    allow: list[AllowRule] = Field(
        default_factory=list,
        description="Phrases or patterns the input guards do not count against a message.",
    )

    @field_validator("options")
    @classmethod
    def _registered_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        problems = option_problems(plugins.guards, options, optional=False)
        if problems:
            raise nested_error("guard options", problems)
        return options

    @model_validator(mode="after")
    def _enabled_guards_have_their_options(self) -> Guards:
        """A guard whose options have required fields needs them when it is on."""
        missing: dict[str, Any] = {
            name: {}
            for name in dict.fromkeys([*self.input, *self.output])
            if name not in self.options and plugins.guards.get(name).options is not None
        }
        problems = option_problems(plugins.guards, missing, optional=False)
        if problems:
            raise nested_error(
                "guard options", [{**p, "loc": ("options", *p["loc"])} for p in problems]
            )
        return self

    @model_validator(mode="after")
    def _safety_model_configured(self) -> Guards:
        named = "safety_model" in self.input or "safety_model" in self.output
        if named and self.safety_model is None:
            raise ValueError("the `safety_model` guard needs a `safety_model:` section")
        return self
