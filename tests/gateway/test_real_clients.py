"""Real OpenAI clients, configured as their users configure them (a base URL and a key),
against `charter serve` on a port: the official SDK, sync and async, plain and streamed,
with system messages, content parts, sampling options, tools and response_format; and
LangChain's ChatOpenAI in a multi-turn conversation with a system message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from charter import Charter, FakeModel
from charter.gateway import create_app
from charter.spec import CharterSpec
from charter.stages.operator import BEGIN
from charter.store.sqlite import Store
from tests.conftest import serving

SPEC = CharterSpec.model_validate(
    {
        "id": "bank",
        "persona": {"name": "Penny", "role": "support assistant", "organisation": "Acme Bank"},
        "guards": {"input": ["extraction"], "output": ["leak"]},
        "critique": {"enabled": False},
        "models": {"chat": {"backend": "fake", "max_tokens": 400}},
    }
)
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeModel]]:
    model = FakeModel(default="We open at 9.")
    app = create_app({"bank": Charter(SPEC, model=model)}, store=Store(tmp_path / "g.db"))
    with serving(app) as url:
        yield f"{url}/v1", model


def test_the_sync_sdk_with_system_and_developer_messages_parts_and_options(
    served: tuple[str, FakeModel],
) -> None:
    url, model = served
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="bank",
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "developer", "content": "Mention the branch in Leeds."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "When do you open?"},
                    {"type": "text", "text": "On weekdays."},
                ],
            },
        ],
        temperature=0.7,
        top_p=0.9,
        max_tokens=100,
        stop=["\n\n"],
        seed=3,
        n=1,
        user="customer-42",
        metadata={"ticket": "T-9"},
    )
    assert reply.choices[0].message.content == "We open at 9."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    request = model.calls[-1]
    system, question = request.messages
    assert system.content.index(BEGIN) > system.content.index("Internal reference")
    assert "Answer in one sentence.\n\nMention the branch in Leeds." in system.content
    assert question.content == "When do you open?\nOn weekdays."
    assert (request.temperature, request.top_p, request.max_tokens, request.seed) == (
        0.7,
        0.9,
        100,
        3,
    )
    assert tuple(request.stop) == ("\n\n",)

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="bank",
            messages=[{"role": "user", "content": "hi"}],
            n=3,
        )
    assert "n=3 is not supported" in str(caught.value)
    with pytest.raises(openai.BadRequestError, match=r"'image_url' parts are not supported"):
        client.chat.completions.create(
            model="bank",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                }
            ],
        )


def test_the_sync_sdk_streams_with_usage_and_calls_a_named_tool(
    served: tuple[str, FakeModel],
) -> None:
    url, model = served
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="bank",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "When do you open?"},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "We open at 9."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])

    model.enqueue(
        json.dumps({"count": 1, "calls": [{"tool": "get_weather", "arguments": {"city": "Leeds"}}]})
    )
    called = client.chat.completions.create(
        model="bank",
        messages=[{"role": "user", "content": "Tell me something about Leeds."}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    [call] = called.choices[0].message.tool_calls or []
    assert called.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Leeds"}  # type: ignore[union-attr]


def test_the_async_sdk_plain_streamed_tools_and_response_format(
    served: tuple[str, FakeModel],
) -> None:
    url, model = served

    async def talk() -> tuple[str, str, list[str], str]:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        plain = await client.chat.completions.create(
            model="bank",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "When do you open?"},
            ],
            temperature=0.1,
        )
        stream = await client.chat.completions.create(
            model="bank", messages=[{"role": "user", "content": "And Sunday?"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        model.enqueue(
            json.dumps(
                {"count": 1, "calls": [{"tool": "get_weather", "arguments": {"city": "Oslo"}}]}
            )
        )
        tools = await client.chat.completions.create(
            model="bank",
            messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
            tools=[WEATHER],
            tool_choice="required",
        )
        names = [c.function.name for c in tools.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
        model.enqueue('{"open": "9:00"}')
        shaped = await client.chat.completions.create(
            model="bank",
            messages=[{"role": "user", "content": "Opening time as JSON."}],
            response_format={"type": "json_object"},
        )
        await client.close()
        return (
            plain.choices[0].message.content or "",
            streamed,
            names,
            shaped.choices[0].message.content or "",
        )

    plain, streamed, names, shaped = asyncio.run(talk())
    assert plain == "We open at 9." and streamed == "We open at 9."
    assert names == ["get_weather"]
    assert json.loads(shaped) == {"open": "9:00"}
    assert model.calls[-1].json_schema == {"type": "object"}
    assert any(c.temperature == 0.1 for c in model.calls)


def test_langchain_chat_openai_multi_turn_with_a_system_message(
    served: tuple[str, FakeModel],
) -> None:
    url, model = served
    llm = ChatOpenAI(base_url=url, api_key="unused", model="bank", max_retries=0, temperature=0.3)
    system = SystemMessage("Answer in one sentence and mention the Leeds branch.")
    model.enqueue("We open at 9, and the Leeds branch too.")
    first = llm.invoke([system, HumanMessage("When do you open?")])
    assert first.content == "We open at 9, and the Leeds branch too."
    model.enqueue("On Sundays we are closed.")
    history = [system, HumanMessage("When do you open?"), first, HumanMessage("And on Sunday?")]
    second = llm.invoke(history)
    assert isinstance(second, AIMessage) and second.content == "On Sundays we are closed."
    request = model.calls[-1]
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[0].content.endswith(
        "Answer in one sentence and mention the Leeds branch.\n--- end of operator instructions ---"
    )
    assert request.messages[2].content == "We open at 9, and the Leeds branch too."
    assert request.temperature == 0.3

    streamed = list(
        ChatOpenAI(base_url=url, api_key="unused", model="bank", stream_usage=True).stream(history)
    )
    assert "".join(str(c.content) for c in streamed) == "We open at 9."
    usage = [c.usage_metadata for c in streamed if c.usage_metadata]
    assert len(usage) == 1 and usage[0]["total_tokens"] > 0
