"""The HTTP backend honours `Retry-After` on 429 and 503, against a real server on loopback
that answers "come back in N seconds" and then answers for real."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest

from charter.errors import ModelError
from charter.models import ChatRequest, Completion, Message
from charter.models.openai_http import OpenAIModel, retry_after_s
from tests.conftest import FakeOpenAIServer

REQ = ChatRequest(messages=[Message(role="user", content="hello")], max_tokens=20)


Upstream = FakeOpenAIServer


@pytest.fixture
def upstream(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    return openai_server


def model(upstream: Upstream, **kwargs: Any) -> OpenAIModel:
    options: dict[str, Any] = {"base_url": upstream.url, "model": "m1", "max_retries": 2}
    return OpenAIModel(**(options | kwargs))


def call(m: OpenAIModel, how: str) -> str:
    """One turn through one of the four paths: whole or streamed, httpx or aiohttp."""
    if how == "complete-sync":
        return m.complete(REQ).text
    if how == "complete-async":
        return asyncio.run(m.acomplete(REQ)).text
    if how == "stream-sync":
        final = list(m.stream(REQ))[-1]
    else:

        async def go() -> object:
            return [e async for e in m.astream(REQ)][-1]

        final = asyncio.run(go())
    assert isinstance(final, Completion)
    return final.text


PATHS = pytest.mark.parametrize(
    "how", ["complete-sync", "complete-async", "stream-sync", "stream-async"]
)


@PATHS
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_waited_then_retried(
    upstream: Upstream, how: str, status: int
) -> None:
    upstream.busy(status, Retry_After="1")
    if how.startswith("stream"):
        upstream.stream(["back ", "again"])
    else:
        upstream.reply("back again")
    with model(upstream) as m:
        assert call(m, how) == "back again"
    first, second = upstream.arrivals  # one retry, no more
    # The fixed backoff would have retried after 0.25 s; the server asked for 1 s.
    assert second - first >= 0.95


def test_retry_after_as_an_http_date(upstream: Upstream) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s away
    upstream.busy(Retry_After=when)
    upstream.reply("dated")
    with model(upstream) as m:
        assert m.complete(REQ).text == "dated"
    first, second = upstream.arrivals
    assert second - first >= 0.9


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_retry_after_ms_comes_first(upstream: Upstream, mode: str) -> None:
    upstream.busy(retry_after_ms="600", Retry_After="60")
    upstream.reply("ms")
    with model(upstream) as m:
        assert call(m, f"complete-{mode}") == "ms"
    first, second = upstream.arrivals
    assert 0.55 <= second - first < 30


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_wait_beyond_the_maximum_fails_at_once(upstream: Upstream, mode: str) -> None:
    upstream.busy(Retry_After="60")
    started = time.monotonic()
    with (
        model(upstream, max_retry_wait_s=5) as m,
        pytest.raises(ModelError, match=r"HTTP 429.*retry after 60.0 s.*\(max_retry_wait_s=5\)"),
    ):
        call(m, f"complete-{mode}")
    assert len(upstream.arrivals) == 1
    assert time.monotonic() - started < 5


def test_a_wait_beyond_the_timeout_fails_at_once(upstream: Upstream) -> None:
    upstream.busy(503, Retry_After="3")
    with (
        model(upstream, timeout_s=2) as m,
        pytest.raises(ModelError, match=r"HTTP 503.*retry after 3.0 s.*left of timeout_s=2"),
    ):
        m.complete(REQ)
    assert len(upstream.arrivals) == 1


def test_waits_still_count_as_retries(upstream: Upstream) -> None:
    for _ in range(3):
        upstream.busy(Retry_After="0")
    with model(upstream) as m, pytest.raises(ModelError, match="after 3 attempts"):
        m.complete(REQ)
    assert len(upstream.arrivals) == 3


def test_retry_after_on_other_statuses_is_not_honoured(upstream: Upstream) -> None:
    """Only 429 and 503 say when to come back; a 500's header is ignored (the backoff)."""
    upstream.busy(500, Retry_After="60")
    upstream.reply("ok")
    with model(upstream) as m:
        assert m.complete(REQ).text == "ok"
    first, second = upstream.arrivals
    assert second - first < 5


def test_without_retry_after_the_backoff_applies(upstream: Upstream) -> None:
    upstream.busy()
    upstream.reply("ok")
    with model(upstream) as m:
        assert m.complete(REQ).text == "ok"
    first, second = upstream.arrivals
    assert second - first < 0.9


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # in the past: no wait
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "bad", "retry-after": "9"}, 9.0),
        ({}, None),
    ],
)
def test_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_s(headers, now=now) == expected
