"""Any OpenAI-compatible chat completions endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

Sync and async use httpx's two clients. Connection failures, timeouts and 5xx answers are
retried a bounded number of times with backoff; everything else fails at once with the
server's own words in the error.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import certifi
import httpx

from charter.errors import ModelError
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent
from charter.models.openai_wire import StreamAssembler, completion_from_openai, request_payload

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class OpenAIModel(ChatModel):
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        context_window: int = 8192,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        native_tools: bool = True,
    ) -> None:
        self.name = model
        self.native_tools = native_tools
        self.base_url = base_url.rstrip("/")
        self.context_window = context_window
        self.max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        # One TLS context for every async client: building one per request (httpx's default)
        # cost ~55 ms each here, measured by bench/gateway.
        tls = ssl.create_default_context(cafile=certifi.where())
        self._aclient_args: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": headers,
            "timeout": timeout,
            "transport": async_transport,
            "verify": tls,
        }
        self._pool: httpx.AsyncClient | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None

    # -- connections ----------------------------------------------------------------------
    # Outside a server, each async call has its own client (each `asyncio.run` is a new
    # loop, and a connection cannot outlive its loop). A server calls `share_connections`
    # once: its calls then reuse one pool of keep-alive connections on its loop, which
    # saves a TCP (and TLS) handshake per turn (measured by bench/gateway).

    def share_connections(self) -> None:
        if self._pool is None:
            self._pool = httpx.AsyncClient(**self._aclient_args)

    async def aclose(self) -> None:
        pool, self._pool, self._pool_loop = self._pool, None, None
        if pool is not None:
            await pool.aclose()

    @asynccontextmanager
    async def _aclient(self) -> AsyncIterator[httpx.AsyncClient]:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop in (None, loop):
            self._pool_loop = loop
            yield self._pool
            return
        async with httpx.AsyncClient(**self._aclient_args) as client:
            yield client

    # -- errors ---------------------------------------------------------------------------

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, httpx.ConnectError):
            return f"cannot reach {self.base_url} ({exc}); is the server running?"
        if isinstance(exc, httpx.TimeoutException):
            return f"{self.base_url} timed out ({type(exc).__name__})"
        return f"{self.base_url}: {exc}"

    def _check(self, response: httpx.Response) -> None:
        if response.status_code in _RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {response.status_code}: {response.text[:300]}")
        if response.status_code >= 400:
            raise ModelError(
                f"{self.base_url} answered HTTP {response.status_code}: {response.text[:300]}"
            )

    def _backoff(self, attempt: int) -> float:
        return float(min(0.25 * 2.0**attempt, 4.0))

    # -- whole replies --------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Completion:
        body = request_payload(request, stream=False) | {"model": self.name}
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
                self._check(response)
                return completion_from_openai(_json(response, self.base_url), model=self.name)
            except (httpx.TransportError, _Retryable) as exc:
                last = self._describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                if attempt < self.max_retries:
                    time.sleep(self._backoff(attempt))
        raise ModelError(f"{self.name}: {last} (after {self.max_retries + 1} attempts)")

    async def acomplete(self, request: ChatRequest) -> Completion:
        body = request_payload(request, stream=False) | {"model": self.name}
        last = ""
        async with self._aclient() as client:
            for attempt in range(self.max_retries + 1):
                try:
                    response = await client.post("/chat/completions", json=body)
                    self._check(response)
                    return completion_from_openai(_json(response, self.base_url), model=self.name)
                except (httpx.TransportError, _Retryable) as exc:
                    last = self._describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._backoff(attempt))
        raise ModelError(f"{self.name}: {last} (after {self.max_retries + 1} attempts)")

    # -- streams --------------------------------------------------------------------------
    # A stream is retried only until its first byte: after that, text has been shown.

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        body = request_payload(request, stream=True) | {
            "model": self.name,
            "stream_options": {"include_usage": True},
        }
        last = ""
        for attempt in range(self.max_retries + 1):
            reader = _SSEReader(self.name)
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                    self._check(response)
                    for line in response.iter_lines():
                        yield from reader.feed(line)
                    yield reader.finish()
                    return
            except (httpx.TransportError, _Retryable) as exc:
                last = self._describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                if reader.parts:
                    raise ModelError(f"{self.name}: stream broke mid-reply: {last}") from None
                if attempt < self.max_retries:
                    time.sleep(self._backoff(attempt))
        raise ModelError(f"{self.name}: {last} (after {self.max_retries + 1} attempts)")

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body = request_payload(request, stream=True) | {
            "model": self.name,
            "stream_options": {"include_usage": True},
        }
        last = ""
        async with self._aclient() as client:
            for attempt in range(self.max_retries + 1):
                reader = _SSEReader(self.name)
                try:
                    async with client.stream("POST", "/chat/completions", json=body) as response:
                        if response.status_code >= 400:
                            await response.aread()
                        self._check(response)
                        async for line in response.aiter_lines():
                            for event in reader.feed(line):
                                yield event
                        yield reader.finish()
                        return
                except (httpx.TransportError, _Retryable) as exc:
                    last = self._describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                    if reader.parts:
                        raise ModelError(f"{self.name}: stream broke mid-reply: {last}") from None
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._backoff(attempt))
        raise ModelError(f"{self.name}: {last} (after {self.max_retries + 1} attempts)")

    def close(self) -> None:
        self._client.close()


def _json(response: httpx.Response, where: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ModelError(
            f"{where} answered with something that is not JSON: {response.text[:200]!r}"
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
