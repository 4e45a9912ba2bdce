"""Dynamic instructions: add the charter's instructions whose `when` holds to the system prompt.

The stage computes the turn's signals and adds those instructions to the end of the system prompt
(the persona prefix stays byte-identical, so the model's prompt cache still serves it). The trace
lists the signals, their evidence, and which instructions applied and why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from charter.persona.signals import Signals, compute

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import Instruction, When


def _any(expected: str | list[str], actual: str | None) -> bool:
    values = [expected] if isinstance(expected, str) else expected
    return actual is not None and actual.lower() in [v.lower() for v in values]


def holds(when: When, signals: Signals, message: str) -> tuple[bool, list[str]]:  # noqa: C901
    """Whether every given condition holds, and the reasons (for the trace)."""
    why: list[str] = []
    if when.code_language is not None:
        if not _any(when.code_language, signals.code_language):
            return False, []
        why.append(f"code_language={signals.code_language}")
    if when.expertise is not None:
        if signals.expertise != when.expertise:
            return False, []
        why.append(f"expertise={signals.expertise}")
    if when.sentiment is not None:
        if signals.sentiment != when.sentiment:
            return False, []
        why.append(f"sentiment={signals.sentiment}")
    if when.language is not None:
        if not _any(when.language, signals.language):
            return False, []
        why.append(f"language={signals.language}")
    if when.topic_any:
        lowered = message.lower()
        hits = [t for t in when.topic_any if t.lower() in lowered]
        if not hits:
            return False, []
        why.append(f"topic: {hits[0]!r}")
    if when.message_matches is not None:
        if not re.search(when.message_matches, message, re.IGNORECASE):
            return False, []
        why.append("message matches")
    if when.turn_at_least is not None:
        if signals.turn < when.turn_at_least:
            return False, []
        why.append(f"turn {signals.turn}")
    for key, value in when.profile.items():
        if signals.profile.get(key) != value:
            return False, []
        why.append(f"profile.{key}={value}")
    return True, why or ["always"]


class InstructionsStage:
    """The instructions stage: sets the turn's signals and adds the instructions that apply.

    They go under "For this reply:" at the end of the system prompt.
    """

    name = "instructions"

    def __init__(self, instructions: list[Instruction]) -> None:
        self.instructions = instructions

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        signals = compute(state.messages, state.request.profile)
        state.signals = signals
        message = state.messages[-1].content
        applied: list[dict[str, object]] = []
        for instruction in self.instructions:
            ok, why = holds(instruction.when, signals, message)
            if ok:
                applied.append({"id": instruction.id, "why": why})
        if applied:
            chosen = {a["id"] for a in applied}
            lines = [f"- {i.then.strip()}" for i in self.instructions if i.id in chosen]
            state.system_prompt += "\n\nFor this reply:\n" + "\n".join(lines)
        record.detail.update(
            signals={
                "code_language": signals.code_language,
                "expertise": signals.expertise,
                "sentiment": signals.sentiment,
                "language": signals.language,
                "turn": signals.turn,
            },
            evidence=signals.evidence,
            applied=applied,
        )
        return await call_next(state)
