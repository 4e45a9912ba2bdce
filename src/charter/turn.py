"""The typed parts of one turn: what is asked, what was decided, what carries over.

- `TurnRequest`: what the caller asked, immutable (messages, who, their profile, client
  tools, a JSON schema, generation options, operator instructions, and the `Carry` from the
  conversation's previous turn).
- `TurnOutcome`: what the stages decided, filled in as the turn runs (the reply, whether it
  was blocked and why, citations, escalations, a rate limit's wait, guard verdicts, and what
  the next turn needs to know).
- `Carry`: the state one turn hands to the next (how many turns in a row were blocked,
  whether the persona should be restated, and the memory of messages that no longer fit).
  A `Conversation` stores it with the turn; the gateway, whose callers send the history
  themselves, derives it from that history (and finds the memory in its store).

The stage-by-stage trace is a record for people (logs, the eval report, the playground);
behaviour never reads it back. Everything a stage tells another stage or the caller goes
through these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from charter.models.base import Message, Sampling
from charter.persona.memory import ConversationMemory

GuardSide = Literal["input", "operator", "output"]


@dataclass(frozen=True)
class Carry:
    """What one turn of a conversation hands to the next."""

    blocked_streak: int = 0
    """How many of the conversation's latest turns, in a row, were blocked."""
    reanchor: bool = False
    """The last reply drifted from the persona: restate the persona next to the new message."""
    memory: ConversationMemory | None = None
    """Notes on the conversation's oldest messages, which no longer fit the model's window."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blocked_streak": self.blocked_streak, "reanchor": self.reanchor}
        if self.memory is not None:
            out["memory"] = self.memory.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Carry:
        memory = data.get("memory")
        return cls(
            blocked_streak=int(data.get("blocked_streak", 0)),
            reanchor=bool(data.get("reanchor", False)),
            memory=ConversationMemory.from_dict(memory) if isinstance(memory, dict) else None,
        )


@dataclass(frozen=True)
class TurnRequest:
    """One turn as the caller asked for it. Stages read it; none changes it."""

    messages: tuple[Message, ...]
    """The conversation so far, ending with the user's new message. No system message."""
    user: str | None = None
    """Who is talking (user id or API key id): the rate limit key."""
    profile: dict[str, str] = field(default_factory=dict)
    """The user's stored profile (persists across conversations)."""
    client_tools: tuple[dict[str, Any], ...] = ()
    """Functions the caller offers and runs itself ({"name", "description", "parameters"})."""
    json_schema: dict[str, Any] | None = None
    """The reply must be JSON matching this schema (the caller's `response_format`)."""
    tool_choice: Literal["auto", "required"] = "auto"
    """With `client_tools`: "required" asks the model for at least one call."""
    sampling: Sampling = field(default_factory=Sampling)
    """The caller's generation options for the reply (temperature, max_tokens, ...)."""
    operator_instructions: str | None = None
    """A gateway caller's own system messages, placed below the charter's prompt."""
    carry: Carry = field(default_factory=Carry)
    """What the conversation's previous turn handed over."""

    @property
    def latest(self) -> str:
        """The user's new message."""
        return self.messages[-1].content


class Escalation(TypedDict):
    """A hand-off to a person raised by the turn (saved with the turn)."""

    id: str
    """The reference the user is given."""
    trigger: str
    reason: str
    transcript: list[dict[str, Any]]


class Citation(TypedDict):
    """A knowledge passage the reply cites as "[n]"."""

    n: int
    where: str
    text: str


@dataclass(frozen=True)
class GuardCall:
    """One guard's verdict on this turn."""

    side: GuardSide
    guard: str
    action: str


@dataclass(frozen=True)
class Draft:
    """The model's first reply when critique changed it, and the rules it broke."""

    text: str
    violations: tuple[str, ...]
    """Each broken rule as critique named it to the model: "<rule id>: <what it asks>"."""


@dataclass
class TurnOutcome:
    """What the stages decided. Each field says which stage writes it."""

    reply: str | None = None
    """The text the user sees (generate; critique and the output guards may change it;
    any stage that ends the turn early sets it)."""
    blocked: bool = False
    block_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Calls to the caller's own tools the turn answered with ({"name", "arguments"})."""
    citations: list[Citation] = field(default_factory=list)
    """The knowledge passages the reply cites (retrieve)."""
    escalations: list[Escalation] = field(default_factory=list)
    """Hand-offs to a person (escalate; tools, for a dangerous tool's approval)."""
    retry_after_s: float | None = None
    """Set when the rate limit stopped the turn: seconds until the caller may try again."""
    guards: list[GuardCall] = field(default_factory=list)
    """Every guard verdict of the turn, in order (input, operator and output guards)."""
    held: str | None = None
    """Why the message is held for a person instead of answered (input guards: a guard is
    unsure and the charter holds such messages); escalate hands it over."""
    specialist_policy: str | None = None
    """A policy the reply matched that needs a specialist to follow up (output guards);
    escalate hands it over."""
    revisions: int = 0
    """How many times the critique had the model rewrite its draft (critique)."""
    declined: bool = False
    """The reply is the persona's decline of a request outside its scope (critique); the
    same decline may be given again (hygiene does not count it as spinning)."""
    persona_score: float | None = None
    """Share of the persona's checks the draft reply passed (critique); drift reads it."""
    draft: Draft | None = None
    """The draft critique replaced, with the rules it broke (critique); None when the
    draft was kept. Training data pairs it with the reply (charter/training)."""
    reanchor_next: bool = False
    """The next turn should restate the persona (drift)."""
    memory: ConversationMemory | None = None
    """The conversation's memory when this turn changed it (generate: old messages no longer
    fit); None keeps the previous turn's. An empty memory forgets it."""

    def block(self, reply: str, reason: str) -> None:
        """End the turn with `reply` because of `reason`.

        `reply` is a refusal, a wait notice or the fallback.
        """
        self.reply = reply
        self.blocked = True
        self.block_reason = reason

    def carry(self, previous: Carry) -> Carry:
        """What this turn hands to the conversation's next turn."""
        memory = previous.memory if self.memory is None else self.memory
        return Carry(
            blocked_streak=previous.blocked_streak + 1 if self.blocked else 0,
            reanchor=self.reanchor_next,
            memory=None if memory is None or memory.empty else memory,
        )
