"""The litellm backend against a real server on loopback speaking Anthropic's Messages API."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("litellm") is None:  # not imported here: the backend sets it up
    pytest.skip("the litellm extra is not installed", allow_module_level=True)

from charter.errors import ModelError
from charter.models import ChatRequest, Completion, Message, TextDelta
from charter.models.factory import build_model, model_name
from charter.models.litellm_backend import LiteLLMModel
from charter.spec.loader import CharterFileError, load_charter
from charter.spec.models import LiteLLMModelSpec
from tests.loopback import http_serving

REQ = ChatRequest(
    messages=[
        Message(role="system", content="You are terse."),
        Message(role="user", content="hello"),
    ],
    max_tokens=20,
)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
# LiteLLM's own imports warn about pydantic's handling of a TypedDict of theirs.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .*ReadOnly:UserWarning")


@dataclass
class AnthropicServer:
    url: str = ""
    script: list[tuple[int, Any]] = field(default_factory=list)
    """(status, body) per request; a body that is a list is sent as SSE (event, data) pairs."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def reply(self, text: str, *, input_tokens: int = 11, output_tokens: int = 2) -> None:
        self.script.append(
            (
                200,
                {
                    "id": "msg_test",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test",
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
        )

    def stream(self, pieces: list[str]) -> None:
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_test",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-test",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 9, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in pieces
        ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self.script.append((200, events))

    def tool_use(self, name: str, arguments: dict[str, Any]) -> None:
        self.script.append(
            (
                200,
                {
                    "id": "msg_test",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": name, "input": arguments}
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 4},
                },
            )
        )

    def fail(self, status: int, message: str) -> None:
        error_type = "overloaded_error" if status >= 500 else "invalid_request_error"
        self.script.append(
            (status, {"type": "error", "error": {"type": error_type, "message": message}})
        )


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    state = AnthropicServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            state.requests.append(json.loads(self.rfile.read(length)))
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            state.paths.append(self.path)
            status, body = state.script.pop(0) if state.script else (500, {"error": "no script"})
            if isinstance(body, list):
                self.close_connection = True
                self.send_response(status)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in body:
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                return
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    with http_serving(Handler) as url:
        state.url = url
        yield state


def model(server: AnthropicServer, **kwargs: Any) -> LiteLLMModel:
    options: dict[str, Any] = {
        "model": "anthropic/claude-test",
        "api_base": server.url,
        "api_key": "sk-ant-test",
        "max_retries": 0,
        "timeout_s": 10.0,
    }
    return LiteLLMModel(**(options | kwargs))


def complete(m: LiteLLMModel, mode: str) -> Completion:
    if mode == "sync":
        return m.complete(REQ)
    return asyncio.run(m.acomplete(REQ))


def stream(m: LiteLLMModel, mode: str) -> list[TextDelta | Completion]:
    if mode == "sync":
        return list(m.stream(REQ))

    async def go() -> list[TextDelta | Completion]:
        return [e async for e in m.astream(REQ)]

    return asyncio.run(go())


@MODES
def test_complete_speaks_anthropic(anthropic_server: AnthropicServer, mode: str) -> None:
    anthropic_server.reply("Hi!", input_tokens=11, output_tokens=2)
    result = complete(model(anthropic_server), mode)
    assert result.text == "Hi!"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 2)
    assert result.model == "anthropic/claude-test"
    [body] = anthropic_server.requests
    assert anthropic_server.paths == ["/v1/messages"]
    assert body["model"] == "claude-test"
    assert body["system"] in ("You are terse.", [{"type": "text", "text": "You are terse."}])
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert json.dumps(body["messages"][0]["content"]).count("hello") == 1
    assert body["max_tokens"] == 20
    headers = anthropic_server.headers[0]
    assert headers["x-api-key"] == "sk-ant-test"
    assert "anthropic-version" in headers


@MODES
def test_stream_yields_the_deltas_in_order(anthropic_server: AnthropicServer, mode: str) -> None:
    anthropic_server.stream(["Hel", "lo", " there"])
    events = stream(model(anthropic_server), mode)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["Hel", "lo", " there"]
    final = events[-1]
    assert isinstance(final, Completion)
    assert final.text == "Hello there"
    assert final.usage.prompt_tokens == 9
    assert final.usage.completion_tokens == 3
    assert anthropic_server.requests[0]["stream"] is True


@MODES
@pytest.mark.parametrize(("status", "message"), [(400, "max_tokens: too large"), (529, "busy")])
def test_upstream_errors_name_the_status(
    anthropic_server: AnthropicServer, mode: str, status: int, message: str
) -> None:
    anthropic_server.fail(status, message)
    with pytest.raises(ModelError, match=rf"HTTP {status}.*{message}"):
        complete(model(anthropic_server), mode)


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def test_json_schema_is_forced_as_anthropic_does_it(anthropic_server: AnthropicServer) -> None:
    anthropic_server.tool_use("json_tool_call", {"ok": True})
    request = ChatRequest(messages=REQ.messages, json_schema=SCHEMA, seed=7)
    result = model(anthropic_server).complete(request)
    assert json.loads(result.text) == {"ok": True}
    assert result.tool_calls == ()
    [body] = anthropic_server.requests
    [tool] = body["tools"]
    assert tool["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": tool["name"]}
    assert "seed" not in body  # Anthropic has none: dropped, not an error


def test_native_tools_come_back_as_tool_calls(anthropic_server: AnthropicServer) -> None:
    anthropic_server.tool_use("balance", {"account": "A-1"})
    tool = {"name": "balance", "description": "An account's balance.", "parameters": SCHEMA}
    m = model(anthropic_server)
    assert m.native_tools
    result = m.complete(ChatRequest(messages=REQ.messages, tools=[tool], tool_choice="required"))
    assert result.tool_calls == ({"name": "balance", "arguments": {"account": "A-1"}},)
    [sent] = anthropic_server.requests[0]["tools"]
    assert (sent["name"], sent["input_schema"]) == ("balance", SCHEMA)
    assert anthropic_server.requests[0]["tool_choice"]["type"] == "any"


def test_json_schema_without_provider_support_is_a_model_error() -> None:
    m = LiteLLMModel(model="nlp_cloud/some-model", max_retries=0)
    assert not m.native_tools
    with pytest.raises(ModelError, match=r"nlp_cloud.*JSON schema"):
        m.complete(ChatRequest(messages=REQ.messages, json_schema=SCHEMA))


def test_stream_error_is_a_model_error(anthropic_server: AnthropicServer) -> None:
    anthropic_server.fail(401, "invalid x-api-key")
    with pytest.raises(ModelError, match=r"HTTP 401.*invalid x-api-key"):
        list(model(anthropic_server).stream(REQ))


def test_unreachable_server_is_a_model_error(anthropic_server: AnthropicServer) -> None:
    m = model(anthropic_server, api_base="http://127.0.0.1:9")
    with pytest.raises(ModelError, match="claude-test"):
        m.complete(REQ)


def test_model_needs_a_provider() -> None:
    with pytest.raises(ModelError, match="provider/model"):
        LiteLLMModel(model="claude-test")


CHARTER = """\
id: bot
persona:
  name: Ada
  role: support assistant
models:
  chat:
    backend: litellm
    model: anthropic/claude-test
    api_base: {url}
    api_key_env: TEST_ANTHROPIC_KEY
    timeout_s: 10
    max_retries: 0
    {extra}
"""


def test_charter_builds_the_model(
    anthropic_server: AnthropicServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "charter.yaml"
    path.write_text(CHARTER.format(url=anthropic_server.url, extra=""), encoding="utf-8")
    spec = load_charter(path).models.chat
    assert isinstance(spec, LiteLLMModelSpec)
    assert model_name(spec) == "anthropic/claude-test"
    with pytest.raises(ModelError, match="TEST_ANTHROPIC_KEY"):
        build_model(spec)
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-from-env")
    built = build_model(spec)
    assert isinstance(built, LiteLLMModel)
    anthropic_server.reply("ok")
    assert built.complete(REQ).text == "ok"
    assert anthropic_server.headers[0]["x-api-key"] == "sk-from-env"


def test_bad_field_names_field_and_line(anthropic_server: AnthropicServer, tmp_path: Path) -> None:
    path = tmp_path / "charter.yaml"
    text = CHARTER.format(url=anthropic_server.url, extra="timeout_s_typo: 3")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CharterFileError) as caught:
        load_charter(path)
    line = text.splitlines().index("    timeout_s_typo: 3") + 1
    assert f"charter.yaml:{line}:" in str(caught.value)
    assert "models.chat.timeout_s_typo" in str(caught.value)


def test_missing_litellm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # `import litellm` now fails
    monkeypatch.delitem(sys.modules, "charter.models.litellm_backend")
    with pytest.raises(ModelError, match=r"'litellm' extra \(litellm is not installed\)"):
        importlib.import_module("charter.models.litellm_backend")
