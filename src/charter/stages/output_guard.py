"""Output guard stage: check the reply before the user sees any of it.

While output guards are on, the generate stage does not stream to the user: the text is held
until the guards pass, then released (whole, or as rewritten: redacted PII, a policy answer).
So no path, streamed or not, shows an unchecked reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.guards.base import Guard, Subject
from charter.stages.guarding import refuse, run_guards

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState


class OutputGuardStage:
    name = "output_guards"

    def __init__(self, guards: list[Guard], *, timeout_s: float) -> None:
        self.guards = guards
        self.timeout_s = timeout_s

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        release = state.on_delta
        state.on_delta = None  # hold the reply until it is checked
        state = await call_next(state)
        state.on_delta = release
        record = state.trace[self.name]
        if state.blocked or state.reply is None:
            record.reason = "not checked: the turn was already blocked"
            record.detail["guards"] = []
        else:
            subject = Subject(
                direction="output",
                text=state.reply,
                messages=tuple(state.messages),
                system_prompt=state.system_prompt,
                canary=state.canary,
            )
            run = await run_guards(
                self.guards,
                subject,
                timeout_s=self.timeout_s,
                failure=state.charter.on_failure,
                rewrite=True,
            )
            record.detail["guards"] = run.to_list()
            if run.blocked_by is not None:
                refuse(state, record, run.blocked_by)
            elif run.text != state.reply:
                record.verdict = "rewrite"
                record.reason = "; ".join(v.reason for v in run.verdicts if v.action == "rewrite")
                state.reply = run.text
        if release is not None and state.reply:
            release(state.reply)
        return state
