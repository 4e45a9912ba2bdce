"""Routing: cheap or strong model per turn from task signals, fallback, cost per model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from charter import Charter, FakeModel
from charter.errors import CharterError, ModelError
from charter.models.routing import choose, route_signals
from charter.spec import CharterSpec
from charter.spec.models import Routing
from tests.conftest import FakeOpenAIServer

EASY = "What are your opening hours?"
HARD = "Can you compare the two savings accounts step by step? And which one suits a student?"


def spec(**models: Any) -> CharterSpec:
    return CharterSpec.model_validate(
        {
            "id": "routed",
            "persona": {"name": "Penny", "role": "support assistant"},
            "guards": {"input": [], "output": []},
            "critique": {"enabled": False},
            "drift": {"enabled": False},
            "models": {
                "chat": {
                    "backend": "fake",
                    "replies": ["cheap answer"],
                    "price": {"input_per_million": 1.0, "output_per_million": 2.0},
                },
                "strong": {
                    "backend": "fake",
                    "replies": ["strong answer"],
                    "price": {"input_per_million": 10.0, "output_per_million": 20.0},
                },
                **models,
            },
        }
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (EASY, []),
        ("word " * 81, ["long message (81 words)"]),
        ("Why is this slow?\n```python\nfor i in x: pass\n```", ["code in the message"]),
        ("Please explain why my card was declined", ["reasoning asked ('explain why')"]),
        ("Is it open? Is it free?", ["2 questions"]),
    ],
)
def test_route_signals(message: str, expected: list[str]) -> None:
    assert route_signals(message, long_words=80, tool_results=0, reanchor=False) == expected


def test_choose_needs_enough_signals_unless_a_mode_forces_one() -> None:
    two = ["a", "b"]
    assert choose(two, Routing(), has_strong=True) == "strong"
    assert choose(two[:1], Routing(), has_strong=True) == "chat"
    assert choose(two[:1], Routing(threshold=1), has_strong=True) == "strong"
    assert choose([], Routing(mode="strong"), has_strong=True) == "strong"
    assert choose(two, Routing(mode="cheap"), has_strong=True) == "chat"
    assert choose(two, Routing(), has_strong=False) == "chat"
    signals = route_signals("x", long_words=80, tool_results=2, reanchor=True)
    assert signals == ["2 tool result(s) to report", "the persona slipped last turn"]


def test_hard_turns_go_to_the_strong_model_and_cost_uses_each_models_price() -> None:
    charter = Charter(spec())
    easy = charter.respond(EASY)
    assert easy.text == "cheap answer"
    assert set(easy.usage_by_model) == {"chat"}
    chat = easy.usage_by_model["chat"]
    expected = (chat.prompt_tokens * 1.0 + chat.completion_tokens * 2.0) / 1e6
    assert easy.cost == pytest.approx(expected)

    hard = charter.respond(HARD)
    assert hard.text == "strong answer"
    assert set(hard.usage_by_model) == {"strong"}  # the cheap model was not asked
    assert hard.trace["route"].reason.startswith("strong")  # the trace says why
    strong = hard.usage_by_model["strong"]
    assert hard.cost == pytest.approx(
        (strong.prompt_tokens * 10.0 + strong.completion_tokens * 20.0) / 1e6
    )
    assert hard.to_dict()["cost"] == hard.cost


def test_without_prices_there_is_no_cost_and_without_a_strong_model_no_route_stage() -> None:
    plain = spec()
    models = plain.models.model_copy(
        update={
            "strong": None,
            "chat": plain.models.chat.model_copy(update={"price": None}),
        }
    )
    reply = Charter(plain.model_copy(update={"models": models})).respond(HARD)
    assert reply.text == "cheap answer" and reply.cost is None
    assert "route" not in reply.trace


def test_a_failing_upstream_falls_back_to_the_other_model(
    openai_server: FakeOpenAIServer,
) -> None:
    # The chat model is a real HTTP upstream that answers 500 (nothing scripted).
    failing = {"backend": "openai", "base_url": openai_server.url, "model": "m", "max_retries": 0}
    reply = Charter(spec(chat=failing)).respond(EASY)
    assert reply.text == "strong answer" and not reply.blocked
    assert set(reply.usage_by_model) == {"strong"}  # the failed call cost nothing
    assert len(openai_server.requests) == 1
    [why] = reply.trace["generate"].detail["fallback"]  # the trace says why it fell back
    assert "chat:" in why and "500" in why


def test_without_fallback_a_failing_model_fails_the_turn_closed() -> None:
    routed = spec(routing={"fallback": False})
    reply = Charter(routed, model=FakeModel([ModelError("upstream timed out")])).respond(EASY)
    assert reply.blocked
    assert reply.text == routed.persona.fallback_reply()
    assert "upstream timed out" in (reply.block_reason or "")


def test_mode_strong_needs_a_strong_model() -> None:
    with pytest.raises(ValueError, match=r"routing\.mode 'strong' needs models\.strong"):
        CharterSpec.model_validate(
            {
                "id": "x",
                "persona": {"name": "P", "role": "r"},
                "models": {"routing": {"mode": "strong"}},
            }
        )
    with pytest.raises(CharterError, match=r"no models\.strong"):
        _ = Charter(spec(strong=None)).strong_model


def test_tool_decisions_go_to_the_model_routing_tools_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_BANK_STATE", str(tmp_path / "bank.json"))
    from tests.tools.test_tools import TOOLS

    tool = TOOLS[0]  # get_balance, on the acme-bank example's fake bank
    decision = json.dumps({"count": 1, "calls": [{"tool": "get_balance", "arguments": {}}]})
    for choice, deciding in (("cheap", "chat"), ("strong", "strong")):
        base = spec().model_dump()
        base["models"]["routing"] = {"mode": "cheap", "tools": choice}
        charter = CharterSpec.model_validate(
            {**base, "tools": [tool], "tool_limits": {"min_relevance": -1}}
        )
        cheap, strong = FakeModel(default="cheap answer"), FakeModel(default="strong answer")
        (cheap if deciding == "chat" else strong).enqueue(
            decision.replace("{}", '{"account": "premium"}'), json.dumps({"calls": []})
        )
        reply = Charter(charter, model=cheap, strong_model=strong).respond(
            "What is my premium balance?"
        )
        # Only the deciding model has the decisions scripted: asked of the other, the turn
        # would fail. The answer itself follows routing.mode.
        assert reply.text == "cheap answer" and not reply.blocked
        assert set(reply.usage_by_model) == {"chat", deciding}
        assert "8020.0" in cheap.calls[-1].messages[0].content  # the tool's result, answered


def test_decisions_on_a_callers_own_tools_follow_routing_tools() -> None:
    from tests.tools.test_tools import TOOLS

    function = {k: TOOLS[0][k] for k in ("name", "description", "parameters")}
    decision = json.dumps(
        {"count": 1, "calls": [{"tool": "get_balance", "arguments": {"account": "premium"}}]}
    )
    for choice, deciding in (("cheap", "chat"), ("strong", "strong")):
        base = spec().model_dump()
        base["models"]["routing"] = {"mode": "cheap", "tools": choice}
        charter = CharterSpec.model_validate({**base, "tool_limits": {"min_relevance": -1}})
        cheap, strong = FakeModel(default="cheap answer"), FakeModel(default="strong answer")
        (cheap if deciding == "chat" else strong).enqueue(decision)
        reply = asyncio.run(
            Charter(charter, model=cheap, strong_model=strong).arespond(
                "What is my premium balance?", client_tools=[function]
            )
        )
        assert reply.tool_calls == [{"name": "get_balance", "arguments": {"account": "premium"}}]
        assert set(reply.usage_by_model) == {deciding}  # the decision was the whole turn
        assert reply.usage_by_model[deciding].total_tokens > 0
