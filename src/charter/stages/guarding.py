"""Running a stage's list of guards: cheapest first, each on a worker thread with a timeout.

Every verdict is in the trace, and failures are handled by the charter's policy. A guard with
`when = "uncertain"` (a safety model asked only on the uncertain band) runs only if an earlier
guard's verdict says it was unsure.

A guard that raises or times out is a failure, never a pass: with the default policy
(closed) it blocks the turn; with `on_failure.stages.<guard name>: open` it is recorded and
the other guards still run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from charter.guards.base import Action, Guard, GuardVerdict, Subject
from charter.turn import GuardCall, GuardSide

if TYPE_CHECKING:
    from charter.pipeline import StageRecord, TurnState
    from charter.spec.models import FailurePolicy


@dataclass
class GuardRun:
    """What a stage's guards decided: their verdicts, the text after rewrites, and any block."""

    verdicts: list[GuardVerdict] = field(default_factory=list)
    text: str = ""
    """The text after every rewrite."""
    blocked_by: GuardVerdict | None = None

    def to_list(self) -> list[dict[str, object]]:
        return [v.to_dict() for v in self.verdicts]


async def run_guards(
    guards: list[Guard],
    subject: Subject,
    *,
    timeout_s: float,
    failure: FailurePolicy,
    rewrite: bool = False,
) -> GuardRun:
    """Run `guards` in order.

    With `rewrite`, a rewriting guard's text is what later guards see (output side: redactions
    compose).
    """
    run = GuardRun(text=subject.text)
    for guard in guards:
        if getattr(guard, "when", "always") == "uncertain" and not any(
            v.detail.get("uncertain") for v in run.verdicts
        ):
            run.verdicts.append(
                GuardVerdict(guard.name, "allow", reason="not asked: no earlier guard was unsure")
            )
            continue
        current = subject if not rewrite else _with_text(subject, run.text)
        started = time.perf_counter()
        try:
            verdict = await asyncio.wait_for(asyncio.to_thread(guard.check, current), timeout_s)
            verdict = _timed(verdict, started)
        except Exception as exc:
            error = (
                f"timed out after {timeout_s * 1000:.0f} ms"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            mode = failure.mode_for(guard.name)
            action: Action = "block" if mode == "closed" else "allow"
            verdict = GuardVerdict(
                guard.name,
                action,
                1.0 if action == "block" else 0.0,
                f"guard failed ({error}); failure policy: {mode}",
                ms=(time.perf_counter() - started) * 1000,
                detail={"error": error, "failure_policy": mode},
            )
        run.verdicts.append(verdict)
        if verdict.action in ("block", "escalate"):
            run.blocked_by = verdict
            remaining = [g.name for g in guards[len(run.verdicts) :]]
            if remaining:
                run.verdicts.append(
                    GuardVerdict(
                        "(not run)",
                        "allow",
                        reason=f"turn already blocked by {verdict.guard}",
                        detail={"guards": remaining},
                    )
                )
            return run
        if verdict.action == "rewrite" and verdict.rewrite is not None:
            run.text = verdict.rewrite
    return run


def _timed(verdict: GuardVerdict, started: float) -> GuardVerdict:
    return replace(verdict, ms=(time.perf_counter() - started) * 1000)


def _with_text(subject: Subject, text: str) -> Subject:
    return replace(subject, text=text, views=())


def refuse(state: TurnState, record: StageRecord, verdict: GuardVerdict) -> None:
    """End the turn with the persona's refusal because `verdict` blocked it."""
    record.verdict = "block"
    record.reason = f"{verdict.guard}: {verdict.reason}"
    state.outcome.block(state.charter.persona.refusal_reply(), record.reason)


def record_verdicts(state: TurnState, side: GuardSide, verdicts: list[GuardVerdict]) -> None:
    """Add `verdicts` to the turn's outcome (the gateway's guard header, the eval)."""
    state.outcome.guards.extend(GuardCall(side, v.guard, v.action) for v in verdicts)
