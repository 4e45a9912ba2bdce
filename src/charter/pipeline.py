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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from charter.knowledge.documents import Passage
from charter.models.base import Message, Usage
from charter.persona.signals import Signals
from charter.spec.models import CharterSpec, FailurePolicy
from charter.turn import TurnOutcome, TurnRequest

Verdict = Literal["pass", "block", "rewrite", "escalate", "error"]


@dataclass
class StageRecord:
    """One stage's entry in the turn's trace: verdict, own time, tokens, error and details."""

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
        """The record as JSON-ready data.

        The detail dict is copied one level deep: a turn's trace is not changed after the turn, and
        `dataclasses.asdict` cost 10x more, per turn.
        """
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
    """The stage records of one turn, in the order the stages started.

    `trace["<stage>"]` is that stage's latest record (KeyError when it has none).
    """

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


class Stream:
    """Where the reply's text goes as it is released, when the caller streams.

    The stage that writes text (generate) `send`s it as it comes. A stage that must see text
    before the user does (the output guards) or that may still change it (critique) puts
    its own sink in front for the stages inside it, with `diverted`: a gate that releases
    checked sentences, or None to hold everything back; after `call_next` it sends what the
    user should see to the sink it was given.
    """

    def __init__(self, sink: Delta | None = None) -> None:
        self._sink = sink

    @property
    def sink(self) -> Delta | None:
        """Where text sent now goes.

        None: nowhere (the caller does not stream, or a stage holds it back).
        """
        return self._sink

    @property
    def live(self) -> bool:
        """Whether text sent now reaches anyone."""
        return self._sink is not None

    async def send(self, text: str) -> None:
        if self._sink is not None:
            await emit(self._sink, text)

    @contextmanager
    def diverted(self, sink: Delta | None) -> Iterator[Delta | None]:
        """Inside the block, text goes to `sink` (None: held back).

        Yields the sink it replaced (None: the caller does not stream).
        """
        outer, self._sink = self._sink, sink
        try:
            yield outer
        finally:
            self._sink = outer


@dataclass
class TurnState:
    """Everything one turn knows while it runs.

    The caller's request (read-only), what the stages build for the model (prompt, passages, tool
    results, route), and the outcome they decide. Stages talk to each other only through these
    fields; the trace is written, never read.
    """

    charter: CharterSpec
    request: TurnRequest
    messages: list[Message]
    """The conversation as the model will see it (the input guards leave out exchanges
    this deployment refused); starts as the request's messages."""
    outcome: TurnOutcome = field(default_factory=TurnOutcome)
    system_prompt: str = ""
    canary: str = ""
    signals: Signals | None = None
    """This turn's signals (set by the instructions stage)."""
    asks_identity: bool = False
    """The user asks who or what the assistant is (persona stage)."""
    new_tries: int = 0
    """New tries of the reply the hygiene stage asked for this turn: generate draws each one
    warmer and with another seed, so that it is not the same draw again."""
    knowledge: list[Passage] = field(default_factory=list)
    """Passages retrieved for this turn, numbered from 1 in the prompt (retrieve stage)."""
    tool_results: list[str] = field(default_factory=list)
    """`call → result` lines of this turn's tool calls (tools stage)."""
    route: str = "chat"
    """Which model answers this turn: "chat" (the cheap one) or "strong" (route stage)."""
    stream: Stream = field(default_factory=Stream)
    """Where reply text goes as it is released to the user (when the caller streams)."""
    usage: Usage = field(default_factory=Usage)
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    """Tokens by the model role that spent them ("chat", "strong", "judge"): the cost."""
    trace: Trace = field(default_factory=Trace)

    @classmethod
    def start(
        cls, charter: CharterSpec, request: TurnRequest, *, on_delta: Delta | None = None
    ) -> TurnState:
        return cls(
            charter=charter,
            request=request,
            messages=list(request.messages),
            stream=Stream(on_delta),
        )

    def add_usage(self, usage: Usage, *, model: str = "chat") -> None:
        self.usage = self.usage + usage
        self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage


CallNext = Callable[[TurnState], Awaitable[TurnState]]


class Stage(Protocol):
    """One step of the turn: a hook around the stages inside it (`call_next`).

    Work before `await call_next(state)` sees the request on the way in, work after it sees the
    reply on the way out; returning without calling it short-circuits the turn. `name` labels the
    stage's trace record and selects its failure policy.
    """

    name: str

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState: ...


@runtime_checkable
class Conditional(Protocol):
    """A stage that takes part only in some turns.

    E.g. only when the caller sent operator instructions: `applies(request)` False skips it without
    a trace record.
    """

    def applies(self, request: TurnRequest) -> bool: ...


async def _end(state: TurnState) -> TurnState:
    return state


class Pipeline:
    """The stages composed as an onion, outermost first, each under the charter's failure policy.

    A stage that raises is skipped (`open`) or blocks the turn with `fallback_reply` (`closed`), and
    its record says so. A turn that ends without a reply is blocked with `fallback_reply` too.
    """

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
        outcome = state.outcome
        if outcome.reply is None and outcome.tool_calls:
            outcome.reply = ""  # the turn answered with calls to the caller's tools
        elif outcome.reply is None:
            # Every stage either failed open or returned without a reply: still answer, and
            # say so in the trace.
            record = state.trace.open("pipeline")
            record.verdict = "block"
            record.reason = "no stage produced a reply"
            outcome.block(self.fallback_reply, record.reason)
        return state

    def _guarded(self, stage: Stage, inner: CallNext) -> CallNext:
        applies = stage.applies if isinstance(stage, Conditional) else None

        async def call(state: TurnState) -> TurnState:
            if applies is not None and not applies(state.request):
                return await inner(state)
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
                state.outcome.block(
                    self.fallback_reply, f"stage {stage.name!r} failed: {record.error}"
                )
                return state
            finally:
                record.ms = (time.perf_counter() - started - inner_seconds) * 1000

        return call
