"""Drift monitor: score every draft reply by the persona's checks; re-anchor when it is low.

When the score falls below the charter's threshold, the next turn is re-anchored (a persona reminder
is placed next to the user's next message; see the generate stage). The score and the decision are
in the trace, and the turn's `carry` hands the decision to the next turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState


class DriftStage:
    """The drift stage: re-anchor the next turn when the persona score is below `threshold`.

    A turn without a score (blocked) hands on the decision it was given.
    """

    name = "drift"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        record.detail["reanchored_this_turn"] = state.request.carry.reanchor
        state = await call_next(state)
        score = state.outcome.persona_score
        if score is None:
            record.reason = "no draft to score (the turn was blocked)"
            state.outcome.reanchor_next = state.request.carry.reanchor
            record.detail["reanchor_next"] = state.outcome.reanchor_next
            return state
        record.detail["score"] = round(score, 3)
        drifted = score < self.threshold
        state.outcome.reanchor_next = drifted
        record.detail["reanchor_next"] = drifted
        if drifted:
            record.reason = (
                f"persona score {score:.2f} < {self.threshold:.2f}: the next turn is re-anchored"
            )
        return state
