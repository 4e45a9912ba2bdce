"""Rate limits per user or API key: requests and tokens, each a token bucket.

`RateLimiter` keeps the buckets in this process's memory. `RedisRateLimiter` keeps them in
Redis, updated by one Lua script per call (atomic, on Redis's own clock), so that several
gateway replicas share one limit. Both answer `admit(key)` (seconds to wait, 0 to go) and
`record_tokens(key, n)`. A Redis that cannot be reached raises `RateLimitUnavailable`, which
the pipeline's failure policy handles (closed by default: no turn runs unlimited by accident).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from charter.extras import requires_extra


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
        """Spend `amount` after the fact; the balance may go negative.

        Tokens are known only once the reply is generated; a negative balance delays the next
        request.
        """
        with self._lock:
            bucket = self._bucket(key, self.clock())
            bucket.tokens -= amount


class RateLimiter:
    """Per-key request and token limits a minute, in this process's memory; None or 0: no limit."""

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


class RateLimitUnavailable(Exception):
    """The shared rate-limit store could not be asked."""


# KEYS[1]: the bucket. ARGV: capacity, refill per second, amount, mode (take|charge|peek).
# Returns the seconds to wait as a string (0 when allowed), so no precision is lost.
_BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local mode = ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(stored[1])
local updated = tonumber(stored[2])
if tokens == nil then
  tokens = capacity
  updated = now
end
tokens = math.min(capacity, tokens + (now - updated) * rate)
local wait = 0
if mode == 'take' then
  if tokens >= amount then tokens = tokens - amount else wait = (amount - tokens) / rate end
elseif mode == 'charge' then
  tokens = tokens - amount
elseif tokens <= 0 then
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same limits as `RateLimiter`, with the buckets in Redis (shared by replicas)."""

    def __init__(
        self,
        url: str,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        namespace: str = "charter",
    ) -> None:
        with requires_extra("a rate limit shared in Redis (redis_url)", "redis"):
            import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)
        self.namespace = namespace
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute

    def _call(self, kind: str, key: str, per_minute: int, amount: float, mode: str) -> float:
        try:
            result = self._script(
                keys=[f"{self.namespace}:rl:{kind}:{key}"],
                args=[per_minute, per_minute / 60, amount, mode],
            )
        except self._errors as exc:
            raise RateLimitUnavailable(f"rate-limit store unreachable: {exc}") from exc
        return float(result.decode() if isinstance(result, bytes) else result)

    def admit(self, key: str) -> float:
        if self.tokens_per_minute:
            wait = self._call("tokens", key, self.tokens_per_minute, 0, "peek")
            if wait > 0:
                return wait
        if self.requests_per_minute:
            return self._call("requests", key, self.requests_per_minute, 1, "take")
        return 0.0

    def record_tokens(self, key: str, tokens: int) -> None:
        if self.tokens_per_minute:
            self._call("tokens", key, self.tokens_per_minute, tokens, "charge")

    def close(self) -> None:
        self._redis.close()
