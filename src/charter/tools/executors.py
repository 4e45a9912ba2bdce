"""What becomes of a checked tool call: the tool loop's executor strategies.

- `RunHere`: the charter's own tools run here, on a worker thread with their timeout; a
  dangerous tool waits for a human's approval; each result passes the result guard before
  the model sees it, and the model decides again with it.
- `ProposeToCaller`: a gateway caller's own tools, which the caller runs: the valid calls
  are collected and the turn answers with them. The model decides again only to make the
  calls a reminder points out (`remind_unused`).

The loop (`charter.tools.loop.ToolLoop.turn`) is the same for both; an executor says what
acting on a call means and the few ways its turn goes differently around that.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charter.guards.base import Subject
from charter.guards.normalize import views
from charter.models.base import Message
from charter.tools.registry import ToolError
from charter.tools.steps import Action, Call, LoopOutcome, Step

if TYPE_CHECKING:
    from charter.guards.base import Guard
    from charter.spec.models import ToolLimits
    from charter.tools.registry import LoadedTool

RESULT_CHARS = 2000

_EMPTY = ("[]", "{}", "null", '""')
"""Results that return nothing: another option may be worth a try after them."""

SENT = "sent to the caller to run"


def feedback(call: str, outcome: str) -> list[Message]:
    """What the model is shown of a call and what became of it."""
    return [
        Message(role="assistant", content=f"(I called {call})"),
        Message(role="user", content=f"(Tool result, not from the customer: {outcome})"),
    ]


@dataclass
class Turn:
    """One turn's tool use while it runs: what the loop and its executor share."""

    system_prompt: str
    messages: list[Message]
    limits: ToolLimits
    request: str
    """The user's latest message."""
    out: LoopOutcome = field(default_factory=LoopOutcome)
    transcript: list[Message] = field(default_factory=list)
    """What the model has been shown after the conversation: its calls, what became of
    them, and notes (a cut-off decision, values no call used)."""
    evidence: list[str] = field(default_factory=list)
    """What the tools returned (a source for the checks)."""
    answered: list[Call] = field(default_factory=list)
    """Calls that returned something, or were proposed."""
    done: list[Any] = field(default_factory=list)
    """The calls acted on, as the executor tells them apart (`Executor.key`): the same
    again is a loop."""
    retries: int = 0
    cut_off: bool = False
    """A decision was cut off: the next ones bound each value (`bounds.py`)."""
    started: float = field(default_factory=time.perf_counter)

    @property
    def over_time(self) -> bool:
        """The turn has run past `max_seconds`."""
        return time.perf_counter() - self.started > self.limits.max_seconds


@dataclass(frozen=True)
class Checked:
    """A decided call that passed every check: what it is acted on with."""

    decision: Call
    """As decided, with the arguments below."""
    tool: LoadedTool
    arguments: dict[str, Any]
    converted: list[str] | None = None
    dropped: list[str] | None = None

    @property
    def name(self) -> str:
        return str(self.decision.get("tool"))

    @property
    def text(self) -> str:
        """`name({arguments})`, as the model and the results are shown the call."""
        return call_text(self.decision)

    def step(self, action: Action, **fields: Any) -> Step:
        return Step(self.decision, action, converted=self.converted, dropped=self.dropped, **fields)


def call_text(decision: Call) -> str:
    """`name({arguments})`, the arguments' keys sorted."""
    return f"{decision.get('tool')}({json.dumps(decision.get('arguments'), sort_keys=True)})"


class Executor(ABC):
    """What acting on a checked call means, and how the turn goes around that."""

    require: bool = False
    """The turn's first decision must hold a call (a gateway caller's `tool_choice:
    required`)."""
    budgeted: bool = True
    """The turn's seconds, tokens and cost (`tool_limits`) apply, and a call past
    `max_calls` stops the turn with a reason. Otherwise only `max_calls` bounds the turn:
    the calls of a decision past the room left are not looked at."""

    @abstractmethod
    async def act(self, turn: Turn, checked: Checked) -> Step:
        """Act on `checked` (run it, propose it).

        Returns its step, with the turn's results, evidence and transcript updated.
        """

    def key(self, checked: Checked) -> Any:
        """What tells calls apart: the same key again is a loop."""
        return checked.text

    def withheld(self, turn: Turn, step: Step, call: str, told: str) -> None:  # noqa: B027
        """A call did not pass the checks; `told` says why. By default nothing follows."""

    def unreadable(self, turn: Turn) -> bool:
        """A decision could not be read (cut off by the token limit): whether to ask again.

        When asked again, each value is bounded. By default once.
        """
        if turn.cut_off:
            return False
        turn.cut_off = True
        return True

    def done(self, turn: Turn) -> None:  # noqa: B027
        """The model made no call: it is done with tools. By default nothing follows."""

    @abstractmethod
    def after(self, turn: Turn, progressed: bool, reminded: bool) -> bool:
        """After a decision's calls: whether the model decides again.

        `progressed`: one was acted on; `reminded`: the model was told of values the calls left
        unused.
        """


class RunHere(Executor):
    """The charter's own tools, run here.

    Every problem is fed back to the model, which tries again within `max_retries`; the loop goes on
    until the model is done or a budget is spent.
    """

    def __init__(
        self,
        *,
        result_guard: Guard | None = None,
        approve: Callable[[str], str] | None = None,
    ) -> None:
        """Run the tools here, with a guard on results and approval for dangerous calls.

        `result_guard` checks each result before the model sees it (a tool result is untrusted text:
        indirect injection). `approve` files a request for a human's approval of a dangerous call
        and returns its reference; without it such a call is refused.
        """
        self.result_guard = result_guard
        self.approve = approve

    async def act(self, turn: Turn, checked: Checked) -> Step:
        out, call = turn.out, checked.text
        if checked.tool.spec.dangerous:
            return self._dangerous(turn, checked)
        step, outcome = await self._run(checked)
        if outcome is None:
            turn.retries += 1
            if turn.retries > turn.limits.max_retries:
                out.results.append(f"{call} → failed: {step.error}")
            else:
                turn.transcript += feedback(call, f"failed: {step.error}")
            return step
        out.results.append(f"{call} → {outcome}")
        turn.evidence.append(outcome)
        if outcome not in _EMPTY:
            turn.answered.append({"tool": checked.name, "arguments": checked.arguments})
        turn.transcript += feedback(call, outcome)
        return step

    def withheld(self, turn: Turn, step: Step, call: str, told: str) -> None:
        if step.action != "variant":
            turn.retries += 1
        turn.transcript += feedback(call, told)

    def unreadable(self, turn: Turn) -> bool:
        # Grammar-forced JSON breaks only when cut off by max_tokens (too many calls at
        # once, or a runaway value): say so and let the model try again, within the retry
        # budget, with each string and list bounded (`bounds.py`).
        turn.cut_off = True
        turn.retries += 1
        if turn.retries > turn.limits.max_retries:
            turn.out.reason = "stopped: the tool decisions could not be read"
            return False
        turn.transcript.append(
            Message(
                role="user",
                content="(Note: your last answer was cut off or was not JSON. Make "
                "fewer calls at once.)",
            )
        )
        return True

    def done(self, turn: Turn) -> None:
        turn.out.steps.append(Step({"tool": "none"}, "answer"))

    def after(self, turn: Turn, progressed: bool, reminded: bool) -> bool:
        if turn.retries > turn.limits.max_retries:
            turn.out.reason = "stopped: too many invalid or failed calls"
        elif not progressed and any(s.action == "loop" for s in turn.out.steps):
            turn.out.reason = "stopped: the model repeated calls it already made (loop)"
        return True

    def _dangerous(self, turn: Turn, checked: Checked) -> Step:
        """A dangerous call does not run: a human's approval is asked, and the turn stops."""
        out, call = turn.out, checked.text
        if self.approve is None:
            step = checked.step("refused", error="dangerous and nobody can approve it")
            out.results.append(f"{call} → not run: needs a human's approval")
        else:
            reference = self.approve(call)
            step = checked.step("awaiting_approval", reference=reference)
            out.results.append(f"{call} → not run: awaits a human's approval ({reference})")
        out.reason = "stopped: a dangerous action awaits approval"
        return step

    async def _run(self, checked: Checked) -> tuple[Step, str | None]:
        """The call run, and what the model is shown of its result (None: it failed)."""
        tool = checked.tool
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(tool.call, checked.arguments), tool.spec.timeout_s
            )
        except TimeoutError:
            error = f"timed out after {tool.spec.timeout_s:g} s"
            return checked.step("failed", error=error, ms=took()), None
        except ToolError as exc:
            return checked.step("failed", error=str(exc), ms=took()), None
        ms = took()
        text = json.dumps(result, ensure_ascii=False)[:RESULT_CHARS]
        if self.result_guard is not None:
            readings, _ = views(text)
            subject = Subject(direction="input", text=text, views=tuple(readings))
            verdict = await asyncio.to_thread(self.result_guard.check, subject)
            if verdict.action == "block":
                error = f"result flagged: {verdict.reason}"
                withheld = "result withheld: it looked like an attempt to instruct the assistant"
                return checked.step("withheld", error=error, ms=ms), withheld
        return checked.step("ran", ms=ms, result_chars=len(text)), text


class ProposeToCaller(Executor):
    """A caller's own tools, which the caller runs: valid calls are collected, and the turn stops.

    Calls that do not pass the checks are left out (the trace says why), not fed back; a cut-off
    decision is asked once more, with each value bounded. The model decides again only when told of
    values its calls left unused, within `max_calls`.
    """

    budgeted = False

    def __init__(self, *, require: bool = False) -> None:
        """Collect the model's calls for the caller to run.

        `require` (a gateway caller's `tool_choice: required`): the first decision must hold at
        least one call (the grammar, or the backend's own `tool_choice`).
        """
        self.require = require

    async def act(self, turn: Turn, checked: Checked) -> Step:
        turn.out.results.append(f"{checked.text} → {SENT}")
        turn.answered.append({"tool": checked.name, "arguments": checked.arguments})
        turn.transcript += feedback(checked.text, SENT)
        return checked.step("proposed")

    def key(self, checked: Checked) -> Any:
        """Proposals are told apart by value, as the caller gets them (1 and 1.0 are one call)."""
        return {"name": checked.name, "arguments": checked.arguments}

    def after(self, turn: Turn, progressed: bool, reminded: bool) -> bool:
        return progressed and reminded
