"""`Charter`: a charter file made into an assistant you can talk to.

    charter = Charter.from_file("charter.yaml")
    reply = charter.respond("Who are you?")
    print(reply.text, reply.trace.stages)

A turn goes: the caller's messages -> `TurnRequest` (charter/turn.py) -> the pipeline's
stages, declared in order in charter/compose.py -> `Reply` (charter/reply.py). This class
loads the charter's models and resources, builds the pipeline once, and runs turns.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from charter.compose import Insert, Parts, build_pipeline
from charter.errors import CharterError
from charter.guards.answered import AnsweredTurns
from charter.guards.ratelimit import RateLimiter
from charter.models.base import ChatModel, Message, Sampling
from charter.models.factory import build_model
from charter.models.routing import ModelSet
from charter.pipeline import Pipeline, TurnState
from charter.reply import Reply, turn_cost
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec, ModelSpec
from charter.turn import Carry, TurnRequest

if TYPE_CHECKING:
    from charter.knowledge.index import KnowledgeIndex
    from charter.stages.rate_limit import Limiter

__all__ = ["Charter", "MessagesLike", "Reply", "run_blocking", "to_messages", "turn_cost"]

MessagesLike = str | Sequence[Message | dict[str, str]]
T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` gives to completion from synchronous code.

    Inside a running event loop (Jupyter, an async framework's sync callback) `asyncio.run` cannot
    be used: the coroutine then runs on its own loop in a worker thread while this thread waits (so
    callbacks such as `on_delta` are called on that worker thread).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="charter-respond") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class Charter:
    """An assistant made from a charter spec: it loads the models and resources and runs turns.

    The pipeline is built once, on first use. `close` (or leaving a `with` block) closes the models
    and the knowledge index.
    """

    def __init__(
        self,
        spec: CharterSpec,
        *,
        model: ChatModel | None = None,
        strong_model: ChatModel | None = None,
        stages: Sequence[Insert] = (),
    ) -> None:
        """Make an assistant of `spec`, optionally with ready models and a team's own stages.

        `model` and `strong_model` replace the charter's `models.chat` and `models.strong` (already
        loaded models shared between charters, or fakes). `stages` are a team's own stages, each
        placed by the name of a built-in one (charter/compose.py).
        """
        self.spec = spec
        self._model = model
        self._model_lock = threading.Lock()
        self._judge: ChatModel | None = None
        self._strong: ChatModel | None = strong_model
        self._inserts = list(stages)
        self._pipeline: Pipeline | None = None
        self._rate_limiter: Limiter | None = None
        self._knowledge: KnowledgeIndex | None = None
        self._sharing = False
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
        """For servers: the models keep their connections open across turns until `aclose`.

        The connections belong to the server's event loop.
        """
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

    def knowledge_index(self) -> KnowledgeIndex:
        """The charter's knowledge index, brought up to date with `knowledge.paths`.

        Files whose content did not change are not read twice. Raises CharterError when a path does
        not exist or a file cannot be indexed.
        """
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
        """The charter's stages (charter/compose.py), built on first use."""
        if self._pipeline is None:
            parts = Parts(
                self.spec,
                models=self.models(),
                judge=lambda: self.judge_model,
                limiter=self._limiter,
                knowledge=self.knowledge_index,
                answered=self.answered,
            )
            # Verifying and loading the model (hashing, mmap: mostly outside the GIL) overlaps
            # with loading the guard models; measured in bench/core (time to first token).
            with ThreadPoolExecutor(max_workers=1) as pool:
                loading = pool.submit(lambda: self.model)
                pipeline = build_pipeline(parts, self._inserts)
                loading.result()
            self._pipeline = pipeline
        return self._pipeline

    async def arun(
        self, request: TurnRequest, *, on_delta: Callable[[str], None] | None = None
    ) -> Reply:
        """Run one turn.

        `on_delta` receives the reply as it is released (after the output guards pass it).
        """
        pipeline = self.pipeline  # builds (and loads the model) outside the turn's clock
        started = time.perf_counter()
        state = await pipeline.run(TurnState.start(self.spec, request, on_delta=on_delta))
        outcome = state.outcome
        if outcome.reply:
            self.answered.record(request.latest, outcome.reply, refused=outcome.blocked)
        return Reply.of(state, ms=(time.perf_counter() - started) * 1000)

    async def arespond(
        self,
        messages: MessagesLike,
        *,
        on_delta: Callable[[str], None] | None = None,
        user: str | None = None,
        carry: Carry | None = None,
        profile: dict[str, str] | None = None,
        client_tools: list[dict[str, Any]] | None = None,
        json_schema: dict[str, Any] | None = None,
        tool_choice: Literal["auto", "required"] = "auto",
        operator_instructions: str | None = None,
        sampling: Sampling | None = None,
    ) -> Reply:
        """Answer the last user message of `messages` (a string is one user message).

        `on_delta` receives the reply as it is released (after the output guards pass); `user` keys
        the rate limit; `carry` is what the conversation's previous turn handed over (`reply.carry`:
        the blocked streak, whether to restate the persona); `profile` is the user's stored profile,
        for dynamic instructions. `client_tools` are functions the caller runs itself: the reply may
        be `tool_calls` to them instead of text (`tool_choice` "required": at least one call is
        asked for, every tool offered). `json_schema` asks for a JSON reply matching it (critique is
        then skipped). `operator_instructions` (a gateway caller's system messages) are checked by
        the input guards and placed below the charter's own prompt, which takes precedence
        (stages/operator.py). `sampling` sets the reply's temperature, top_p, stop, seed and a lower
        max_tokens than the charter's.
        """
        request = TurnRequest(
            messages=tuple(to_messages(messages)),
            user=user,
            profile=dict(profile or {}),
            client_tools=tuple(client_tools or ()),
            json_schema=json_schema,
            tool_choice=tool_choice,
            sampling=sampling or Sampling(),
            operator_instructions=operator_instructions,
            carry=carry or Carry(),
        )
        return await self.arun(request, on_delta=on_delta)

    def respond(
        self,
        messages: MessagesLike,
        *,
        on_delta: Callable[[str], None] | None = None,
        user: str | None = None,
        carry: Carry | None = None,
        profile: dict[str, str] | None = None,
        operator_instructions: str | None = None,
        sampling: Sampling | None = None,
    ) -> Reply:
        """Blocking `arespond`, for scripts, the terminal and notebooks.

        Inside a running event loop (Jupyter) the turn runs on a worker thread with its own loop;
        from async code, `await arespond(...)` instead, which does not block the loop.
        """
        return run_blocking(
            lambda: self.arespond(
                messages,
                on_delta=on_delta,
                user=user,
                carry=carry,
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


def to_messages(messages: MessagesLike) -> list[Message]:
    """`messages` as a list of `Message`s (a string is one user message).

    Raises ValueError when the last message is not the user's, or when any is a system message
    (instructions come from the charter, or a caller's as `operator_instructions`).
    """
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
