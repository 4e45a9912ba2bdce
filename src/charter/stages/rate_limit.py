"""Rate limit stage: requests and tokens per user (or API key), before any other work."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState


class Limiter(Protocol):
    """`RateLimiter` (in memory) or `RedisRateLimiter` (shared by replicas)."""

    def admit(self, key: str) -> float: ...

    def record_tokens(self, key: str, tokens: int) -> None: ...


class RateLimitStage:
    """The rate limit stage: a user over the limit gets a wait notice instead of an answer.

    The key is `request.user` ("anonymous" without one); the turn's tokens are recorded after it.
    """

    name = "rate_limit"

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        key = state.request.user or "anonymous"
        record = state.trace[self.name]
        wait = await asyncio.to_thread(self.limiter.admit, key)
        record.detail["key"] = key
        if wait > 0:
            record.verdict = "block"
            record.reason = f"rate limit: retry in {wait:.1f} s"
            record.detail["retry_after_s"] = round(wait, 2)
            state.outcome.retry_after_s = round(wait, 2)
            state.outcome.block(
                f"You're sending messages faster than I can answer. Please wait {math.ceil(wait)} "
                "seconds and try again.",
                record.reason,
            )
            return state
        state = await call_next(state)
        await asyncio.to_thread(self.limiter.record_tokens, key, state.usage.total_tokens)
        return state
