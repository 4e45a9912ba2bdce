"""One turn of conversation as data flowing through stages.

A `Stage` has a single hook, `async def __call__(state, call_next) -> TurnState`: work done
before `await call_next(state)` sees the request on the way in, work done after it sees the
reply on the way out, and returning without calling `call_next` short-circuits the turn
(a block, an answer from policy). `Pipeline` composes stages as an onion, innermost last.

Every stage gets a `StageRecord` in the turn's `Trace` before it runs: its verdict, its own
time (excluding the stages inside it), tokens and details. A stage that raises is handled by
the charter's failure policy (`closed` by default: the persona's apology, turn blocked;
`open`: skip it) and the error is in the trace. Nothing is skipped silently.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from charter.knowledge.documents import Passage
from charter.models.base import Message, Sampling, Usage
from charter.persona.signals import Signals
from charter.spec.models import CharterSpec, FailurePolicy

Verdict = Literal["pass", "block", "rewrite", "escalate", "error"]


@dataclass
class StageRecord:
    stage: str
    verdict: Verdict = "pass"
    ms: float = 0.0
    """The stage's own time: the inner stages' time is not counted here."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reason: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (the detail dict is copied one level deep: a turn's
        trace is not changed after the turn; `dataclasses.asdict` cost 10x more, per turn)."""
        return {
            "stage": self.stage,
            "verdict": self.verdict,
            "ms": round(self.ms, 3),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reason": self.reason,
            "error": self.error,
            "detail": dict(self.detail),
        }


@dataclass
class Trace:
    records: list[StageRecord] = field(default_factory=list)

    def open(self, stage: str) -> StageRecord:
        record = StageRecord(stage)
        self.records.append(record)
        return record

    def __getitem__(self, stage: str) -> StageRecord:
        for record in reversed(self.records):
            if record.stage == stage:
                return record
        raise KeyError(stage)

    def __contains__(self, stage: object) -> bool:
        return any(r.stage == stage for r in self.records)

    @property
    def stages(self) -> list[str]:
        return [r.stage for r in self.records]

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.records]


Delta = Callable[[str], Awaitable[None] | None]
"""Receives each piece of reply text as it is released (sync, or async: awaited)."""


async def emit(release: Delta, text: str) -> None:
    """Hand `text` to a `Delta`, awaiting it when it is async."""
    result = release(text)
    if result is not None:
        await result


@dataclass
class TurnState:
    """Everything one turn knows. Stages read and write it."""

    charter: CharterSpec
    messages: list[Message]
    """The conversation so far, ending with the user's new message. No system message."""
    system_prompt: str = ""
    canary: str = ""
    reply: str | None = None
    blocked: bool = False
    block_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    trace: Trace = field(default_factory=Trace)
    on_delta: Delta | None = None
    """Called with each piece of reply text as it is released to the user (streaming)."""
    user: str | None = None
    """Who is talking (user id or API key id): the rate limit key."""
    prior_blocked: int = 0
    """How many of the conversation's latest turns, in a row, were blocked."""
    escalations: list[dict[str, Any]] = field(default_factory=list)
    """Hand-offs to a human raised during this turn (saved with the turn)."""
    held: str | None = None
    """Why the turn was held for a person instead of answered (an input guard unsure)."""
    reanchor: bool = False
    """The previous reply drifted from the persona: remind the model this turn."""
    profile: dict[str, str] = field(default_factory=dict)
    """The user's stored profile (persists across conversations)."""
    signals: Signals | None = None
    """This turn's signals (set by the instructions stage)."""
    persona_score: float | None = None
    """Share of the persona's checks the draft reply passed (set by the critique stage)."""
    knowledge: list[Passage] = field(default_factory=list)
    """Passages retrieved for this turn, numbered from 1 in the prompt (retrieve stage)."""
    tool_results: list[str] = field(default_factory=list)
    """`call → result` lines of this turn's tool calls (tools stage)."""
    client_tools: list[dict[str, Any]] = field(default_factory=list)
    """Functions the caller offers and runs itself ({"name", "description", "parameters"}):
    the generate stage may answer with calls to them instead of text."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Calls to client tools this turn answered with ({"name", "arguments"})."""
    json_schema: dict[str, Any] | None = None
    """The reply must be JSON matching this schema (the caller's `response_format`)."""
    tool_choice: Literal["auto", "required"] = "auto"
    """With `client_tools`: "required" skips the relevance gate and asks the model for at
    least one call (the caller's `tool_choice`)."""
    sampling: Sampling = field(default_factory=Sampling)
    """The caller's generation options for the reply (temperature, max_tokens, ...)."""
    route: str = "chat"
    """Which model answers this turn: "chat" (the cheap one) or "strong" (route stage)."""
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    """Tokens by the model role that spent them ("chat", "strong", "judge"): the cost."""

    def add_usage(self, usage: Usage, *, model: str = "chat") -> None:
        self.usage = self.usage + usage
        self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage


CallNext = Callable[[TurnState], Awaitable[TurnState]]


class Stage(Protocol):
    name: str

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState: ...


async def _end(state: TurnState) -> TurnState:
    return state


class Pipeline:
    def __init__(
        self, stages: Sequence[Stage], *, failure: FailurePolicy, fallback_reply: str
    ) -> None:
        self.stages = list(stages)
        self.failure = failure
        self.fallback_reply = fallback_reply
        app: CallNext = _end
        for stage in reversed(self.stages):
            app = self._guarded(stage, app)
        self._app = app

    async def run(self, state: TurnState) -> TurnState:
        state = await self._app(state)
        if state.reply is None and state.tool_calls:
            state.reply = ""  # the turn answered with calls to the caller's tools
        elif state.reply is None:
            # Every stage either failed open or returned without a reply: still answer, and
            # say so in the trace.
            record = state.trace.open("pipeline")
            record.verdict = "block"
            record.reason = "no stage produced a reply"
            self._fail_closed(state, record.reason)
        return state

    def _fail_closed(self, state: TurnState, reason: str) -> None:
        state.reply = self.fallback_reply
        state.blocked = True
        state.block_reason = reason

    def _guarded(self, stage: Stage, inner: CallNext) -> CallNext:
        async def call(state: TurnState) -> TurnState:
            record = state.trace.open(stage.name)
            inner_seconds = 0.0
            inner_called = False

            async def call_next(next_state: TurnState) -> TurnState:
                nonlocal inner_seconds, inner_called
                inner_called = True
                started = time.perf_counter()
                try:
                    return await inner(next_state)
                finally:
                    inner_seconds += time.perf_counter() - started

            started = time.perf_counter()
            try:
                return await stage(state, call_next)
            except Exception as exc:
                mode = self.failure.mode_for(stage.name)
                record.verdict = "error"
                record.error = f"{type(exc).__name__}: {exc}"
                record.detail["failure_policy"] = mode
                if mode == "open":
                    record.reason = "stage failed; skipped (failure policy: open)"
                    return state if inner_called else await call_next(state)
                record.reason = "stage failed; turn blocked (failure policy: closed)"
                self._fail_closed(state, f"stage {stage.name!r} failed: {record.error}")
                return state
            finally:
                record.ms = (time.perf_counter() - started - inner_seconds) * 1000

        return call
