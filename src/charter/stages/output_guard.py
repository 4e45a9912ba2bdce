"""Output guard stage: no text reaches the user before the output guards have passed it.

Plain turns: the reply is checked whole, then returned (as is, rewritten, or replaced by the
persona's refusal). Streamed turns: the text is released **sentence by sentence**, each
release only after the guards passed everything released so far plus the new sentence (a
leak split across two sentences is still a leak). A sentence the guards rewrite (redacted
PII) is released rewritten. When a guard blocks mid-stream, nothing more of the model's text
is released and the stream ends with the persona's refusal. The whole reply is then checked
once more, as on the plain path, and that verdict is the one in the trace, so no path,
streamed or not, shows an unchecked reply.

Inner stages that change the draft after it is generated (critique) hold their text until
they are done, so with critique on the gate receives the final draft in one piece.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from charter.guards.base import Guard, GuardVerdict, Subject
from charter.pipeline import emit
from charter.stages.guarding import GuardRun, record_verdicts, refuse, run_guards

if TYPE_CHECKING:
    from charter.pipeline import CallNext, Delta, TurnState

_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s+|\n")


class SentenceGate:
    """Buffers streamed text and releases whole sentences the `check` lets through.

    `check(text)` gets everything so far and returns the guards' run: the text to show
    (possibly rewritten), or the verdict that blocks it.
    """

    def __init__(self, release: Delta, check: Callable[[str], Awaitable[GuardRun]]) -> None:
        self.release = release
        self.check = check
        self.pending = ""
        self.checked_raw = ""
        self.visible = ""
        self.stopped = False
        self.blocked_by: GuardVerdict | None = None
        self.checks = 0

    async def __call__(self, delta: str) -> None:
        if self.stopped:
            return
        self.pending += delta
        ends = list(_SENTENCE_END.finditer(self.pending))
        if ends:
            cut = ends[-1].end()
            await self._pass(self.pending[:cut])
            self.pending = self.pending[cut:]

    async def _pass(self, piece: str) -> None:
        self.checks += 1
        run = await self.check(self.checked_raw + piece)
        self.blocked_by = run.blocked_by
        shown = run.text
        if run.blocked_by is not None or not shown.startswith(self.visible):
            self.stopped = True  # blocked, or a rewrite changed text already shown
            return
        self.checked_raw += piece
        new = shown[len(self.visible) :]
        self.visible = shown
        if new:
            await emit(self.release, new)

    async def finish(self, final: str, refusal: str | None) -> str:
        """Release what is left of `final`, or the persona's `refusal` when the turn was blocked.

        `final` is the reply after the full check. Returns what the user saw, whole.
        """
        shown = self.visible
        core = shown.rstrip()  # the final text is trimmed; the stream may end in whitespace
        if refusal is None and final.startswith(core):
            rest = final[len(core) :]
            tail = shown[len(core) :]  # whitespace the user already has
            rest = rest[len(tail) :] if rest.startswith(tail) else rest.lstrip()
            if rest:
                await emit(self.release, rest)
            return shown + rest
        ending = refusal if refusal is not None else final
        if self.visible and not self.visible.endswith(("\n", " ")):
            ending = "\n\n" + ending
        await emit(self.release, ending)
        return self.visible + ending


class OutputGuardStage:
    """The output guard stage: no reply text reaches the user before the output guards pass it.

    Streamed text goes through a `SentenceGate`; the whole reply is checked once more at the end,
    and that verdict is the one in the trace.
    """

    name = "output_guards"

    def __init__(self, guards: list[Guard], *, timeout_s: float) -> None:
        self.guards = guards
        self.timeout_s = timeout_s

    def _subject(self, state: TurnState, text: str) -> Subject:
        return Subject(
            direction="output",
            text=text,
            messages=tuple(state.messages),
            system_prompt=state.system_prompt,
            canary=state.canary,
        )

    @staticmethod
    def _decided(state: TurnState, verdicts: list[GuardVerdict]) -> None:
        record_verdicts(state, "output", verdicts)
        for verdict in verdicts:
            if verdict.detail.get("escalate"):  # a policy matched, whoever wrote its answer
                state.outcome.specialist_policy = str(verdict.detail.get("policy"))
                return

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        async def check(text: str) -> GuardRun:
            return await run_guards(
                self.guards,
                self._subject(state, text),
                timeout_s=self.timeout_s,
                failure=state.charter.on_failure,
                rewrite=True,
            )

        outer = state.stream.sink
        gate = SentenceGate(outer, check) if outer is not None else None
        with state.stream.diverted(gate):
            state = await call_next(state)
        record = state.trace[self.name]
        if gate is not None and gate.blocked_by is not None and not state.outcome.blocked:
            refuse(state, record, gate.blocked_by)  # blocked mid-stream: that verdict stands
            record.detail["guards"] = [gate.blocked_by.to_dict()]
            self._decided(state, [gate.blocked_by])
        elif state.outcome.blocked or state.outcome.reply is None:
            record.reason = "not checked: the turn was already blocked"
            record.detail["guards"] = []
        else:
            run = await run_guards(
                self.guards,
                self._subject(state, state.outcome.reply),
                timeout_s=self.timeout_s,
                failure=state.charter.on_failure,
                rewrite=True,
            )
            record.detail["guards"] = run.to_list()
            self._decided(state, run.verdicts)
            if run.blocked_by is not None:
                refuse(state, record, run.blocked_by)
            elif run.text != state.outcome.reply:
                record.verdict = "rewrite"
                record.reason = "; ".join(v.reason for v in run.verdicts if v.action == "rewrite")
                state.outcome.reply = run.text
        if gate is not None:
            record.detail["stream"] = {"sentence_checks": gate.checks, "stopped": gate.stopped}
            if state.outcome.reply is not None:
                refusal = state.outcome.reply if state.outcome.blocked else None
                state.outcome.reply = await gate.finish(state.outcome.reply, refusal)
        elif state.outcome.reply:
            await state.stream.send(state.outcome.reply)
        return state
