"""Hygiene stage: no pipeline scaffolding in a reply, and no spinning. Always on.

On the way out, after critique and generate and before the output guards:
1. **Scaffolding** (persona/scaffolding.py): check ids, the reminder or the revision
   request echoed back, the canary (unless the leak guard is on: it blocks such a reply),
   and the frame a small model puts around a revision ("Sure, here's the rewritten
   message: ..."; critique takes it out of its own revisions first) are taken out. A reply
   with nothing left is generated again.
2. **Spinning** (persona/repetition.py): a reply that repeats an earlier reply of the
   conversation is generated again with that earlier reply left out of what the model
   sees. If the new try spins too, or the reply repeated itself, the next try sees the
   user's messages only: every earlier reply is left out, since a small model copies
   whichever of its own replies it is shown. The last try is also shown the reply that
   spun, with a note (in the critique's words, so it is scaffolding if echoed) saying what
   is wrong with it. After `regenerations` tries the persona says,
   honestly, that it is going in circles, and offers a person where the charter names one.
   Each new try is drawn warmer and with another seed (`generate.resampled`): a small model
   at a low temperature gives the same reply to the same question, whatever was trimmed.
   A refusal or a decline (critique, off scope) is the persona's own fixed words, not a
   spin: it may be given every time it is due.

Each finding and each new try is in the trace. With critique on, the stream is already held
until the reply is final, so checking it whole costs no time to first token. With critique
off and a streaming caller, scaffolding is taken out sentence by sentence as the text is
released (nothing to regenerate there: without a revision there is little to echo), and a
repeat is recorded, not regenerated (the user has seen it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from charter.models.base import Message
from charter.persona.identity import held_checks
from charter.persona.repetition import repeats_earlier, repeats_itself
from charter.persona.scaffolding import REVISION_OPENING, Markers, strip
from charter.stages.guarding import GuardRun
from charter.stages.output_guard import SentenceGate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from charter.pipeline import CallNext, StageRecord, TurnState
    from charter.spec.models import CharterSpec

_PIPELINE_IDS = re.compile(r"\b(?:asked|grounded)\.[a-z_]+\b")


def exchanges(messages: Sequence[Message]) -> tuple[list[str], list[str]]:
    """The assistant's earlier replies, and the user message each one answered."""
    replies: list[str] = []
    asked: list[str] = []
    last_user = ""
    for message in messages:
        if message.role == "user":
            last_user = message.content
        elif message.role == "assistant":
            replies.append(message.content)
            asked.append(last_user)
    return replies, asked


def circling(spec: CharterSpec) -> str:
    """What the persona says when it keeps giving the same answer."""
    escalation = spec.persona.escalation
    offer = (
        f"If you'd like, I can pass this to {escalation.contact}: just say so."
        if escalation is not None
        else "Could you tell me what my earlier answers were missing, or put the question "
        "another way?"
    )
    return f"I notice I keep giving you the same answer, which isn't helping. {offer}"


@dataclass(frozen=True)
class Problem:
    """Why a reply needs a new try."""

    kind: Literal["scaffolding", "repeats_earlier", "repeats_itself"]
    why: str


class HygieneStage:
    """Takes the pipeline's own scaffolding out of replies and stops the assistant spinning."""

    name = "hygiene"

    def __init__(self, spec: CharterSpec, *, held: bool, regenerations: int = 3) -> None:
        """`held`: an inner stage (critique) holds streamed text until the reply is final."""
        self.spec = spec
        self.held = held
        self.regenerations = regenerations
        self.check_ids = frozenset(c.id for c in held_checks(spec))
        self.leak_guarded = "leak" in spec.guards.output
        """With the leak guard on, a reply with the canary is blocked there: the canary says
        the prompt itself may be in the reply, which taking out one line would not fix."""

    def _markers(self, state: TurnState, reply: str) -> Markers:
        found = frozenset(_PIPELINE_IDS.findall(reply))
        canary = "" if self.leak_guarded else state.canary
        return Markers(check_ids=self.check_ids | found, canary=canary)

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        outer = state.stream.sink
        if outer is not None and not self.held:
            return await self._streamed(state, call_next, record)
        with state.stream.diverted(None):
            state = await call_next(state)
            tries = 0
            told = False
            while True:
                problem = self._inspect(state, record, told=told)
                if problem is None:
                    break
                if tries >= self.regenerations:
                    record.verdict = "rewrite"
                    record.reason = f"{problem.why}; still after {tries} new tries: said so"
                    state.outcome.reply = circling(self.spec)
                    break
                tries += 1
                record.detail.setdefault("regenerated", []).append(problem.why)
                spun = state.outcome.reply or ""
                if problem.kind == "repeats_itself" or (
                    problem.kind == "repeats_earlier" and tries > 1
                ):
                    self._users_only(state, record)
                if problem.kind != "scaffolding" and tries == self.regenerations > 1:
                    self._told(state, problem, spun, record)
                    told = True
                state.outcome.reply = None
                state.outcome.tool_calls = []
                state.new_tries = tries
                state = await call_next(state)
        if state.outcome.reply:
            await state.stream.send(state.outcome.reply)
        return state

    def _inspect(self, state: TurnState, record: StageRecord, *, told: bool) -> Problem | None:
        """Clean the reply in place; the problem that needs a new try, if any.

        `told`: the reply answers a note on what was wrong (its frame goes, as a revision's).
        """
        outcome = state.outcome
        if outcome.blocked or outcome.declined or not outcome.reply:
            return None  # a refusal or a decline is the persona's own words, given as often as due
        reply = outcome.reply
        stripped = strip(
            reply,
            self._markers(state, reply),
            revised=told or outcome.revisions > 0,
            request=state.request.latest,
        )
        if stripped.removed:
            record.detail.setdefault("scaffolding", []).extend(stripped.removed)
            record.verdict = "rewrite"
            record.reason = "took the pipeline's own words out of the reply"
            if not stripped.text:
                return Problem("scaffolding", "the reply was only scaffolding")
            outcome.reply = reply = stripped.text
        earlier, asked = exchanges(state.request.messages)
        index = repeats_earlier(reply, earlier, request=state.request.latest, asked=asked)
        if index is not None:
            self._leave_out(state, earlier[index])
            record.detail.setdefault("repeats", []).append("an earlier reply")
            return Problem("repeats_earlier", "the reply repeats an earlier reply")
        itself = repeats_itself(reply)
        if itself is not None:
            record.detail.setdefault("repeats", []).append(f"itself: {itself}")
            return Problem("repeats_itself", f"the reply repeats itself ({itself!r})")
        return None

    @staticmethod
    def _leave_out(state: TurnState, reply: str) -> None:
        """The model will not see the earlier reply it copied (nor will the next try)."""
        state.messages = [
            m for m in state.messages if not (m.role == "assistant" and m.content == reply)
        ]

    @staticmethod
    def _told(state: TurnState, problem: Problem, spun: str, record: StageRecord) -> None:
        """The last try sees the reply that spun, and a note saying what is wrong with it."""
        what = (
            "says the same thing over and over"
            if problem.kind == "repeats_itself"
            else "gives the same answer as one of your earlier replies"
        )
        state.messages = [
            *state.messages,
            Message(role="assistant", content=spun),
            Message(
                role="user",
                content=f"{REVISION_OPENING}, not from the customer.) Your last reply {what}, "
                "and the customer still needs an answer to their last message. Write a new "
                "reply that does what they ask, in other words. Reply with the new message only.",
            ),
        ]
        record.detail["told"] = True

    @staticmethod
    def _users_only(state: TurnState, record: StageRecord) -> None:
        """The next try sees none of the assistant's earlier replies, only what the user said."""
        if any(m.role == "assistant" for m in state.messages):
            state.messages = [m for m in state.messages if m.role != "assistant"]
            record.detail["left_out"] = "every earlier reply"

    async def _streamed(
        self, state: TurnState, call_next: CallNext, record: StageRecord
    ) -> TurnState:
        outer = state.stream.sink
        assert outer is not None

        async def check(text: str) -> GuardRun:
            cleaned = strip(text, self._markers(state, text), revised=False, request="")
            return GuardRun(text=cleaned.text if cleaned.removed else text)

        gate = SentenceGate(outer, check)
        with state.stream.diverted(gate):
            state = await call_next(state)
        outcome = state.outcome
        if outcome.reply and not outcome.blocked:
            final = (await check(outcome.reply)).text
            if final != outcome.reply:
                record.verdict = "rewrite"
                record.reason = "took the pipeline's own words out of the reply"
            earlier, asked = exchanges(state.request.messages)
            latest = state.request.latest
            if repeats_earlier(final, earlier, request=latest, asked=asked) is not None or (
                repeats_itself(final)
            ):
                record.detail["repeats_seen_by_user"] = True
            outcome.reply = await gate.finish(final, None)
        elif outcome.reply:
            outcome.reply = await gate.finish(outcome.reply, outcome.reply)
        return state
