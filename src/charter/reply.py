"""`Reply`: what a turn gives back to the caller, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charter.models.base import Usage
from charter.pipeline import Trace
from charter.turn import Carry, Citation, Escalation, GuardCall

if TYPE_CHECKING:
    from charter.persona.signals import Signals
    from charter.pipeline import TurnState
    from charter.spec.models import CharterSpec


@dataclass(frozen=True)
class Reply:
    """What a turn gives back to the caller: the reply, how it was reached, and what it cost.

    `blocked` is set when the reply is a refusal, a wait notice or the fallback (`block_reason` says
    why); `ms` is the turn's time in milliseconds. `to_dict` is the JSON-ready summary.
    """

    text: str
    blocked: bool
    block_reason: str | None
    trace: Trace
    """Every stage's record (verdict, time, tokens, details): for people and logs."""
    usage: Usage
    ms: float
    escalations: list[Escalation] = field(default_factory=list)
    """Hand-offs to a human this turn raised: id (the user's reference), trigger, reason,
    transcript. A `Conversation` saves them; a stateless caller should too."""
    signals: Signals | None = None
    citations: list[Citation] = field(default_factory=list)
    """The knowledge passages the reply cites: n (as in "[n]"), where, text."""
    cost: float | None = None
    """What the turn cost at the charter's prices (each model's own); None without prices."""
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    """Tokens by model role: "chat", "strong", "judge"."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Calls to the caller's own tools ({"name", "arguments"}), when the turn answered with
    them instead of text."""
    carry: Carry = field(default_factory=Carry)
    """What the conversation's next turn needs from this one (pass it back as `carry`)."""
    retry_after_s: float | None = None
    """When the rate limit stopped the turn: seconds until the caller may try again."""
    guards: list[GuardCall] = field(default_factory=list)
    """Every guard verdict of the turn, in order."""
    revisions: int = 0
    """How many times critique had the model rewrite its draft: what holding the persona cost."""

    @classmethod
    def of(cls, state: TurnState, *, ms: float) -> Reply:
        """The reply a finished turn gives."""
        outcome = state.outcome
        return cls(
            text=outcome.reply or "",
            blocked=outcome.blocked,
            block_reason=outcome.block_reason,
            trace=state.trace,
            usage=state.usage,
            ms=ms,
            escalations=list(outcome.escalations),
            signals=state.signals,
            citations=[] if outcome.blocked else list(outcome.citations),
            cost=turn_cost(state.charter, state.usage_by_model),
            usage_by_model=dict(state.usage_by_model),
            tool_calls=list(outcome.tool_calls),
            carry=outcome.carry(state.request.carry),
            retry_after_s=outcome.retry_after_s,
            guards=list(outcome.guards),
            revisions=outcome.revisions,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.text,
            "blocked": self.blocked,
            "block_reason": self.block_reason,
            "escalations": [
                {"id": e["id"], "trigger": e["trigger"], "reason": e["reason"]}
                for e in self.escalations
            ],
            "citations": [{"n": c["n"], "where": c["where"]} for c in self.citations],
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "cost": self.cost,
            "ms": round(self.ms, 3),
            "trace": self.trace.to_list(),
        }


def turn_cost(spec: CharterSpec, usage: dict[str, Usage]) -> float | None:
    """Each model role's tokens at that model's price, summed.

    None when a model that spent tokens has no price (a partial sum would understate the cost).
    """
    models = spec.models
    prices = {
        "chat": models.chat.price,
        "strong": models.strong.price if models.strong is not None else None,
        "judge": (models.judge or models.chat).price,
    }
    total = 0.0
    for role, spent in usage.items():
        price = prices.get(role)
        if spent.total_tokens == 0:
            continue
        if price is None:
            return None
        total += price.cost(spent.prompt_tokens, spent.completion_tokens)
    return round(total, 10)
