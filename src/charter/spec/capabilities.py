"""What the assistant can do beyond talking: policies, instructions, tools, knowledge.

Fixed answers on set topics (`policies`), instructions that adapt to the turn
(`instructions`), tools and their budgets (`tools`, `tool_limits`), and the team's
documents (`knowledge`).
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from charter.spec.base import (
    StrictModel,
    check_id,
)


class Policy(StrictModel):
    """A topic the assistant must handle with a fixed answer (e.g. no investment advice)."""

    id: str
    topic: str = Field(description="What the policy is about, in plain words.")
    answer: str = Field(description="What the assistant says instead.")
    examples: list[str] = Field(default_factory=list, description="Probe questions on the topic.")
    escalate: bool = False

    _id = field_validator("id")(check_id)


OneOrMany = str | list[str]


class When(StrictModel):
    """Conditions over the signals computed each turn; all that are given must hold.

    A list means any of its values.
    """

    code_language: OneOrMany | None = Field(
        default=None, description="Code in the message: python, javascript."
    )
    expertise: Literal["beginner", "expert"] | None = None
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    language: OneOrMany | None = Field(
        default=None, description="Language of the message: en, es, fr, de, it, pt."
    )
    topic_any: list[str] = Field(
        default_factory=list, description="Any of these words or phrases is in the message."
    )
    message_matches: str | None = Field(default=None, description="A regular expression.")
    turn_at_least: int | None = Field(default=None, ge=1)
    profile: dict[str, str] = Field(
        default_factory=dict, description="Fields of the user's stored profile."
    )

    @field_validator("message_matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class Instruction(StrictModel):
    """A dynamic instruction: `then` is added to the system prompt when `when` holds."""

    id: str
    when: When = Field(default_factory=When)
    then: str = Field(min_length=1)

    _id = field_validator("id")(check_id)


class Tool(StrictModel):
    """A function the assistant may call.

    Arguments are validated against `parameters` (JSON Schema) before it runs.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    implementation: str = Field(
        description="'pkg.module:function', 'file.py:function' (relative to the charter "
        "file), or an http(s) URL that receives the arguments as a JSON POST."
    )
    dangerous: bool = Field(
        default=False, description="Needs a human's approval (an escalation) before it runs."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300)


ToolCheckName = Literal["grounded_arguments", "unnamed_options", "variants", "redundant"]
"""The checks a tool call can be held to (`charter.tools.checks`)."""


class ToolLimits(StrictModel):
    """Budgets of one turn's tool use, and the checks its calls must pass."""

    max_calls: int = Field(default=4, ge=1, le=20)
    max_retries: int = Field(default=2, ge=0, le=5, description="After an invalid or failed call.")
    max_seconds: float = Field(default=30.0, gt=0)
    max_tokens: int = Field(
        default=8000, gt=0, description="Tokens the tool decisions of one turn may spend."
    )
    max_cost: float | None = Field(
        default=None,
        gt=0,
        description="What the tool decisions of one turn may cost, in the chat model's price "
        "currency (needs models.chat.price).",
    )
    min_relevance: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="The relevance gate's score (0-1) a tool needs to be offered for a "
        "message; with none, tool use is skipped (no model call). Unset: the gate's own "
        "threshold, chosen on BFCL's development half; -1 offers every tool every turn.",
    )
    grounded_arguments: bool = Field(
        default=True,
        description="Refuse a call with a number, or a text with digits (an account, a date, "
        "an amount), that neither the conversation nor an earlier tool result contains: the "
        "model is told to ask the user instead of guessing. false turns off every check "
        "(see checks).",
    )
    checks: list[ToolCheckName] | None = Field(
        default=None,
        description="The checks a tool call must pass before it runs: grounded_arguments "
        "(values nobody gave), unnamed_options (options nobody named), variants (options "
        "nobody asked for), redundant (a call that asks nothing an earlier one did not). "
        "Unset: all of them, or none with grounded_arguments: false.",
    )
    count_calls: bool = Field(
        default=True,
        description="The turn's first tool decision states how many calls the request needs "
        "now (one per item, place, value or step it names; 0 for none) and then makes exactly "
        "that many: a small model otherwise stops after the first of several calls.",
    )
    convert_percentages: bool = Field(
        default=True,
        description="A percentage of the request ('8%') in a numeric argument is given in "
        "the form the parameter takes: a fraction (0.08) when its description says decimal "
        "or fraction, or its name is a rate, return, yield or growth; a whole percentage (8) "
        "when it says percent.",
    )
    convert_dates: bool = Field(
        default=True,
        description="An ISO date (2023-06-01) in a string argument whose description names "
        "another layout ('MM-DD-YYYY', 'dd/mm/yyyy') is given in that layout.",
    )
    remind_unused: bool = Field(
        default=True,
        description="After the calls of a decision, tell the model once a turn which values "
        "of the request (numbers, quoted text, names listed with one it used) no call has "
        "used yet, so it can make the calls it left out.",
    )

    @model_validator(mode="after")
    def _checks_need_grounding(self) -> ToolLimits:
        if not self.grounded_arguments and self.checks:
            raise ValueError(
                "grounded_arguments: false turns every check off; to keep some, leave it "
                "out and list them in checks"
            )
        return self

    @property
    def applied_checks(self) -> tuple[ToolCheckName, ...]:
        """The checks a tool call must pass.

        `checks`, else all of them (none with `grounded_arguments: false`).
        """
        if self.checks is not None:
            return tuple(self.checks)
        return get_args(ToolCheckName) if self.grounded_arguments else ()


class Knowledge(StrictModel):
    """The team's documents: retrieved per turn and cited in replies."""

    paths: list[str] = Field(
        default_factory=list,
        description="Files or folders (markdown, text, HTML, PDF), relative to the charter file.",
    )
    top_k: int = Field(default=3, gt=0, le=20, description="Passages given to the model per turn.")
    min_score: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity below which a passage is left out.",
    )
