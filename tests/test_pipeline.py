from __future__ import annotations

import asyncio

import pytest

from charter.models.base import Message
from charter.pipeline import CallNext, Pipeline, Stage, TurnState
from charter.spec import CharterSpec, FailurePolicy
from charter.turn import TurnRequest

SPEC = CharterSpec.model_validate({"id": "t", "persona": {"name": "P", "role": "helper"}})
FALLBACK = "Sorry, something went wrong."


class Recorder:
    def __init__(self, name: str, log: list[str], *, sleep: float = 0.0) -> None:
        self.name = name
        self.log = log
        self.sleep = sleep

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        self.log.append(f"{self.name}:in")
        await asyncio.sleep(self.sleep)
        state = await call_next(state)
        self.log.append(f"{self.name}:out")
        return state


class Answer:
    name = "answer"

    def __init__(self, text: str = "hi", *, sleep: float = 0.0) -> None:
        self.text = text
        self.sleep = sleep

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        await asyncio.sleep(self.sleep)
        state.outcome.reply = self.text
        return await call_next(state)


class Boom:
    def __init__(self, name: str = "boom", *, after: bool = False) -> None:
        self.name = name
        self.after = after

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        if self.after:
            state = await call_next(state)
        raise RuntimeError("kaput")


class Blocker:
    name = "blocker"

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        state.outcome.reply = "No."
        state.outcome.blocked = True
        state.trace[self.name].verdict = "block"
        return state


def run(stages: list[Stage], policy: FailurePolicy | None = None) -> TurnState:
    pipeline = Pipeline(stages, failure=policy or FailurePolicy(), fallback_reply=FALLBACK)
    request = TurnRequest(messages=(Message(role="user", content="hello"),))
    state = TurnState.start(SPEC, request)
    return asyncio.run(pipeline.run(state))


def test_stages_compose_as_an_onion() -> None:
    log: list[str] = []
    state = run([Recorder("a", log), Recorder("b", log), Answer()])
    assert log == ["a:in", "b:in", "b:out", "a:out"]
    assert state.outcome.reply == "hi"
    assert state.trace.stages == ["a", "b", "answer"]
    assert all(r.verdict == "pass" for r in state.trace.records)


def test_stage_time_excludes_inner_stages() -> None:
    state = run([Recorder("outer", [], sleep=0.0), Answer(sleep=0.05)])
    assert state.trace["answer"].ms >= 45
    assert state.trace["outer"].ms < 30


def test_short_circuit_skips_inner_stages() -> None:
    state = run([Blocker(), Answer()])
    assert state.outcome.reply == "No."
    assert state.trace.stages == ["blocker"]


def test_failing_stage_fails_closed_by_default() -> None:
    state = run([Boom(), Answer()])
    assert state.outcome.reply == FALLBACK
    assert state.outcome.blocked
    record = state.trace["boom"]
    assert record.verdict == "error"
    assert record.error == "RuntimeError: kaput"
    assert record.detail["failure_policy"] == "closed"
    assert "answer" not in state.trace


def test_failure_after_inner_stages_still_fails_closed() -> None:
    state = run([Boom(after=True), Answer("leaky")])
    assert state.outcome.reply == FALLBACK
    assert state.outcome.blocked
    assert "boom" in (state.outcome.block_reason or "")


def test_fail_open_skips_the_stage_and_records_it() -> None:
    policy = FailurePolicy(stages={"boom": "open"})
    state = run([Boom(), Answer()], policy)
    assert state.outcome.reply == "hi"
    assert not state.outcome.blocked
    assert state.trace["boom"].verdict == "error"
    assert "skipped" in (state.trace["boom"].reason or "")
    assert state.trace.stages == ["boom", "answer"]


def test_fail_open_after_inner_ran_does_not_run_them_twice() -> None:
    log: list[str] = []
    policy = FailurePolicy(default="open")
    state = run([Boom(after=True), Recorder("inner", log), Answer()], policy)
    assert log == ["inner:in", "inner:out"]
    assert state.outcome.reply == "hi"


def test_no_reply_at_all_is_blocked_not_empty() -> None:
    policy = FailurePolicy(default="open")
    state = run([Recorder("a", []), Boom("generate")], policy)
    assert state.outcome.reply == FALLBACK
    assert state.outcome.blocked
    assert state.trace.stages[-1] == "pipeline"
    assert state.trace["pipeline"].verdict == "block"


def test_trace_serialises() -> None:
    state = run([Answer()])
    [record] = state.trace.to_list()
    assert record["stage"] == "answer"
    assert set(record) >= {"verdict", "ms", "prompt_tokens", "completion_tokens", "detail"}


def test_unknown_stage_lookup_raises() -> None:
    state = run([Answer()])
    with pytest.raises(KeyError):
        state.trace["nope"]
