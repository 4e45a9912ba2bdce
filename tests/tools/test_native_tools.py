"""Native tool calls with an OpenAI-compatible backend (a real HTTP server, scripted)."""

from __future__ import annotations

import json
from typing import Any

from charter import Charter
from charter.spec import CharterSpec
from tests.conftest import FakeOpenAIServer, Scripted, completion_body
from tests.tools.test_tools import TOOLS


def tool_calls(*calls: tuple[str, str]) -> Scripted:
    body: dict[str, Any] = completion_body("")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
        for i, (n, a) in enumerate(calls)
    ]
    body["choices"][0]["finish_reason"] = "tool_calls"
    return Scripted(body=body)


def charter(url: str, tool_calls: str = "native") -> Charter:
    spec = CharterSpec.model_validate(
        {
            "id": "bank",
            "persona": {"name": "Penny", "role": "support assistant"},
            "tools": TOOLS,
            "tool_limits": {"min_relevance": -1},
            "guards": {"input": [], "output": []},
            "critique": {"enabled": False},
            "models": {
                "chat": {
                    "backend": "openai",
                    "base_url": url,
                    "model": "m",
                    "max_retries": 0,
                    "tool_calls": tool_calls,
                }
            },
        }
    )
    return Charter(spec)


def test_tools_go_out_as_the_apis_tools_and_tool_calls_come_back(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.script.append(tool_calls(("get_balance", '{"account": "premium"}')))
    openai_server.reply("")  # no more calls
    openai_server.reply("You have 8020.0 EUR.")
    reply = charter(openai_server.url).respond("What's my premium balance?")
    assert reply.text == "You have 8020.0 EUR."
    first = openai_server.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["get_balance", "freeze_card"]
    assert first["tool_choice"] == "auto" and "response_format" not in first
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["ran", "answer"]
    assert "balance_eur" in openai_server.requests[-1]["messages"][0]["content"]


def test_malformed_native_arguments_are_fed_back(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(tool_calls(("get_balance", "{account: premium")))
    openai_server.script.append(tool_calls(("get_balance", '{"account": "everyday"}')))
    openai_server.reply("")
    openai_server.reply("ok")
    reply = charter(openai_server.url).respond("balance?")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["invalid", "ran", "answer"]
    assert "must be a JSON object" in steps[0]["error"]
    fed_back = openai_server.requests[1]["messages"][-1]["content"]
    assert "not run, invalid arguments" in fed_back


def test_json_mode_keeps_schema_forced_decisions(openai_server: FakeOpenAIServer) -> None:
    openai_server.reply(json.dumps({"calls": []}))
    openai_server.reply("Hello.")
    reply = charter(openai_server.url, tool_calls="json").respond("hi")
    assert reply.text == "Hello."
    first = openai_server.requests[0]
    assert "tools" not in first and first["response_format"]["type"] == "json_schema"
