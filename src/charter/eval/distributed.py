"""Fan an evaluation out over a Ray cluster: `charter eval --ray [ADDRESS]`.

Each Ray worker is an actor that builds the charter and its chat model once, then answers
cases one at a time (typically against a served model behind an OpenAI-compatible URL, so
that the cluster's workers share one inference server). The driver (the machine running
`charter eval`) keeps everything that makes a run trustworthy: it reads the completion cache
first and sends only the cases it lacks, writes each result to the cache as it arrives (an
interrupted run resumes where it stopped, as in one process), and returns results in case
order, off before on. A worker's failure on one case is recorded on that case, as
`Runner.one` does; a worker that dies takes its in-flight case with it and the run stops
with the error.

Ray is an extra: `pip install 'charter[ray]'`. Without an address, a local Ray instance is
started for the run (useful for testing; on one machine `--workers` is simpler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from charter.errors import CharterError, ModelError
from charter.eval.cases import Case
from charter.eval.runner import CONDITIONS, Condition, Result, Runner
from charter.eval.scoring import Outcome
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent
from charter.spec.models import CharterSpec


class Elsewhere(ChatModel):
    """The driver's stand-in for the charter's chat model when the workers call it.

    It has the model's name (the cache key) and is never called, so a local GGUF is not loaded
    once more in the driver for nothing.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def complete(self, request: ChatRequest) -> Completion:
        raise ModelError(f"{self.name} runs on the Ray workers, not in the driver")

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        raise ModelError(f"{self.name} runs on the Ray workers, not in the driver")


IN_FLIGHT_PER_WORKER = 2
"""Cases queued at each worker, so that a worker never waits on the driver between cases."""


class _Worker:
    """One Ray actor: a charter and its model, built once."""

    def __init__(self, spec: CharterSpec, refusal_judge: bool) -> None:
        from charter.models.factory import build_model

        model = build_model(spec.models.chat)
        self.runner = Runner(spec, model, cache=None, refusal_judge=refusal_judge)

    def one(self, case: Case, condition: Condition) -> Outcome:
        return self.runner.compute(case, condition)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise CharterError(
            "`--ray` needs Ray: pip install 'charter[ray]' (or pip install ray)"
        ) from exc
    return ray


def run_on_ray(
    runner: Runner,
    cases: list[Case],
    *,
    workers: int,
    address: str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Every case in both conditions, computed by `workers` Ray actors.

    Cached ones are not sent. Results come back in case order, off before on, as `Runner.run`
    returns them.
    """
    ray = _ray()
    jobs = [(case, condition) for case in cases for condition in CONDITIONS]
    done, todo = _cached(runner, jobs, on_result)
    if not todo:
        return [done[i] for i in range(len(jobs))]
    started_here = _connect(ray, address)
    try:
        # No CPU reserved per actor (a worker mostly waits on a served model), spread over
        # the cluster's nodes: `--workers` may exceed the cluster's CPU count.
        actor = ray.remote(_Worker).options(num_cpus=0, scheduling_strategy="SPREAD")
        pool = [
            actor.remote(runner.spec, runner.refusal_judge)
            for _ in range(max(1, min(workers, len(todo))))
        ]
        waiting = list(reversed(todo))
        in_flight: dict[Any, tuple[int, int]] = {}  # ref -> (job index, worker index)

        def send(worker: int) -> None:
            index = waiting.pop()
            case, condition = jobs[index]
            in_flight[pool[worker].one.remote(case, condition)] = (index, worker)

        for worker in range(len(pool)):
            for _ in range(IN_FLIGHT_PER_WORKER):
                if waiting:
                    send(worker)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            index, worker = in_flight.pop(ready[0])
            outcome: Outcome = ray.get(ready[0])
            case, condition = jobs[index]
            runner.keep(case, condition, outcome)
            done[index] = Result(case, condition, outcome, False)
            if on_result is not None:
                on_result(done[index])
            if waiting:
                send(worker)
    finally:
        if started_here:
            ray.shutdown()
    return [done[i] for i in range(len(jobs))]


def _cached(
    runner: Runner,
    jobs: list[tuple[Case, Condition]],
    on_result: Callable[[Result], None] | None,
) -> tuple[dict[int, Result], list[int]]:
    """The results of the jobs already in the cache, by job index, and the jobs left to compute.

    Each cached result is handed to `on_result`; the jobs left are given by their indexes.
    """
    done: dict[int, Result] = {}
    todo: list[int] = []
    for index, (case, condition) in enumerate(jobs):
        cached = runner.cached(case, condition)
        if cached is not None:
            done[index] = Result(case, condition, cached, True)
            if on_result is not None:
                on_result(done[index])
        else:
            todo.append(index)
    return done, todo


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address` (None: a local Ray instance) unless this process already has.

    Returns whether it joined here (and so must leave).
    """
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception as exc:  # ConnectionError and Ray's own errors alike
        where = address or "a local Ray instance"
        raise CharterError(f"cannot reach the Ray cluster at {where}: {exc}") from exc
    return True
