"""The HTTP backend against a real OpenAI-shaped server on loopback (see conftest)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from charter.errors import ModelError
from charter.models import ChatRequest, Completion, Message, TextDelta
from charter.models.openai_http import OpenAIModel
from tests.conftest import FakeOpenAIServer, Scripted

REQ = ChatRequest(messages=[Message(role="user", content="hello")], max_tokens=20)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
"""Sync calls go through httpx, async ones through aiohttp: each behaviour is checked on both."""


def complete(m: OpenAIModel, mode: str, request: ChatRequest = REQ) -> Completion:
    if mode == "sync":
        return m.complete(request)
    return asyncio.run(m.acomplete(request))


def stream(m: OpenAIModel, mode: str) -> list[TextDelta | Completion]:
    if mode == "sync":
        return list(m.stream(REQ))

    async def go() -> list[TextDelta | Completion]:
        return [e async for e in m.astream(REQ)]

    return asyncio.run(go())


def model(server: FakeOpenAIServer, **kwargs: object) -> OpenAIModel:
    options: dict[str, object] = {"base_url": server.url, "model": "m1", "max_retries": 2}
    options.update(kwargs)
    return OpenAIModel(**options)  # type: ignore[arg-type]


@MODES
def test_complete_sends_openai_request(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.reply("Hi!", prompt_tokens=11, completion_tokens=2)
    with model(openai_server, api_key="sk-test") as m:
        result = complete(m, mode)
    assert result.text == "Hi!"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 2)
    [body] = openai_server.requests
    assert body["model"] == "m1"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 20
    assert body["stream"] is False
    assert openai_server.headers[0]["Authorization"] == "Bearer sk-test"


def test_json_schema_becomes_response_format(openai_server: FakeOpenAIServer) -> None:
    openai_server.reply('{"ok": true}')
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    with model(openai_server) as m:
        m.complete(ChatRequest(messages=REQ.messages, json_schema=schema))
    fmt = openai_server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"] == schema


@MODES
def test_5xx_is_retried_then_succeeds(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.script.append(Scripted(503, {"error": "busy"}))
    openai_server.reply("second time lucky")
    with model(openai_server) as m:
        assert complete(m, mode).text == "second time lucky"
    assert len(openai_server.requests) == 2


@MODES
def test_retries_are_bounded(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.script.extend(Scripted(500, {"error": "down"}) for _ in range(3))
    with model(openai_server, max_retries=1) as m, pytest.raises(ModelError, match="2 attempts"):
        complete(m, mode)
    assert len(openai_server.requests) == 2


@MODES
def test_4xx_fails_at_once_with_the_servers_words(
    openai_server: FakeOpenAIServer, mode: str
) -> None:
    openai_server.script.append(Scripted(401, {"error": "bad key"}))
    with model(openai_server) as m, pytest.raises(ModelError, match=r"HTTP 401.*bad key"):
        complete(m, mode)
    assert len(openai_server.requests) == 1


@MODES
def test_malformed_reply_is_a_model_error(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.script.append(Scripted(200, b"<html>oops</html>"))
    openai_server.script.append(Scripted(200, {"choices": []}))
    with model(openai_server) as m:
        with pytest.raises(ModelError, match="not JSON"):
            complete(m, mode)
        with pytest.raises(ModelError, match="malformed completion"):
            complete(m, mode)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@MODES
def test_unreachable_server_is_a_clear_error(mode: str) -> None:
    url = f"http://127.0.0.1:{unused_port()}/v1"
    with (
        OpenAIModel(base_url=url, model="m", max_retries=1) as m,
        pytest.raises(ModelError, match=r"cannot reach .*is the server running"),
    ):
        complete(m, mode)


@MODES
def test_stream(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.stream(["Hel", "lo", "!"])
    with model(openai_server) as m:
        events = stream(m, mode)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", "!"]
    final = events[-1]
    assert isinstance(final, Completion)
    assert final.text == "Hello!"
    assert final.usage.completion_tokens == 3
    assert openai_server.requests[0]["stream"] is True


@MODES
def test_stream_cut_before_done_is_an_error(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.stream(["partial"], done=False)
    with model(openai_server) as m, pytest.raises(ModelError, match="before \\[DONE\\]"):
        stream(m, mode)


def test_async_complete_and_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Scripted(502, {"error": "gateway"}))
    openai_server.reply("async hi")
    openai_server.stream(["a", "b"])

    async def go(m: OpenAIModel) -> tuple[str, str]:
        whole = await m.acomplete(REQ)
        final = [e async for e in m.astream(REQ)][-1]
        assert isinstance(final, Completion)
        return whole.text, final.text

    with model(openai_server) as m:
        assert asyncio.run(go(m)) == ("async hi", "ab")


@MODES
def test_error_chunk_in_stream(openai_server: FakeOpenAIServer, mode: str) -> None:
    openai_server.script.append(Scripted(sse=['{"error": {"message": "overloaded"}}']))
    with model(openai_server) as m, pytest.raises(ModelError, match="overloaded"):
        stream(m, mode)


@MODES
def test_a_timeout_is_retried_then_reported(mode: str) -> None:
    """A server that accepts and never answers: each attempt times out, and the error says so."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with (
            OpenAIModel(base_url=url, model="m", max_retries=1, timeout_s=0.2) as m,
            pytest.raises(ModelError, match=r"timed out.*2 attempts"),
        ):
            complete(m, mode)


def test_the_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "models.internal")
    assert OpenAIModel(base_url="https://api.example.com/v1", model="m")._proxy == (
        "http://proxy.internal:3128"
    )
    assert OpenAIModel(base_url="https://models.internal/v1", model="m")._proxy is None
    assert OpenAIModel(base_url="http://127.0.0.1:9/v1", model="m")._proxy is None
