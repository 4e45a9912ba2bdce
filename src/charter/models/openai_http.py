"""Any OpenAI-compatible chat completions endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

The sync calls use httpx; the async ones (the pipeline's, so the gateway's) use aiohttp,
whose C parser costs ~0.7 ms less per request than httpx's async client on this machine
(measured against bench/gateway's fake upstream: 0.76 vs 1.33-1.95 ms a round trip).
Connection failures, timeouts, 408, 429 and 5xx answers are retried a bounded number of
times with backoff; everything else fails at once with the server's own words in the error.
A 429 or 503 that says when to come back (`Retry-After`, in seconds or as an HTTP date, or
OpenAI's `retry-after-ms`) is retried after that long instead of the backoff, provided the
wait fits in `max_retry_wait_s` and in what is left of the call's `timeout_s`; a longer one
fails at once (retrying sooner than the server asked would only be refused again).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import math
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import certifi
import httpx

from charter.errors import ModelError
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent
from charter.models.openai_wire import StreamAssembler, completion_from_openai, request_payload

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_RETRY_AFTER_STATUS = {429, 503}
"""The answers whose `Retry-After` is honoured (RFC 9110 gives it to these two)."""
_TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError, TimeoutError)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the server asked to wait before the next attempt, if it said."""


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds (None when absent or unreadable).

    OpenAI's `retry-after-ms`, else `Retry-After` as delay-seconds or an HTTP date (a date in the
    past is no wait). `headers` must look names up case-insensitively (httpx's and aiohttp's do).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: an HTTP date is always GMT
        when = when.replace(tzinfo=datetime.UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class OpenAIModel(ChatModel):
    """A model behind an OpenAI-compatible API: POST `/chat/completions` at `base_url`.

    Transport errors and HTTP 408, 429, 500, 502, 503 and 504 are retried up to `max_retries` times,
    after the wait the server asks for (at most `max_retry_wait_s`) or a short backoff; every
    failure is a ModelError.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_retry_wait_s: float = 30.0,
        context_window: int = 8192,
        transport: httpx.BaseTransport | None = None,
        native_tools: bool = True,
    ) -> None:
        self.name = model
        self.native_tools = native_tools
        self.base_url = base_url.rstrip("/")
        self.context_window = context_window
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.max_retry_wait_s = max_retry_wait_s
        """The longest `Retry-After` honoured; a server asking for more fails the call."""
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        connect_s = min(timeout_s, 10.0)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=self._headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_s),
            transport=transport,
        )
        # One TLS context for every async session (building one costs ~55 ms here).
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=connect_s, sock_read=timeout_s
        )
        # The proxy, from HTTP(S)_PROXY / NO_PROXY as httpx reads them, looked up once:
        # aiohttp's own lookup (trust_env) costs a worker-thread hop (~0.5 ms) per request.
        self._proxy = _env_proxy(self.base_url)
        self._sharing = False
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    # -- connections ----------------------------------------------------------------------
    # Outside a server, each async call has its own session (each `asyncio.run` is a new
    # loop, and a connection cannot outlive its loop). A server calls `share_connections`
    # once: its calls then reuse one pool of keep-alive connections on its loop, which
    # saves a TCP (and TLS) handshake per turn (measured by bench/gateway).

    def share_connections(self) -> None:
        self._sharing = True

    async def aclose(self) -> None:
        session, self._session, self._session_loop = self._session, None, None
        self._sharing = False
        if session is not None:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(ssl=self._tls),
            read_bufsize=2**20,  # one SSE line can carry a whole tool call
        )

    @asynccontextmanager
    async def _asession(self) -> AsyncIterator[aiohttp.ClientSession]:
        loop = asyncio.get_running_loop()
        if self._sharing and self._session_loop in (None, loop):
            if self._session is None:
                self._session, self._session_loop = self._new_session(), loop
            yield self._session
            return
        async with self._new_session() as session:
            yield session

    # -- errors ---------------------------------------------------------------------------

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, httpx.ConnectError | aiohttp.ClientConnectorError):
            return f"cannot reach {self.base_url} ({exc}); is the server running?"
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return f"{self.base_url} timed out ({type(exc).__name__})"
        if isinstance(exc, _Retryable):
            return str(exc)
        return f"{self.base_url}: {exc}"

    def _check(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        if status in _RETRYABLE_STATUS:
            wait = None
            if status in _RETRY_AFTER_STATUS and headers is not None:
                wait = retry_after_s(headers)
            raise _Retryable(f"HTTP {status}: {text[:300]}", retry_after=wait)
        if status >= 400:
            raise ModelError(f"{self.base_url} answered HTTP {status}: {text[:300]}")

    def _backoff(self, attempt: int) -> float:
        return float(min(0.25 * 2.0**attempt, 4.0))

    def _pause(self, attempt: int, exc: Exception, started: float) -> float:
        """Seconds to wait before the next attempt.

        What the server asked for, when it said (429/503 with `Retry-After`), else the backoff. A
        wait longer than `max_retry_wait_s` or than what is left of `timeout_s` since the call
        started fails the call now (ModelError).
        """
        asked = exc.retry_after if isinstance(exc, _Retryable) else None
        if asked is None:
            return self._backoff(attempt)
        left = self.timeout_s - (time.monotonic() - started)
        if asked > self.max_retry_wait_s or asked > left:
            bound = (
                f"max_retry_wait_s={self.max_retry_wait_s:g}"
                if self.max_retry_wait_s <= left
                else f"the {max(left, 0.0):.1f} s left of timeout_s={self.timeout_s:g}"
            )
            raise ModelError(
                f"{self.name}: {self._describe(exc)}; the server asked to retry after "
                f"{asked:.1f} s, longer than this call may wait ({bound})"
            ) from None
        return asked

    def _gave_up(self, last: str) -> ModelError:
        return ModelError(f"{self.name}: {last} (after {self.max_retries + 1} attempts)")

    # -- whole replies --------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Completion:
        body = request_payload(request, stream=False) | {"model": self.name}
        last = ""
        started = time.monotonic()
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
                self._check(response.status_code, response.text, response.headers)
                return completion_from_openai(_json(response.text, self.base_url), model=self.name)
            except (*_TRANSPORT_ERRORS, _Retryable) as exc:
                last = self._describe(exc)
                if attempt < self.max_retries:
                    time.sleep(self._pause(attempt, exc, started))
        raise self._gave_up(last)

    async def acomplete(self, request: ChatRequest) -> Completion:
        body = request_payload(request, stream=False) | {"model": self.name}
        url = f"{self.base_url}/chat/completions"
        last = ""
        started = time.monotonic()
        async with self._asession() as session:
            for attempt in range(self.max_retries + 1):
                try:
                    async with session.post(url, json=body, proxy=self._proxy) as response:
                        text = await response.text()
                    self._check(response.status, text, response.headers)
                    return completion_from_openai(_json(text, self.base_url), model=self.name)
                except (*_TRANSPORT_ERRORS, _Retryable) as exc:
                    last = self._describe(exc)
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._pause(attempt, exc, started))
        raise self._gave_up(last)

    # -- streams --------------------------------------------------------------------------
    # A stream is retried only until its first byte: after that, text has been shown.

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        body = request_payload(request, stream=True) | {
            "model": self.name,
            "stream_options": {"include_usage": True},
        }
        last = ""
        started = time.monotonic()
        for attempt in range(self.max_retries + 1):
            reader = _SSEReader(self.name)
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._check(response.status_code, response.text, response.headers)
                    for line in response.iter_lines():
                        yield from reader.feed(line)
                    yield reader.finish()
                    return
            except (*_TRANSPORT_ERRORS, _Retryable) as exc:
                last = self._describe(exc)
                if reader.parts:
                    raise ModelError(f"{self.name}: stream broke mid-reply: {last}") from None
                if attempt < self.max_retries:
                    time.sleep(self._pause(attempt, exc, started))
        raise self._gave_up(last)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body = request_payload(request, stream=True) | {
            "model": self.name,
            "stream_options": {"include_usage": True},
        }
        url = f"{self.base_url}/chat/completions"
        last = ""
        started = time.monotonic()
        async with self._asession() as session:
            for attempt in range(self.max_retries + 1):
                reader = _SSEReader(self.name)
                try:
                    async with session.post(url, json=body, proxy=self._proxy) as response:
                        if response.status >= 400:
                            text = await response.text()
                            self._check(response.status, text, response.headers)
                        async for raw in response.content:
                            for event in reader.feed(raw.decode("utf-8").rstrip("\r\n")):
                                yield event
                    yield reader.finish()
                    return
                except (*_TRANSPORT_ERRORS, _Retryable) as exc:
                    last = self._describe(exc)
                    if reader.parts:
                        raise ModelError(f"{self.name}: stream broke mid-reply: {last}") from None
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._pause(attempt, exc, started))
        raise self._gave_up(last)

    def close(self) -> None:
        self._client.close()


def _env_proxy(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ModelError(
            f"{where} answered with something that is not JSON: {text[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{where} answered with JSON that is not an object")
    return data


class _SSEReader:
    """Turns `data: {...}` lines of an OpenAI stream into events."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.assembler = StreamAssembler(model)
        self.ended = False

    @property
    def parts(self) -> list[str]:
        return self.assembler.parts

    def feed(self, line: str) -> Iterator[StreamEvent]:
        if not line.startswith("data:"):
            return
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.ended = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ModelError(f"{self.model}: malformed stream chunk {payload[:200]!r}") from None
        yield from self.assembler.feed(chunk)

    def finish(self) -> Completion:
        if not self.ended:
            raise ModelError(f"{self.model}: the stream ended before [DONE]")
        return self.assembler.completion()
