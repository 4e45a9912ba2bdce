"""The tool layer's parts: typed steps, one loop with two executors, named checks, and the
service that puts the relevance gate in front of it."""

from __future__ import annotations

import asyncio
import json
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from charter import FakeModel
from charter.models.base import ChatModel, Message
from charter.spec.models import ToolCheckName, ToolLimits
from charter.tools.checks import CHECKS, NAMES, checks_for
from charter.tools.executors import ProposeToCaller, RunHere
from charter.tools.loop import ToolLoop
from charter.tools.registry import client_tools
from charter.tools.service import ToolUse
from charter.tools.steps import ACTIONS, Step

BALANCE = {
    "name": "get_balance",
    "description": "The customer's account balance",
    "parameters": {
        "type": "object",
        "properties": {
            "account": {"type": "string", "enum": ["everyday", "premium"]},
            "year": {"type": "integer"},
        },
        "required": ["account"],
    },
}
ASKED = [Message(role="user", content="What is my premium balance?")]


def decision(*calls: dict[str, Any], count: int | None = None) -> str:
    items = [{"tool": "get_balance", "arguments": a} for a in calls]
    return json.dumps({"calls": items} if count is None else {"count": count, "calls": items})


def tools(run: Any = None) -> Any:
    return client_tools([BALANCE], run=run or (lambda arguments: {"balance": 10}))


def test_a_step_reads_in_the_trace_as_it_always_has() -> None:
    """`Step.to_dict` gives the keys (and their order) that traces and stored turns hold."""
    call = {"tool": "get_balance", "arguments": {"account": "premium"}}
    ran = Step(call, "ran", dropped=["year=2019"], ms=1.5, result_chars=14)
    assert list(ran.to_dict()) == ["decision", "dropped", "ms", "action", "result_chars"]
    failed = Step(call, "failed", error="timed out after 10 s", ms=10000.0)
    assert list(failed.to_dict()) == ["decision", "action", "error", "ms"]
    waiting = Step(call, "awaiting_approval", converted=["rate: 8 → 0.08"], reference="ESC-1")
    assert waiting.to_dict() == {
        "decision": call,
        "converted": ["rate: 8 → 0.08"],
        "action": "awaiting_approval",
        "reference": "ESC-1",
    }
    assert Step(None, "invalid", error="").to_dict() == {
        "decision": None,
        "action": "invalid",
        "error": "",
    }
    assert set(ACTIONS) >= {"ran", "proposed", "answer", "loop", "variant", "withheld"}


def test_the_same_loop_runs_here_or_proposes_to_the_caller() -> None:
    """One script, both executors: the same checks decide (the invented year is left out),
    and only acting differs (a result for the model, or a call for the caller)."""
    script = [decision({"account": "premium", "year": 2019}, count=1), decision()]
    limits = ToolLimits(remind_unused=False)

    ran: list[dict[str, Any]] = []

    def run(arguments: dict[str, Any]) -> dict[str, int]:
        ran.append(arguments)
        return {"b": 1}

    here = ToolLoop(FakeModel(list(script)), tools(run), limits)
    out = asyncio.run(here.turn("You help.", ASKED, RunHere()))
    assert [s.action for s in out.steps] == ["ran", "answer"]
    assert ran == [{"account": "premium"}] and out.steps[0].dropped == ["year=2019"]
    assert out.results == ['get_balance({"account": "premium"}) → {"b": 1}']

    model = FakeModel(list(script))
    proposed, out = asyncio.run(ToolLoop(model, tools(), limits).propose("You help.", ASKED))
    assert [s.action for s in out.steps] == ["proposed"]
    assert proposed == [{"name": "get_balance", "arguments": {"account": "premium"}}]
    assert len(model.calls) == 1  # the caller runs it: no decision after the proposal


def test_the_checks_a_charter_lists_are_the_ones_applied() -> None:
    invented = decision({"account": "premium", "year": 2019}, count=1)
    for checks, dropped in ((None, ["year=2019"]), (["variants"], None), ([], None)):
        limits = ToolLimits(checks=checks, remind_unused=False)
        loop = ToolLoop(FakeModel([invented, decision()]), tools(), limits)
        out = asyncio.run(loop.run("You help.", ASKED))
        assert out.steps[0].action == "ran" and out.steps[0].dropped == dropped
    off = ToolLimits(grounded_arguments=False)
    assert off.applied_checks == () and checks_for(off) == ()
    assert ToolLimits().applied_checks == get_args(ToolCheckName)


def test_an_unknown_check_is_an_error_that_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="'grounded_arguments', 'unnamed_options'"):
        ToolLimits.model_validate({"checks": ["grounded"]})
    with pytest.raises(ValidationError, match="grounded_arguments: false turns every check"):
        ToolLimits(grounded_arguments=False, checks=["variants"])
    assert set(NAMES) == set(get_args(ToolCheckName))
    assert [c.stage for c in CHECKS] == ["decision"] * 2 + ["arguments"] * 2


def test_a_message_no_tool_fits_asks_no_model() -> None:
    asked: list[str] = []

    def model() -> ChatModel:
        asked.append("model")
        return FakeModel([])

    use = ToolUse(model, ToolLimits(min_relevance=0.999))
    used = asyncio.run(use(tools(), "You help.", ASKED, ProposeToCaller()))
    assert used.loop is None and used.offered == [] and used.proposals == []
    assert set(used.relevance) == {"get_balance"} and asked == []

    every = ToolUse(FakeModel([decision({"account": "premium"})]), ToolLimits())
    used = asyncio.run(every(tools(), "You help.", ASKED, ProposeToCaller(), gated=False))
    assert used.relevance == {} and used.offered == ["get_balance"]
    assert used.proposals == [{"name": "get_balance", "arguments": {"account": "premium"}}]
