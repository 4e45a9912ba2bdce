"""Input guard stage: normalise the user's message, run the input guards, block on the way in.

Every view of the latest user message (normalised, decoded) and the whole conversation are
what the guards see; a block ends the turn before the model is called. With
`persona.escalation.on_uncertain_guard`, a message the injection classifier is unsure about
(its uncertain band, no judge) is held: not answered, handed to a person by the escalate stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.guards.base import Guard, Subject
from charter.guards.normalize import views
from charter.stages.guarding import refuse, run_guards

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState


class InputGuardStage:
    name = "input_guards"

    def __init__(self, guards: list[Guard], *, timeout_s: float) -> None:
        self.guards = guards
        self.timeout_s = timeout_s

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        latest = state.messages[-1].content
        readings, decoded = views(latest)
        subject = Subject(
            direction="input",
            text=latest,
            views=tuple(readings),
            messages=tuple(state.messages),
            system_prompt=state.system_prompt,
            canary=state.canary,
        )
        run = await run_guards(
            self.guards, subject, timeout_s=self.timeout_s, failure=state.charter.on_failure
        )
        record.detail["guards"] = run.to_list()
        if decoded:
            record.detail["decoded"] = decoded
        if run.blocked_by is not None:
            refuse(state, record, run.blocked_by)
            return state
        escalation = state.charter.persona.escalation
        unsure = [v for v in run.verdicts if v.detail.get("uncertain")]
        if unsure and escalation is not None and escalation.on_uncertain_guard:
            # Not answered: the escalate stage hands the message to a person.
            record.verdict = "escalate"
            record.reason = state.held = (
                f"{unsure[0].guard} is unsure (score {unsure[0].score:.2f} in its uncertain band)"
            )
            return state
        return await call_next(state)
