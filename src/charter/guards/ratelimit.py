"""Rate limits per user or API key: requests and tokens, each a token bucket.

In memory (one process). A shared store (Redis) arrives with the gateway, behind the same
`RateLimiter` interface.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """`capacity` tokens, refilled at `per_second`; one bucket per key."""

    def __init__(
        self, capacity: float, per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(
                self.capacity, bucket.tokens + (now - bucket.updated) * self.per_second
            )
            bucket.updated = now
        return bucket

    def take(self, key: str, amount: float = 1.0) -> float:
        """Take `amount`; return 0 if allowed, else the seconds to wait before it would be."""
        with self._lock:
            now = self.clock()
            bucket = self._bucket(key, now)
            if bucket.tokens >= amount:
                bucket.tokens -= amount
                return 0.0
            return (amount - bucket.tokens) / self.per_second

    def balance(self, key: str) -> float:
        with self._lock:
            return self._bucket(key, self.clock()).tokens

    def charge(self, key: str, amount: float) -> None:
        """Spend `amount` after the fact (tokens are known only once the reply is generated);
        the balance may go negative, which delays the next request."""
        with self._lock:
            bucket = self._bucket(key, self.clock())
            bucket.tokens -= amount


class RateLimiter:
    def __init__(
        self,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = (
            TokenBucket(requests_per_minute, requests_per_minute / 60, clock)
            if requests_per_minute
            else None
        )
        self.tokens = (
            TokenBucket(tokens_per_minute, tokens_per_minute / 60, clock)
            if tokens_per_minute
            else None
        )

    def admit(self, key: str) -> float:
        """0 if a new request from `key` may proceed, else seconds to wait."""
        if self.tokens is not None:
            balance = self.tokens.balance(key)
            if balance <= 0:
                return (1.0 - balance) / self.tokens.per_second
        if self.requests is not None:
            return self.requests.take(key)
        return 0.0

    def record_tokens(self, key: str, tokens: int) -> None:
        if self.tokens is not None:
            self.tokens.charge(key, tokens)
