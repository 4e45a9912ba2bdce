"""Run suites through the raw model (off) and the full pipeline (on), same cases, one run.

- **off**: the chat model with the charter's compiled system prompt and the user's message,
  nothing else (no guards, critique, instructions or drift);
- **on**: `Charter.respond`, every stage the charter enables, except the rate limit (an
  evaluation sends hundreds of messages as one user; the limiter is tested on its own).

Completions are cached in SQLite (`cache.sqlite` in the output folder), keyed by condition,
case, the charter file's content and the model settings: an interrupted run resumes where it
stopped, and a re-run with a larger `--limit` only computes the new cases.

A team's own case (`own_cases.py`) goes the same two ways with its whole conversation. When
it offers `tools`, off shows the raw model the functions as the `tools` suite does and reads
the calls from its answer, and on offers them to the pipeline as the caller's own tools (the
reply may be calls instead of text). Its `judge` rubrics are graded right after the reply,
by the charter's judge model, and cached with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from charter.assistant import Charter, Reply
from charter.eval import bfcl
from charter.eval.assertions import judge
from charter.eval.cases import Case
from charter.eval.own_cases import OwnCase, is_own
from charter.eval.refusal import RefusalJudge
from charter.eval.scoring import REFUSAL_SUITES, Outcome, own_answers
from charter.models.base import ChatModel, ChatRequest, Message
from charter.persona.compile import compile_system_prompt
from charter.spec.models import CharterSpec

Condition = Literal["off", "on"]
CONDITIONS: tuple[Condition, ...] = ("off", "on")


def charter_fingerprint(spec: CharterSpec) -> str:
    """A hash that changes when anything set in the charter changes (cached completions go stale).

    Fields left at their defaults do not count, so a Charter release that adds a setting does
    not invalidate every cache; nor do the charter's `tests` files, which change what is asked,
    not how the assistant answers.
    """
    dumped = spec.model_dump_json(exclude_defaults=True, exclude={"tests"})
    return hashlib.sha256(dumped.encode()).hexdigest()[:16]


class Cache:
    """Completions by (condition, case id, charter fingerprint). Thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS completions (condition TEXT, case_id TEXT, "
            "charter TEXT, outcome TEXT, PRIMARY KEY (condition, case_id, charter))"
        )
        self._lock = threading.Lock()

    def get(self, condition: str, case_id: str, charter: str) -> Outcome | None:
        with self._lock:
            row = self._db.execute(
                "SELECT outcome FROM completions WHERE condition=? AND case_id=? AND charter=?",
                (condition, case_id, charter),
            ).fetchone()
        return Outcome(**json.loads(row[0])) if row else None

    def put(self, condition: str, case_id: str, charter: str, outcome: Outcome) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)",
                (condition, case_id, charter, json.dumps(asdict(outcome))),
            )
            self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class Result:
    """One case's outcome in one condition, and whether it came from the cache."""

    case: Case
    condition: Condition
    outcome: Outcome
    cached: bool


class Runner:
    """Runs cases off and on for one charter and model (its rate limit removed), with a cache."""

    def __init__(
        self,
        spec: CharterSpec,
        model: ChatModel,
        cache: Cache | None,
        *,
        refusal_judge: bool = False,
    ) -> None:
        self.spec = spec.model_copy(
            update={"guards": spec.guards.model_copy(update={"rate_limit": None})}
        )
        self.model = model
        self.cache = cache
        self.fingerprint = charter_fingerprint(spec) + ":" + model.name
        if refusal_judge:
            self.fingerprint += ":refusal-judge"
        self.compiled = compile_system_prompt(spec)
        self.charter = Charter(self.spec, model=model)
        self.refusal_judge = refusal_judge
        """Ask the judge model about replies in the refusal detector's uncertain band."""
        self.own_answers = own_answers(spec)

    def off(self, case: Case) -> Outcome:
        if case.suite == "tools":
            return self._tools(case, "off")
        if is_own(case):
            return self._judged(case.meta["own"], self._own_off(case.meta["own"]))
        return self._raw([Message(role="user", content=case.message)])

    def _raw(self, messages: list[Message], functions: tuple[dict[str, Any], ...] = ()) -> Outcome:
        """The raw model with the charter's compiled prompt.

        Offered functions are listed in the prompt and calls read from the answer, as in the
        `tools` suite.
        """
        chat = self.spec.models.chat
        system = self.compiled.text
        if functions:
            system += "\n\n" + bfcl.raw_system_prompt(functions)
        request = ChatRequest(
            messages=[Message(role="system", content=system), *messages],
            max_tokens=chat.max_tokens,
            temperature=chat.temperature,
            seed=chat.seed,
        )
        started = time.perf_counter()
        completion = self.model.complete(request)
        return Outcome(
            text=completion.text,
            ms=(time.perf_counter() - started) * 1000,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            calls=(bfcl.parse_calls(completion.text) or []) if functions else None,
        )

    def on(self, case: Case) -> Outcome:
        if case.suite == "tools":
            return self._tools(case, "on")
        if is_own(case):
            return self._judged(case.meta["own"], self._own_on(case))
        reply = asyncio.run(self.charter.arespond(case.message, user=f"eval:{case.id}"))
        return _from_reply(reply)

    def _tools(self, case: Case, condition: Condition) -> Outcome:
        """BFCL: the raw model prompted with the functions (off), or Charter's tool layer (on).

        On uses the charter's tool limits. Calls are recorded, never executed.
        """
        item = case.meta["bfcl"]
        started = time.perf_counter()
        if condition == "off":
            calls, text, usage = asyncio.run(bfcl.raw_calls(self.model, item))
        else:
            calls, text, usage = asyncio.run(
                bfcl.charter_calls(self.model, item, self.spec.tool_limits)
            )
        return Outcome(
            text=text,
            ms=(time.perf_counter() - started) * 1000,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            calls=calls,
        )

    def _own_off(self, own: OwnCase) -> Outcome:
        """The raw model with the case's turns (and its offered tools)."""
        return self._raw(own.messages(), tuple(own.functions()))

    def _own_on(self, case: Case) -> Outcome:
        own: OwnCase = case.meta["own"]
        functions = own.functions()
        reply = asyncio.run(
            self.charter.arespond(
                own.messages(), user=f"eval:{case.id}", client_tools=functions or None
            )
        )
        return _from_reply(reply, calls=list(reply.tool_calls) if functions else None)

    def _judged(self, own: OwnCase, outcome: Outcome) -> Outcome:
        """The outcome with the judge's verdict on each of the case's rubrics.

        The judge's time and tokens are the evaluation's, not the assistant's, so they are not
        added.
        """
        rubrics = own.rubrics()
        if not rubrics:
            return outcome
        model = self.charter.judge_model
        verdicts = [
            judge(model, rubric, own.messages(), outcome.text, outcome.calls) for rubric in rubrics
        ]
        return replace(outcome, judged=verdicts)

    def _refusal(self, case: Case, outcome: Outcome) -> Outcome:
        """The outcome with the refusal judge's verdict, for suites scored on refusals.

        The judge's time is the evaluation's, not the assistant's.
        """
        if case.suite not in REFUSAL_SUITES:
            return outcome
        judge_refusal = RefusalJudge(self.charter.judge_model if self.refusal_judge else None)
        verdict = judge_refusal(
            case.message, outcome.text, blocked=outcome.blocked, own_answers=self.own_answers
        )
        refusal = {"refused": verdict.refused, "why": verdict.reason, "by": verdict.by}
        return replace(outcome, refusal=refusal)

    def compute(self, case: Case, condition: Condition) -> Outcome:
        """One case in one condition, uncached; a failure is recorded in the outcome."""
        try:
            outcome = self.off(case) if condition == "off" else self.on(case)
            return self._refusal(case, outcome)
        except Exception as exc:  # recorded, scored as a failure, never skipped
            return Outcome(text="", error=f"{type(exc).__name__}: {exc}")

    def cached(self, case: Case, condition: Condition) -> Outcome | None:
        """The cached outcome of `case` in `condition`, if any."""
        if self.cache is None:
            return None
        return self.cache.get(condition, case.key, self.fingerprint)

    def keep(self, case: Case, condition: Condition, outcome: Outcome) -> None:
        """Cache `outcome` unless it is an error (an error is tried again on resume)."""
        if outcome.error is None and self.cache is not None:
            self.cache.put(condition, case.key, self.fingerprint, outcome)

    def one(self, case: Case, condition: Condition) -> Result:
        cached = self.cached(case, condition)
        if cached is not None and cached.refusal is None and case.suite in REFUSAL_SUITES:
            cached = self._refusal(case, cached)  # cached before refusals were judged
            self.keep(case, condition, cached)
        if cached is not None:
            return Result(case, condition, cached, True)
        outcome = self.compute(case, condition)
        self.keep(case, condition, outcome)
        return Result(case, condition, outcome, False)

    def run(
        self,
        cases: list[Case],
        *,
        workers: int = 1,
        on_result: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        """Every case in both conditions. Results come back in case order, off before on."""
        jobs = [(case, condition) for case in cases for condition in CONDITIONS]
        _ = self.charter.pipeline  # load the model and the guards once, before the clock
        results: list[Result] = []
        if workers <= 1:
            for case, condition in jobs:
                results.append(self.one(case, condition))
                if on_result is not None:
                    on_result(results[-1])
            return results
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(lambda job: self.one(*job), jobs):
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def _from_reply(reply: Reply, calls: list[dict[str, Any]] | None = None) -> Outcome:
    """What the pipeline did with a case."""
    return Outcome(
        text=reply.text,
        blocked=reply.blocked,
        ms=reply.ms,
        cost=reply.cost,
        prompt_tokens=reply.usage.prompt_tokens,
        completion_tokens=reply.usage.completion_tokens,
        calls=calls,
        revisions=reply.revisions,
    )


def pairs(results: list[Result]) -> Iterator[tuple[Case, Outcome, Outcome]]:
    """(case, off, on) for each case."""
    by_case: dict[str, dict[str, Outcome]] = {}
    order: dict[str, Case] = {}
    for r in results:
        by_case.setdefault(r.case.key, {})[r.condition] = r.outcome
        order.setdefault(r.case.key, r.case)
    for case_id, case in order.items():
        yield case, by_case[case_id]["off"], by_case[case_id]["on"]
