"""The charter file as pydantic models.

Every model forbids unknown keys, so a typo in `charter.yaml` is an error that names the
field and the line (see `loader.py`) instead of a setting that is silently ignored.
Sections that later releases fill with behaviour (policies, instructions, tools, knowledge,
guards) are already part of the schema so that editors validate them today.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from charter import plugins

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class StrictModel(BaseModel):
    """The base of every charter-file model: unknown keys are errors, and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("use lowercase letters, digits, '-', '_' or '.', starting alphanumeric")
    return value


# --- parts that installed packages register (charter.plugins) ------------------------------

NESTED = "nested"
"""The type of a validation error about a part a package registers (its options, its model
spec) that carries that part's own errors in `ctx["errors"]`, each located below the error's
own place, so that the loader can give each its own field and line."""


def _inner(loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _inner_errors(exc: ValidationError, at: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """`exc`'s errors located below `at`."""
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        item = _inner((*at, *error["loc"]), error["msg"], error["type"])
        value = error.get("input")
        if value is None or isinstance(value, str | int | float | bool):
            item["input"] = value
        out.append(item)
    return out


def _nested(what: str, errors: list[dict[str, Any]]) -> PydanticCustomError:
    text = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in errors
    )
    return PydanticCustomError(
        NESTED, "{what}: {text}", {"what": what, "text": text, "errors": errors}
    )


_F = TypeVar("_F")


def _registered(registry: plugins.Registry[_F], name: str) -> _F:
    """The factory registered as `name`, or a validation error saying why there is none."""
    try:
        return registry.get(name)
    except plugins.PluginError as exc:
        raise PydanticCustomError("plugin", "{reason}", {"reason": str(exc)}) from None


def _options(
    registry: plugins.Registry[Any], settings: dict[str, Any], *, optional: bool
) -> list[dict[str, Any]]:
    """The problems of `settings` ({part name: its setting}), as errors located below each name.

    Names that are not registered, and settings that do not validate as their factory's `options`
    (which, when not `optional`, may be None: the part then takes no setting).
    """
    problems: list[dict[str, Any]] = []
    for name, value in settings.items():
        try:
            factory = registry.get(name)
        except plugins.PluginError as exc:
            problems.append(_inner((name,), str(exc)))
            continue
        if factory.options is None and not optional:
            problems.append(_inner((name,), f"the {name} {registry.kind} takes no options"))
            continue
        try:
            plugins.options_of(factory.options, value)
        except ValidationError as exc:
            problems += _inner_errors(exc, (name,))
    return problems


# --- persona -------------------------------------------------------------------------------


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
        problems = _options(plugins.checks, dict(self.model_extra or {}), optional=True)
        if problems:
            raise _nested("checks", problems)
        return self


class Principle(StrictModel):
    """One rule of the constitution, compiled into the system prompt.

    With a `check` it is also checked in code; without one, the judge checks it when
    `critique.judge` is on.
    """

    id: str
    text: str = Field(min_length=1)
    check: ProgrammaticCheck | None = None

    _id = field_validator("id")(_check_id)


# --- sections whose behaviour arrives in later releases ------------------------------------


class Policy(StrictModel):
    """A topic the assistant must handle with a fixed answer (e.g. no investment advice)."""

    id: str
    topic: str = Field(description="What the policy is about, in plain words.")
    answer: str = Field(description="What the assistant says instead.")
    examples: list[str] = Field(default_factory=list, description="Probe questions on the topic.")
    escalate: bool = False

    _id = field_validator("id")(_check_id)


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

    _id = field_validator("id")(_check_id)


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
        from typing import get_args

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
        factory = _registered(plugins.guards, name)
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
        problems = _options(plugins.guards, options, optional=False)
        if problems:
            raise _nested("guard options", problems)
        return options

    @model_validator(mode="after")
    def _enabled_guards_have_their_options(self) -> Guards:
        """A guard whose options have required fields needs them when it is on."""
        missing: dict[str, Any] = {
            name: {}
            for name in dict.fromkeys([*self.input, *self.output])
            if name not in self.options and plugins.guards.get(name).options is not None
        }
        problems = _options(plugins.guards, missing, optional=False)
        if problems:
            raise _nested("guard options", [{**p, "loc": ("options", *p["loc"])} for p in problems])
        return self

    @model_validator(mode="after")
    def _safety_model_configured(self) -> Guards:
        named = "safety_model" in self.input or "safety_model" in self.output
        if named and self.safety_model is None:
            raise ValueError("the `safety_model` guard needs a `safety_model:` section")
        return self


class Critique(StrictModel):
    """Constitutional self-critique of each draft reply."""

    enabled: bool = True
    rounds: int = Field(default=1, ge=0, le=3, description="Revisions at most per turn.")
    judge: bool = Field(
        default=False,
        description="Also ask the judge model about the principles without a programmatic "
        "check (one more model call per turn).",
    )
    user_requests: bool = Field(
        default=True,
        description="Also check the format and length rules the user states in the message "
        "('under 50 words', 'no commas', 'end with ...'), revise and repair like the "
        "constitution's programmatic checks.",
    )
    persona_judge: bool = Field(
        default=True,
        description="Also check the reply's scope, tone, identity, values, `never` items and "
        "unchecked principles with the persona judge built for this charter by `charter "
        "prompt FILE --build-judge` (classifiers on MiniLM; the judge model only when one is "
        "unsure). No effect until it is built.",
    )
    off_scope: Literal["decline", "revise"] = Field(
        default="decline",
        description="A reply the persona judge finds outside the persona's scope: `decline` "
        "replaces it with the persona's decline (`persona.decline`, no model call); `revise` "
        "asks the model to rewrite it, like any other broken rule.",
    )


class Drift(StrictModel):
    """Persona drift monitoring: each reply is scored by the persona's checks."""

    enabled: bool = True
    threshold: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Re-anchor the next turn below this score."
    )


class Memory(StrictModel):
    """Notes on the messages that no longer fit the model's context window."""

    enabled: bool = Field(
        default=True,
        description="When old messages no longer fit, the cheap model takes notes on them "
        "(facts the user gave, decisions, open tasks), pinned after the persona; off: they "
        "are left out and only the user's first request is kept.",
    )
    notes: bool = Field(
        default=True,
        description="Take notes on the left-out messages with the cheap model; off: they are "
        "left out without notes, and only `recall` brings back what bears on the latest "
        "message (no model call for memory).",
    )
    max_tokens: int = Field(
        default=256,
        ge=32,
        le=4096,
        description="The most the notes take of the prompt (and at most a quarter of the "
        "model's context window); past it the oldest notes go, facts last.",
    )
    recall: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Each turn, pin at most this many passages of the left-out user messages "
        "that are most like the latest one (embedded with the `guards` extra's MiniLM); 0: "
        "notes only.",
    )
    recall_min_similarity: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="A passage is recalled only when its cosine similarity to the latest "
        "message is at least this.",
    )


# --- models --------------------------------------------------------------------------------


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
    factory = _registered(plugins.backends, backend)
    try:
        return factory.spec.model_validate(value)
    except ValidationError as exc:
        raise _nested(f"backend {backend!r}", _inner_errors(exc, ())) from None


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


# --- failure policy ------------------------------------------------------------------------

FailureMode = Literal["closed", "open"]


class FailurePolicy(StrictModel):
    """What happens when a stage raises.

    `closed` (default) answers with the persona's apology and marks the turn blocked; `open` skips
    the stage and carries on. Either way the failure is recorded in the trace.
    """

    default: FailureMode = "closed"
    stages: dict[str, FailureMode] = Field(default_factory=dict)

    def mode_for(self, stage: str) -> FailureMode:
        return self.stages.get(stage, self.default)


# --- gateway ---------------------------------------------------------------------------------


class Gateway(StrictModel):
    """How `charter serve` treats what OpenAI clients send."""

    client_system: Literal["reject", "merge"] = Field(
        default="merge",
        description="A request's `system` and `developer` messages: merge places them below the "
        "charter's own prompt as operator instructions (checked by the input guards; the "
        "charter takes precedence); reject answers such a request with a 400.",
    )


# --- the charter ---------------------------------------------------------------------------


class CharterSpec(StrictModel):
    """The whole charter file."""

    id: str = Field(description="Identifier, also the model name on the gateway.")
    version: str = "1"
    persona: Persona
    constitution: list[Principle] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    instructions: list[Instruction] = Field(default_factory=list)
    tools: list[Tool] = Field(default_factory=list)
    tool_limits: ToolLimits = Field(default_factory=ToolLimits)
    knowledge: Knowledge | None = None
    guards: Guards = Field(default_factory=Guards)
    critique: Critique = Field(default_factory=Critique)
    drift: Drift = Field(default_factory=Drift)
    memory: Memory = Field(default_factory=Memory)
    models: Models = Field(default_factory=Models)
    on_failure: FailurePolicy = Field(default_factory=FailurePolicy)
    gateway: Gateway = Field(default_factory=Gateway)
    tests: list[str] = Field(
        default_factory=list,
        description="Files of the team's own eval cases (YAML or JSONL), relative to the "
        "charter file: each is a suite `cases:<name>` in `charter eval` (docs/eval.md, "
        "'Your own cases').",
    )

    _id = field_validator("id")(_check_id)

    @field_validator("constitution", "policies", "instructions", "tools")
    @classmethod
    def _unique_ids(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            key = item.name if isinstance(item, Tool) else item.id
            if key in seen:
                raise ValueError(f"duplicate id {key!r}")
            seen.add(key)
        return items

    @model_validator(mode="after")
    def _cost_budget_needs_a_price(self) -> CharterSpec:
        if self.tool_limits.max_cost is not None and self.models.chat.price is None:
            raise ValueError("tool_limits.max_cost needs models.chat.price")
        return self
