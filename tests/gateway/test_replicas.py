"""Shared state across replicas: one rate limit in a real Redis, one audit log, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from charter import Charter, FakeModel
from charter.guards.ratelimit import RateLimitUnavailable, RedisRateLimiter
from charter.spec import CharterSpec
from charter.store.postgres import open_records
from charter.store.sqlite import Store
from tests.conftest import free_port


def test_two_limiters_on_one_redis_share_the_limit(redis_url: str) -> None:
    key = uuid.uuid4().hex
    a = RedisRateLimiter(redis_url, requests_per_minute=3, tokens_per_minute=None)
    b = RedisRateLimiter(redis_url, requests_per_minute=3, tokens_per_minute=None)
    waits = [a.admit(key), b.admit(key), a.admit(key), b.admit(key)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 20.0  # 3 per minute: the next token comes within 20 s
    assert b.admit("someone-else") == 0.0


def test_a_token_budget_is_charged_and_peeked_in_redis(redis_url: str) -> None:
    key = uuid.uuid4().hex
    limiter = RedisRateLimiter(redis_url, requests_per_minute=None, tokens_per_minute=600)
    assert limiter.admit(key) == 0.0
    limiter.record_tokens(key, 700)  # over budget after the fact
    assert limiter.admit(key) > 0


def test_an_unreachable_redis_fails_the_turn_closed() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    spec = CharterSpec.model_validate(
        {
            "id": "r",
            "persona": {"name": "P", "role": "assistant"},
            "guards": {"input": [], "output": [], "rate_limit": {"redis_url": url}},
            "critique": {"enabled": False},
        }
    )
    reply = Charter(spec, model=FakeModel(default="hi")).respond("hello", user="u")
    assert reply.blocked
    assert "rate-limit store unreachable" in str(reply.trace["rate_limit"].error)
    with pytest.raises(RateLimitUnavailable):
        RedisRateLimiter(url, requests_per_minute=1, tokens_per_minute=None).admit("k")


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[tuple[list[str], str]]:
    """Two `charter serve` processes: the same charter, one Redis, one audit database
    (a SQLite file both open, or a PostgreSQL database)."""
    charter = {
        "id": "shared",
        "persona": {"name": "Penny", "role": "support assistant"},
        "guards": {
            "input": [],
            "output": [],
            "rate_limit": {"requests_per_minute": 4, "redis_url": redis_url},
        },
        "critique": {"enabled": False},
        "models": {"chat": {"backend": "fake", "replies": ["Hello."]}},
    }
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(charter))
    if request.param == "postgres":
        from tests.gateway.test_postgres import fresh

        db = fresh(request.getfixturevalue("postgres_url"))
    else:
        db = str(tmp_path / "audit.db")
        Store(db).close()
    env = {**os.environ, "CHARTER_HOME": str(tmp_path / "home")}
    ports = [free_port(), free_port()]
    logs = [(tmp_path / f"serve-{port}.log").open("wb") for port in ports]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "charter",
                "serve",
                str(path),
                "--port",
                str(port),
                "--db",
                db,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, server in zip(urls, servers, strict=True):
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise RuntimeError(
                        (tmp_path / f"serve-{url.rsplit(':', 1)[1]}.log").read_text()
                    )
                time.sleep(0.1)
        yield urls, db
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)
        for log in logs:
            log.close()


def test_two_gateway_processes_enforce_one_limit_and_lose_no_audit_record(
    replicas: tuple[list[str], str],
) -> None:
    urls, db = replicas
    user = uuid.uuid4().hex  # the limit is per user, in a Redis shared by the whole session
    body = {"model": "shared", "messages": [{"role": "user", "content": "hi"}], "user": user}
    statuses = [
        httpx.post(f"{urls[i % 2]}/v1/chat/completions", json=body, timeout=30).status_code
        for i in range(8)
    ]
    assert statuses.count(200) == 4  # 4 per minute, across both replicas
    assert statuses[4:] == [429] * 4
    limited = httpx.post(f"{urls[0]}/v1/chat/completions", json=body, timeout=30)
    assert int(limited.headers["Retry-After"]) >= 1
    store = open_records(db)
    try:
        assert store.audit_count("local") == 9  # every turn, from both processes
    finally:
        store.close()
