"""The test kit: the scripted model's answers besides text (tool calls, structured JSON),
`TestChat` read as a user's conversation, and the guard against loading real weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.errors import ModelError
from charter.models.base import ChatRequest, Completion, Message, TextDelta
from charter.models.fake import FakeModel, Structured, ToolCall, decision, tool_call
from charter.spec import load_charter
from charter.tools.loop import counted_decision_schema, decision_schema
from charter.tools.registry import client_tools
from tests.conftest import EXAMPLES, ROOT
from tests.kit import TestChat

pytest_plugins = ["pytester"]

BANK_TOOLS = EXAMPLES / "acme-bank" / "bank_tools.py"
BALANCE = {
    "name": "get_balance",
    "description": "The customer's account balance",
    "parameters": {
        "type": "object",
        "properties": {"account": {"type": "string", "enum": ["everyday", "premium"]}},
        "required": ["account"],
        "additionalProperties": False,
    },
}
BANK = {
    "id": "bank",
    "persona": {"name": "Penny", "role": "support assistant", "organisation": "Acme"},
    "tools": [{**BALANCE, "implementation": f"{BANK_TOOLS}:get_balance"}],
    "tool_limits": {"min_relevance": -1},
    "guards": {"input": [], "output": []},
    "critique": {"enabled": False},
}
ASKED = [Message(role="user", content="What's my premium balance?")]


@pytest.fixture(autouse=True)
def bank_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_BANK_STATE", str(tmp_path / "bank.json"))


def offering(**request: Any) -> ChatRequest:
    return ChatRequest(messages=ASKED, **request)


# --- the scripted model -----------------------------------------------------------------


def test_a_decision_is_native_tool_calls_when_the_request_offers_tools() -> None:
    model = FakeModel([decision(tool_call("get_balance", account="premium"))], native_tools=True)
    completion = model.complete(offering(tools=[BALANCE]))
    assert completion.tool_calls == ({"name": "get_balance", "arguments": {"account": "premium"}},)
    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    assert model.calls[0].tools == [BALANCE]


def test_a_decision_is_the_loops_json_when_a_schema_is_asked() -> None:
    tools = client_tools([BALANCE])
    call = tool_call("get_balance", account="premium")
    model = FakeModel([call, call, decision(call, count=3)])
    first = model.complete(offering(json_schema=counted_decision_schema(tools)))
    later = model.complete(offering(json_schema=decision_schema(tools)))
    stated = model.complete(offering(json_schema=decision_schema(tools)))
    item = {"tool": "get_balance", "arguments": {"account": "premium"}}
    assert json.loads(first.text) == {"count": 1, "calls": [item]}  # the schema asks for it
    assert json.loads(later.text) == {"calls": [item]}
    assert json.loads(stated.text) == {"count": 3, "calls": [item]}


def test_scripted_json_must_match_the_schema_asked_unless_told() -> None:
    schema = decision_schema(client_tools([BALANCE]))
    savings = tool_call("get_balance", account="savings")  # not in the enum
    with pytest.raises(ModelError, match="does not match the schema"):
        FakeModel([decision(savings)]).complete(offering(json_schema=schema))
    loose = FakeModel([decision(savings, check=False)]).complete(offering(json_schema=schema))
    assert json.loads(loose.text)["calls"][0]["arguments"] == {"account": "savings"}
    verdict = {"type": "object", "properties": {"pass": {"type": "boolean"}}, "required": ["pass"]}
    judged = FakeModel([Structured({"pass": True})]).complete(offering(json_schema=verdict))
    assert json.loads(judged.text) == {"pass": True}
    with pytest.raises(ModelError, match="'pass' is a required property"):
        FakeModel([Structured({})]).complete(offering(json_schema=verdict))


def test_an_answer_out_of_step_with_the_request_is_named() -> None:
    with pytest.raises(ModelError, match="offers no tools and asks for no JSON"):
        FakeModel([tool_call("get_balance")]).complete(offering())
    with pytest.raises(ModelError, match="asks for none"):
        FakeModel([Structured({"a": 1})]).complete(offering())


def test_a_callable_answers_by_the_request_and_tool_calls_stream_without_text() -> None:
    def answer(request: ChatRequest) -> ToolCall | str:
        return tool_call("get_balance", account="everyday") if request.tools else "done"

    model = FakeModel(default=answer, native_tools=True)
    events = list(model.stream(offering(tools=[BALANCE])))
    assert len(events) == 1
    assert isinstance(events[0], Completion)
    assert events[0].tool_calls[0]["arguments"] == {"account": "everyday"}
    plain = list(model.stream(offering()))
    assert [e.text for e in plain if isinstance(e, TextDelta)] == ["done"]
    assert model.pending == 0


def test_raw_arguments_are_handed_on_as_a_backend_does() -> None:
    with TestChat(
        BANK,
        ToolCall("get_balance", '{"account": '),
        decision(),
        "Which account?",
        native_tools=True,
    ) as chat:
        turn = chat.say("What's my premium balance?")
    assert turn.text == "Which account?"
    assert turn.tool_calls == []
    assert "not run, invalid arguments" in turn.asked[1].messages[-1].content


# --- TestChat ---------------------------------------------------------------------------


@pytest.mark.parametrize("native", [True, False], ids=["native", "json"])
def test_one_script_drives_native_and_json_tool_calling(native: bool) -> None:
    with TestChat(
        BANK,
        decision(tool_call("get_balance", account="premium")),
        decision(),
        "You have 8020.0 EUR.",
        native_tools=native,
    ) as chat:
        turn = chat.say("What's my premium balance?")
    assert turn.text == "You have 8020.0 EUR."
    assert turn.tool_calls == [tool_call("get_balance", account="premium")]
    assert not turn.blocked and turn.verdicts == {}
    assert [bool(r.tools) for r in turn.asked] == [native, native, False]
    assert "8020.0" in turn.asked[-1].messages[0].content  # the result reached the reply


def test_a_conversation_keeps_its_history(chat: Callable[..., TestChat]) -> None:
    penny = chat({**BANK, "tools": []}, "Hello!", "We open at 9.")
    penny.say("hi")
    second = penny.say("When do you open?")
    assert second.text == "We open at 9."
    assert [m.content for m in penny.history] == ["hi", "Hello!", "When do you open?", second.text]
    [request] = second.asked
    assert [m.content for m in request.messages[1:]] == ["hi", "Hello!", "When do you open?"]


def test_a_fake_backend_charter_answers_with_its_own_replies(
    chat: Callable[..., TestChat], fake_charter_file: Callable[..., Path]
) -> None:
    penny = chat(fake_charter_file(["One.", "Two."]))
    assert [penny.say("a").text, penny.say("b").text, penny.say("c").text] == [
        "One.",
        "Two.",
        "Two.",
    ]


def test_citations_and_hand_offs_are_what_the_user_sees(
    chat: Callable[..., TestChat], acme_file: Path
) -> None:
    acme = load_charter(acme_file).model_copy(update={"tools": []})
    penny = chat(acme, "The daily cash limit on Premium is 1,000 EUR [1].")
    cited = penny.say("How much cash can I withdraw per day with Premium?")
    assert cited.citations == ["cards-and-limits.md › Daily limits"]
    handed = penny.say("I want to speak to a human.")
    assert handed.triggers == ["user_request"]
    assert [e.id for e in penny.queued] == [handed.escalations[0]["id"]]
    assert handed.asked == []


# --- no real weights without the `model` mark -------------------------------------------

LOADS_WEIGHTS = """
import pytest

from charter.errors import ModelError
from charter.models.local import LocalModel


def test_unmarked_load(tmp_path):
    LocalModel(tmp_path / "model.gguf", threads=1)


def test_unmarked_load_swallowed(tmp_path):
    try:
        LocalModel(tmp_path / "model.gguf", threads=1)
    except BaseException:
        pass


@pytest.mark.model
def test_marked_load_reaches_llama_cpp(tmp_path):
    with pytest.raises(ModelError, match="could not load"):
        LocalModel(tmp_path / "model.gguf", threads=1)
"""


def test_loading_real_weights_without_the_model_mark_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xllamacpp", reason="the `local` extra is not installed")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=LOADS_WEIGHTS)
    result = pytester.runpytest_subprocess(
        "-p", "tests.conftest", "-p", "no:cacheprovider", "-o", "markers=model: real weights"
    )
    # The marked test reaches llama.cpp (which finds no file); the unmarked ones fail, even
    # the one that swallows the failure.
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_unmarked_load _*",
            "this test loads real model weights (xllamacpp.Server) but is not marked `model`*",
            "*_ test_unmarked_load_swallowed _*",
            "this test tried to load real model weights (xllamacpp.Server)*swallowed*",
        ]
    )
