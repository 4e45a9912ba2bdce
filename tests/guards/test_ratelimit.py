from __future__ import annotations

from charter.guards.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_over_time() -> None:
    clock = Clock()
    bucket = TokenBucket(2, per_second=1, clock=clock)
    assert bucket.take("k") == 0
    assert bucket.take("k") == 0
    assert bucket.take("k") == 1.0
    clock.now = 1.0
    assert bucket.take("k") == 0


def test_token_limit_applies_after_spending() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=None, tokens_per_minute=600, clock=clock)
    assert limiter.admit("k") == 0
    limiter.record_tokens("k", 900)  # over budget: the balance goes negative
    wait = limiter.admit("k")
    assert wait > 0
    clock.now = wait
    assert limiter.admit("k") == 0
