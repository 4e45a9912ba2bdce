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


def model(server: FakeOpenAIServer, **kwargs: object) -> OpenAIModel:
    options: dict[str, object] = {"base_url": server.url, "model": "m1", "max_retries": 2}
    options.update(kwargs)
    return OpenAIModel(**options)  # type: ignore[arg-type]


def test_complete_sends_openai_request(openai_server: FakeOpenAIServer) -> None:
    openai_server.reply("Hi!", prompt_tokens=11, completion_tokens=2)
    with model(openai_server, api_key="sk-test") as m:
        result = m.complete(REQ)
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


def test_5xx_is_retried_then_succeeds(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Scripted(503, {"error": "busy"}))
    openai_server.reply("second time lucky")
    with model(openai_server) as m:
        assert m.complete(REQ).text == "second time lucky"
    assert len(openai_server.requests) == 2


def test_retries_are_bounded(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.extend(Scripted(500, {"error": "down"}) for _ in range(3))
    with model(openai_server, max_retries=1) as m, pytest.raises(ModelError, match="2 attempts"):
        m.complete(REQ)
    assert len(openai_server.requests) == 2


def test_4xx_fails_at_once_with_the_servers_words(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Scripted(401, {"error": "bad key"}))
    with model(openai_server) as m, pytest.raises(ModelError, match=r"HTTP 401.*bad key"):
        m.complete(REQ)
    assert len(openai_server.requests) == 1


def test_malformed_reply_is_a_model_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Scripted(200, b"<html>oops</html>"))
    openai_server.script.append(Scripted(200, {"choices": []}))
    with model(openai_server) as m:
        with pytest.raises(ModelError, match="not JSON"):
            m.complete(REQ)
        with pytest.raises(ModelError, match="malformed completion"):
            m.complete(REQ)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{unused_port()}/v1"
    with (
        OpenAIModel(base_url=url, model="m", max_retries=1) as m,
        pytest.raises(ModelError, match=r"cannot reach .*is the server running"),
    ):
        m.complete(REQ)


def test_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.stream(["Hel", "lo", "!"])
    with model(openai_server) as m:
        events = list(m.stream(REQ))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", "!"]
    final = events[-1]
    assert isinstance(final, Completion)
    assert final.text == "Hello!"
    assert final.usage.completion_tokens == 3
    assert openai_server.requests[0]["stream"] is True


def test_stream_cut_before_done_is_an_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.stream(["partial"], done=False)
    with model(openai_server) as m, pytest.raises(ModelError, match="before \\[DONE\\]"):
        list(m.stream(REQ))


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


def test_error_chunk_in_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Scripted(sse=['{"error": {"message": "overloaded"}}']))
    with model(openai_server) as m, pytest.raises(ModelError, match="overloaded"):
        list(m.stream(REQ))
