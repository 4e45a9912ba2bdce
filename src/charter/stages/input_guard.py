"""Input guard stage: normalise the user's message, run the input guards, block on the way in.

Every view of the latest user message (normalised, decoded) and the whole conversation are
what the guards see; a block ends the turn before the model is called. Earlier user
messages this deployment already answered are marked as vetted (the history guard does not
judge them again); exchanges it refused are left out of what the model sees. The charter's
allow-list blanks the spans its users legitimately send before any guard reads the text.
With `persona.escalation.on_uncertain_guard`, a message the injection classifier is unsure
about (its uncertain band, no judge) is held: not answered, handed to a person by the
escalate stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.guards.allowlist import AllowHit, AllowList
from charter.guards.answered import AnsweredTurns, Vetting
from charter.guards.base import Guard, Subject
from charter.guards.normalize import views
from charter.models.base import Message
from charter.stages.guarding import record_verdicts, refuse, run_guards

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState


class InputGuardStage:
    """The input guard stage: checks the user's message before the model is called.

    A block ends the turn with the persona's refusal; with `persona.escalation.on_uncertain_guard`,
    an unsure verdict holds the message for a person.
    """

    name = "input_guards"

    def __init__(
        self,
        guards: list[Guard],
        *,
        timeout_s: float,
        answered: AnsweredTurns | None = None,
        allow: AllowList | None = None,
    ) -> None:
        self.guards = guards
        self.timeout_s = timeout_s
        self.answered = answered
        self.allow = allow or AllowList([])

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        vetting = self.answered.vet(state.messages) if self.answered else Vetting()
        if vetting.refused:
            state.messages = _without_refused(state.messages, vetting.refused)
            record.detail["dropped_refused"] = len(vetting.refused)
            vetting = self.answered.vet(state.messages) if self.answered else Vetting()
        hits: list[AllowHit] = []
        checked: list[Message] = []
        for message in state.messages:
            if message.role == "user" and self.allow:
                text, found = self.allow.blank(message.content)
                hits.extend(found)
                message = Message(role=message.role, content=text)
            checked.append(message)
        latest = checked[-1].content
        readings, decoded = views(latest)
        subject = Subject(
            direction="input",
            text=latest,
            views=tuple(readings),
            messages=tuple(checked),
            system_prompt=state.system_prompt,
            canary=state.canary,
            vetted=vetting.judged,
        )
        run = await run_guards(
            self.guards, subject, timeout_s=self.timeout_s, failure=state.charter.on_failure
        )
        record.detail["guards"] = run.to_list()
        record_verdicts(state, "input", run.verdicts)
        if vetting.answered:
            record.detail["vetted"] = len(vetting.answered)
        if hits:
            record.detail["allowed"] = [hit.to_dict() for hit in hits]
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
            record.reason = state.outcome.held = (
                f"{unsure[0].guard} is unsure (score {unsure[0].score:.2f} in its uncertain band)"
            )
            return state
        return await call_next(state)


def _without_refused(messages: list[Message], refused: frozenset[int]) -> list[Message]:
    """`messages` less each refused user message and the refusal that followed it."""
    dropped = refused | {index + 1 for index in refused}
    return [m for index, m in enumerate(messages) if index not in dropped]
