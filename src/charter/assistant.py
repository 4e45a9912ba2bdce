"""`Charter`: a charter file made into an assistant you can talk to.

    charter = Charter.from_file("charter.yaml")
    reply = charter.respond("Who are you?")
    print(reply.text, reply.trace.stages)

A turn goes: the caller's messages -> `TurnState` -> the pipeline's stages (see
`pipeline.py`; today persona, then generate) -> `Reply`. Follow one turn by reading
`arespond` below and then each stage in `stages/`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from charter.errors import CharterError
from charter.guards.allowlist import AllowList
from charter.guards.answered import AnsweredTurns
from charter.guards.ratelimit import RateLimiter
from charter.models.base import ChatModel, Message, Sampling, Usage
from charter.models.factory import build_model
from charter.models.routing import STRONG, ModelSet, tools_role
from charter.persona.checks import persona_checks
from charter.persona.signals import Signals
from charter.pipeline import Pipeline, Stage, Trace, TurnState
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec, ModelSpec
from charter.stages import (
    CritiqueStage,
    DriftStage,
    EscalationStage,
    GenerateStage,
    InputGuardStage,
    InstructionsStage,
    OutputGuardStage,
    PersonaStage,
    RateLimitStage,
    RetrieveStage,
    RouteStage,
    ToolsStage,
)
from charter.stages.operator import OperatorStage
from charter.stages.rate_limit import Limiter

if TYPE_CHECKING:
    from charter.knowledge.index import KnowledgeIndex

MessagesLike = str | Sequence[Message | dict[str, str]]
T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` gives to completion from synchronous code. Inside a
    running event loop (Jupyter, an async framework's sync callback) `asyncio.run` cannot
    be used: the coroutine then runs on its own loop in a worker thread while this thread
    waits (so callbacks such as `on_delta` are called on that worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="charter-respond") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass(frozen=True)
class Reply:
    text: str
    blocked: bool
    block_reason: str | None
    trace: Trace
    usage: Usage
    ms: float
    escalations: list[dict[str, Any]] = field(default_factory=list)
    """Hand-offs to a human this turn raised: id (the user's reference), trigger, reason,
    transcript. A `Conversation` saves them; a stateless caller should too."""
    signals: Signals | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    """The knowledge passages the reply cites: n (as in "[n]"), where, text."""
    cost: float | None = None
    """What the turn cost at the charter's prices (each model's own); None without prices."""
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    """Tokens by model role: "chat", "strong", "judge"."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Calls to the caller's own tools ({"name", "arguments"}), when the turn answered with
    them instead of text."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.text,
            "blocked": self.blocked,
            "block_reason": self.block_reason,
            "escalations": [
                {"id": e["id"], "trigger": e["trigger"], "reason": e["reason"]}
                for e in self.escalations
            ],
            "citations": [{"n": c["n"], "where": c["where"]} for c in self.citations],
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "cost": self.cost,
            "ms": round(self.ms, 3),
            "trace": self.trace.to_list(),
        }


def turn_cost(spec: CharterSpec, usage: dict[str, Usage]) -> float | None:
    """Each model role's tokens at that model's price; None when a model that spent tokens
    has no price (a partial sum would understate the cost)."""
    models = spec.models
    prices = {
        "chat": models.chat.price,
        "strong": models.strong.price if models.strong is not None else None,
        "judge": (models.judge or models.chat).price,
    }
    total = 0.0
    for role, spent in usage.items():
        price = prices.get(role)
        if spent.total_tokens == 0:
            continue
        if price is None:
            return None
        total += price.cost(spent.prompt_tokens, spent.completion_tokens)
    return round(total, 10)


class Charter:
    def __init__(
        self,
        spec: CharterSpec,
        *,
        model: ChatModel | None = None,
        strong_model: ChatModel | None = None,
    ) -> None:
        """`model` and `strong_model` replace the charter's `models.chat` and
        `models.strong` (already loaded models shared between charters, or fakes)."""
        self.spec = spec
        self._model = model
        self._model_lock = threading.Lock()
        self._judge: ChatModel | None = None
        self._strong: ChatModel | None = strong_model
        self._pipeline: Pipeline | None = None
        self._rate_limiter: Limiter | None = None
        self._knowledge: KnowledgeIndex | None = None
        self._sharing = False
        self._operator_allowed: OrderedDict[str, None] = OrderedDict()
        self.answered = AnsweredTurns(spec.id)
        """Exchanges this Charter answered or refused: a history sent back is not judged
        again (guards/answered.py)."""

    @classmethod
    def from_file(cls, path: str | Path, *, model: ChatModel | None = None) -> Charter:
        return cls(load_charter(path), model=model)

    @property
    def model(self) -> ChatModel:
        """The chat model, built (and for local models, verified and loaded) on first use."""
        with self._model_lock:  # the pipeline loads it on a worker thread
            if self._model is None:
                self._model = self._built(self.spec.models.chat)
            return self._model

    @property
    def strong_model(self) -> ChatModel:
        """`models.strong`, built on first use (the router may never pick it)."""
        if self.spec.models.strong is None:
            raise CharterError("this charter names no models.strong")
        with self._model_lock:
            if self._strong is None:
                self._strong = self._built(self.spec.models.strong)
            return self._strong

    def _built(self, spec: ModelSpec) -> ChatModel:
        model = build_model(spec)
        if self._sharing:
            model.share_connections()
        return model

    def _models_built(self) -> list[ChatModel]:
        built = [m for m in (self._model, self._strong, self._judge) if m is not None]
        return list({id(m): m for m in built}.values())

    def share_connections(self) -> None:
        """For servers: the models keep their connections open across turns (on the
        server's event loop) until `aclose`."""
        self._sharing = True
        for model in self._models_built():
            model.share_connections()

    async def aclose(self) -> None:
        """Close the connections `share_connections` kept open (on the loop that used them)."""
        for model in self._models_built():
            await model.aclose()

    def models(self) -> ModelSet:
        """The cheap and (when named) strong model, as the routed stages use them."""
        spec = self.spec.models
        return ModelSet(
            chat=lambda: self.model,
            chat_spec=spec.chat,
            strong=(lambda: self.strong_model) if spec.strong is not None else None,
            strong_spec=spec.strong,
            fallback=spec.routing.fallback,
        )

    @property
    def judge_model(self) -> ChatModel:
        """The judge: `models.judge` if the charter names one, else the chat model."""
        if self.spec.models.judge is None:
            return self.model
        if self._judge is None:
            self._judge = self._built(self.spec.models.judge)
        return self._judge

    def stages(self) -> list[Stage]:
        """The turn, outermost first (see each module in `stages/`). Guard stages appear when
        the charter enables guards (on by default); critique and drift when enabled (on)."""
        return [*self._outer_stages(), *self._model_stages()]

    def _outer_stages(self) -> list[Stage]:
        """Stages that do not need the chat model (built while it loads)."""
        guards = self.spec.guards
        stages: list[Stage] = []
        if guards.rate_limit is not None:
            stages.append(RateLimitStage(self._limiter()))
        stages.append(PersonaStage(self.spec))
        if self.spec.instructions:
            stages.append(InstructionsStage(list(self.spec.instructions)))
        if self.spec.persona.escalation is not None:
            stages.append(EscalationStage())
        if self.spec.drift.enabled and self.spec.critique.enabled:
            stages.append(DriftStage(self.spec.drift.threshold))
        timeout_s = guards.timeout_ms / 1000
        if guards.input:
            from charter.guards.registry import build_input_guards

            built = build_input_guards(self.spec, judge_model=lambda: self.judge_model)
            stages.append(
                InputGuardStage(
                    built,
                    timeout_s=timeout_s,
                    answered=self.answered,
                    allow=AllowList(list(guards.allow)),
                )
            )
        if guards.output:
            from charter.guards.registry import build_output_guards

            stages.append(OutputGuardStage(build_output_guards(self.spec), timeout_s=timeout_s))
        return stages

    def _model_stages(self) -> list[Stage]:
        """The innermost stages: retrieval (when the charter has knowledge), critique, then
        generate."""
        stages: list[Stage] = []
        knowledge = self.spec.knowledge
        if knowledge is not None and knowledge.paths:
            stages.append(
                RetrieveStage(
                    self.knowledge_index(), top_k=knowledge.top_k, min_score=knowledge.min_score
                )
            )
        if self.spec.tools:
            stages.append(self._tools_stage())
        models = self.models()
        if self.spec.models.strong is not None:
            stages.append(RouteStage(self.spec.models.routing))
        critique = self.spec.critique
        if critique.enabled:
            stages.append(
                CritiqueStage(
                    models,
                    persona_checks(self.spec),
                    rounds=critique.rounds,
                    user_requests=critique.user_requests,
                    judge_principles=[p for p in self.spec.constitution if p.check is None],
                    judge_model=(lambda: self.judge_model) if critique.judge else None,
                )
            )
        stages.append(GenerateStage(models))
        return stages

    def _tools_stage(self) -> ToolsStage:
        from charter.tools.registry import load_tools

        result_guard = None
        if "injection" in self.spec.guards.input:
            # only then: the guard registry needs the guards extra, and says so without it
            from charter.guards.registry import build_input_guards

            guards = build_input_guards(self.spec.model_copy(), judge_model=None)
            result_guard = next(g for g in guards if g.name == "injection")
        models = self.spec.models
        role = tools_role(models)
        if role == STRONG and models.strong is not None:
            model, spec = self.strong_model, models.strong
        else:
            model, spec = self.model, models.chat
        return ToolsStage(
            model,
            spec,
            load_tools(list(self.spec.tools)),
            self.spec.tool_limits,
            result_guard=result_guard,
            role=role,
        )

    def knowledge_index(self) -> KnowledgeIndex:
        """The charter's knowledge index, brought up to date with `knowledge.paths` (files
        whose content did not change are not read twice)."""
        if self._knowledge is None:
            from charter.knowledge.index import KnowledgeIndex, index_path

            index = KnowledgeIndex(index_path(self.spec.id))
            paths = [Path(p) for p in (self.spec.knowledge.paths if self.spec.knowledge else [])]
            missing = [str(p) for p in paths if not p.exists()]
            if missing:
                index.close()
                raise CharterError(f"knowledge.paths: not found: {', '.join(missing)}")
            report = index.add(paths)
            if report.failed:
                index.close()
                raise CharterError(
                    "knowledge: " + "; ".join(f"{path}: {why}" for path, why in report.failed)
                )
            self._knowledge = index
        return self._knowledge

    def _limiter(self) -> Limiter:
        if self._rate_limiter is None:
            limit = self.spec.guards.rate_limit
            if limit is not None and limit.redis_url is not None:
                from charter.guards.ratelimit import RedisRateLimiter

                self._rate_limiter = RedisRateLimiter(
                    limit.redis_url,
                    requests_per_minute=limit.requests_per_minute,
                    tokens_per_minute=limit.tokens_per_minute,
                    namespace=f"charter:{self.spec.id}",
                )
            else:
                self._rate_limiter = RateLimiter(
                    requests_per_minute=limit.requests_per_minute if limit else None,
                    tokens_per_minute=limit.tokens_per_minute if limit else None,
                )
        return self._rate_limiter

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            # Verifying and loading the model (hashing, mmap: mostly outside the GIL) overlaps
            # with loading the guard models; measured in bench/core (time to first token).
            with ThreadPoolExecutor(max_workers=1) as pool:
                loading = pool.submit(lambda: self.model)
                outer = self._outer_stages()
                loading.result()
            self._pipeline = Pipeline(
                [*outer, *self._model_stages()],
                failure=self.spec.on_failure,
                fallback_reply=self.spec.persona.fallback_reply(),
            )
        return self._pipeline

    def _pipeline_with(self, operator_instructions: str) -> Pipeline:
        """The pipeline with an `operator` stage for this turn's operator instructions:
        after the stages that write the charter's system prompt (persona, its instructions)
        and those that act on a blocked turn (escalate, drift), just before the input
        guards, so a refused instruction counts as a blocked turn like a refused message.
        The other stages are the charter's own (shared, not rebuilt)."""
        base = self.pipeline
        stages = list(base.stages)
        outer = ("persona", "instructions", "escalate", "drift")
        frame = [i for i, s in enumerate(stages) if s.name in outer]
        guarding = next((s for s in stages if isinstance(s, InputGuardStage)), None)
        operator = OperatorStage(
            operator_instructions,
            list(guarding.guards) if guarding is not None else [],
            timeout_s=self.spec.guards.timeout_ms / 1000,
            allow=guarding.allow if guarding is not None else None,
            allowed=self._operator_allowed,
        )
        stages.insert(frame[-1] + 1 if frame else 0, operator)
        return Pipeline(stages, failure=base.failure, fallback_reply=base.fallback_reply)

    async def arespond(
        self,
        messages: MessagesLike,
        *,
        on_delta: Callable[[str], None] | None = None,
        user: str | None = None,
        prior_blocked: int = 0,
        reanchor: bool = False,
        profile: dict[str, str] | None = None,
        client_tools: list[dict[str, Any]] | None = None,
        json_schema: dict[str, Any] | None = None,
        tool_choice: Literal["auto", "required"] = "auto",
        operator_instructions: str | None = None,
        sampling: Sampling | None = None,
    ) -> Reply:
        """Answer the last user message of `messages` (a string is one user message).
        `on_delta` receives the reply as it is released (after the output guards pass);
        `user` keys the rate limit; `prior_blocked` is how many of the conversation's latest
        turns were blocked in a row (repeated failures escalate); `reanchor` restates the
        persona next to the latest message (the last reply drifted); `profile` is the user's
        stored profile, for dynamic instructions. `client_tools` are functions the caller
        runs itself: the reply may be `tool_calls` to them instead of text (`tool_choice`
        "required": at least one call is asked for, every tool offered). `json_schema`
        asks for a JSON reply matching it (critique is then skipped).
        `operator_instructions` (a gateway caller's system messages) are checked by the
        input guards and placed below the charter's own prompt, which takes precedence
        (stages/operator.py). `sampling` sets the reply's temperature, top_p, stop, seed and
        a lower max_tokens than the charter's."""
        pipeline = self.pipeline  # builds (and loads the model) outside the turn's clock
        if operator_instructions is not None and operator_instructions.strip():
            pipeline = self._pipeline_with(operator_instructions)
        started = time.perf_counter()
        state = TurnState(
            charter=self.spec,
            messages=to_messages(messages),
            on_delta=on_delta,
            user=user,
            prior_blocked=prior_blocked,
            reanchor=reanchor,
            profile=dict(profile or {}),
            client_tools=list(client_tools or []),
            json_schema=json_schema,
            tool_choice=tool_choice,
            sampling=sampling or Sampling(),
        )
        state = await pipeline.run(state)
        if state.reply:
            self.answered.record(state.messages[-1].content, state.reply, refused=state.blocked)
        return Reply(
            text=state.reply or "",
            blocked=state.blocked,
            block_reason=state.block_reason,
            trace=state.trace,
            usage=state.usage,
            ms=(time.perf_counter() - started) * 1000,
            escalations=state.escalations,
            signals=state.signals,
            citations=_citations(state),
            cost=turn_cost(self.spec, state.usage_by_model),
            tool_calls=list(state.tool_calls),
            usage_by_model=dict(state.usage_by_model),
        )

    def respond(
        self,
        messages: MessagesLike,
        *,
        on_delta: Callable[[str], None] | None = None,
        user: str | None = None,
        profile: dict[str, str] | None = None,
        operator_instructions: str | None = None,
        sampling: Sampling | None = None,
    ) -> Reply:
        """Blocking `arespond`, for scripts, the terminal and notebooks. Inside a running
        event loop (Jupyter) the turn runs on a worker thread with its own loop; from async
        code, `await arespond(...)` instead, which does not block the loop."""
        return run_blocking(
            lambda: self.arespond(
                messages,
                on_delta=on_delta,
                user=user,
                profile=profile,
                operator_instructions=operator_instructions,
                sampling=sampling,
            )
        )

    def close(self) -> None:
        for model in self._models_built():
            model.close()
        if self._knowledge is not None:
            self._knowledge.close()

    def __enter__(self) -> Charter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _citations(state: TurnState) -> list[dict[str, Any]]:
    if "retrieve" not in state.trace or state.blocked:
        return []
    cited = state.trace["retrieve"].detail.get("cited", [])
    return [
        {"n": n, "where": state.knowledge[n - 1].where, "text": state.knowledge[n - 1].text}
        for n in cited
        if 0 < n <= len(state.knowledge)
    ]


def to_messages(messages: MessagesLike) -> list[Message]:
    if isinstance(messages, str):
        items: list[Message] = [Message(role="user", content=messages)]
    else:
        items = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
    if not items or items[-1].role != "user":
        raise ValueError("the last message must be from the user")
    if any(m.role == "system" for m in items):
        raise ValueError(
            "system messages come from the charter; put instructions in the charter file, "
            "or pass a caller's as `operator_instructions` (placed below the charter's)"
        )
    return items
