"""Escalation to a human: the stage that hands a conversation to a person.

It does so when the user asks for one, when a policy says a specialist must follow up, when an input
guard is unsure and the charter holds such messages for a person, or when turns keep failing.

The stage decides and writes an escalation into the turn (`state.outcome.escalations`); the
conversation saves it in the same transaction as the turn, so a hand-off is never lost.
The user is told what happens next, with a reference they can quote.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from charter.persona.signals import sentiment

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import Persona

_ASKS_FOR_HUMAN = re.compile(
    r"\b(?:speak|talk|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s*one|your\s+)?(?:real\s+|live\s+)?"
    r"(?:human|person|agent|representative|manager|someone|operator|colleague|advisor|adviser)\b"
    r"|\b(?:human|real\s+person|live\s+agent|representative)\s*,?\s*please\b"
    r"|^\s*(?:agent|human|operator|representative)\s*[.!]?\s*$",
    re.IGNORECASE,
)
REPEATED_FAILURES = 2  # this many blocked turns in a row, then a third: hand off
NEGATIVE_TURNS = 3  # this many negative user messages in a row: hand off


def asks_for_human(text: str) -> bool:
    """Whether `text` asks to speak to a person ("talk to a human", "agent please", ...)."""
    return bool(_ASKS_FOR_HUMAN.search(text))


def handoff_message(persona: Persona, reference: str) -> str:
    """The hand-off notice: who follows up, how to reach them, and the user's reference."""
    contact = persona.escalation.contact if persona.escalation else "a human colleague"
    how = ""
    if persona.escalation and persona.escalation.how:
        text = persona.escalation.how.strip().rstrip(".")
        how = f" {text[:1].upper()}{text[1:]}."
    return (
        f"I'm passing this to {contact}, who will follow up with you.{how} "
        f"Your reference is {reference}."
    )


class EscalationStage:
    """The escalate stage: hands the turn to a person and tells the user, with a reference.

    Triggers: the user asks for a person (the turn ends here), a guard held the message, a policy
    needs a specialist, the last three user messages were negative, or a third blocked turn in a
    row.
    """

    name = "escalate"

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        latest = state.messages[-1].content
        if asks_for_human(latest):
            return self._escalate(state, "user_request", "the user asked for a person")
        state = await call_next(state)
        policy = state.outcome.specialist_policy
        if state.outcome.held is not None:
            self._escalate(state, "uncertain_guard", state.outcome.held)
        elif policy is not None:
            self._escalate(state, "policy", f"policy {policy!r} needs a specialist", append=True)
        elif _stays_negative(state):
            self._escalate(
                state,
                "negative_sentiment",
                f"the last {NEGATIVE_TURNS} user messages were all negative",
                append=True,
            )
        elif state.outcome.blocked and state.request.carry.blocked_streak >= REPEATED_FAILURES:
            self._escalate(
                state,
                "repeated_failure",
                f"{state.request.carry.blocked_streak + 1} blocked turns in a row",
                append=True,
            )
        else:
            record.detail["escalated"] = False
        return state

    def _escalate(
        self, state: TurnState, trigger: str, reason: str, *, append: bool = False
    ) -> TurnState:
        reference = f"ESC-{uuid.uuid4().hex[:8].upper()}"
        message = handoff_message(state.charter.persona, reference)
        state.outcome.reply = (
            f"{state.outcome.reply} {message}" if append and state.outcome.reply else message
        )
        state.outcome.escalations.append(
            {
                "id": reference,
                "trigger": trigger,
                "reason": reason,
                "transcript": [m.to_wire() for m in state.messages],
            }
        )
        record = state.trace[self.name]
        record.verdict = "escalate"
        record.reason = reason
        record.detail.update(escalated=True, reference=reference, trigger=trigger)
        return state


def _stays_negative(state: TurnState) -> bool:
    user = [m.content for m in state.messages if m.role == "user"][-NEGATIVE_TURNS:]
    return len(user) == NEGATIVE_TURNS and all(sentiment(t)[0] == "negative" for t in user)
