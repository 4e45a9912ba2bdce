"""Who the assistant is and the principles it is held to: `persona` and `constitution`."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from charter import plugins
from charter.spec.base import (
    StrictModel,
    check_id,
    nested_error,
    option_problems,
)


class StyleRules(StrictModel):
    """How replies must look.

    Each rule is compiled into the system prompt; the programmatic ones (words, sign-off, forbidden
    phrases) are also checkable in code.
    """

    max_words: int | None = Field(default=None, gt=0, description="Upper bound on reply length.")
    sign_off: str | None = Field(default=None, description="Text every reply must end with.")
    starts_with: str | None = Field(default=None, description="Text every reply must start with.")
    language: str | None = Field(default=None, description="Reply language, e.g. 'English'.")
    forbidden_phrases: list[str] = Field(default_factory=list)
    no_exclamation_marks: bool = Field(
        default=False,
        description="No exclamation mark in the persona's own words (code and quotes aside), "
        "checked and repaired in code.",
    )
    no_emoji: bool = Field(
        default=False,
        description="No emoji or emoticon in the persona's own words, checked and repaired in "
        "code.",
    )
    rules: list[str] = Field(
        default_factory=list,
        description="Free-form style rules, e.g. 'Always apologise first; never argue.'",
    )


class Escalation(StrictModel):
    """Where the assistant hands a user to a person: who, and how the user reaches them."""

    contact: str = Field(description="Who a human hand-off goes to, e.g. 'our support team'.")
    how: str | None = Field(default=None, description="How the user reaches them.")
    on_uncertain_guard: bool = Field(
        default=False,
        description="Hand a message to a person instead of answering it when the injection "
        "classifier's score lands in its uncertain band and no LLM judge settled it (3.5% of "
        "ordinary messages on the guard corpus' validation split, so off by default).",
    )


class Persona(StrictModel):
    """Who the assistant is: its name, role, tone, style, facts, what it never does, and hand-off.

    `apology` and `refusal` are its replies to a failed turn and to a blocked message.
    """

    name: str = Field(min_length=1)
    role: str = Field(min_length=1, description="e.g. 'customer support assistant'")
    organisation: str | None = None
    description: str | None = None
    tone: str | None = Field(default=None, description="e.g. 'warm, calm and concise'")
    style: StyleRules = Field(default_factory=StyleRules)
    values: list[str] = Field(default_factory=list)
    facts: list[str] = Field(
        default_factory=list, description="Facts the persona may state (hours, fees, ...)."
    )
    never: list[str] = Field(default_factory=list, description="Things it must never do.")
    escalation: Escalation | None = None
    apology: str | None = Field(
        default=None,
        description="Reply used when a stage fails closed. Defaults to a generic apology.",
    )
    refusal: str | None = Field(
        default=None,
        description="Reply used when a guard blocks a message. Defaults to a polite refusal.",
    )
    scope: Literal["role", "open"] = Field(
        default="role",
        description="`role`: requests outside the persona's role and description are declined "
        "(once the persona judge is built). `open`: the persona helps with anything, as a "
        "general assistant does; its judge has no scope rule and no scope gate.",
    )
    decline: str | None = Field(
        default=None,
        description="Reply used instead of one the persona judge finds outside the persona's "
        "scope (`critique.off_scope: decline`). Defaults to saying who the persona is and "
        "asking what it can help with.",
    )

    def refusal_reply(self) -> str:
        return self.refusal or "I'm sorry, but I can't help with that request."

    def fallback_reply(self) -> str:
        if self.apology:
            return self.apology
        who = f" {self.escalation.contact}" if self.escalation else " a human colleague"
        return (
            "I'm sorry, I can't help with that right now. "
            f"Please try again in a moment, or ask to speak to{who}."
        )


# --- constitution --------------------------------------------------------------------------


class ProgrammaticCheck(StrictModel):
    """A principle that can be checked in code, without asking a judge.

    Besides the checks below, a key may name a check an installed package registers
    (docs/extending.md), with that check's setting as its value.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    max_words: int | None = Field(default=None, gt=0)
    starts_with: str | None = None
    ends_with: str | None = None
    forbidden: list[str] = Field(default_factory=list, description="Phrases that must not appear.")
    required_any: list[str] = Field(
        default_factory=list, description="At least one of these phrases must appear."
    )
    no_exclamation_marks: bool = Field(
        default=False,
        description="No exclamation mark in the reply's own words (code and quotes aside); "
        "the repair makes each a full stop.",
    )
    no_emoji: bool = Field(
        default=False,
        description="No emoji or emoticon in the reply's own words; the repair takes them out.",
    )

    @model_validator(mode="after")
    def _registered_checks(self) -> ProgrammaticCheck:
        problems = option_problems(plugins.checks, dict(self.model_extra or {}), optional=True)
        if problems:
            raise nested_error("checks", problems)
        return self


class Principle(StrictModel):
    """One rule of the constitution, compiled into the system prompt.

    With a `check` it is also checked in code; without one, the judge checks it when
    `critique.judge` is on.
    """

    id: str
    text: str = Field(min_length=1)
    check: ProgrammaticCheck | None = None

    _id = field_validator("id")(check_id)
