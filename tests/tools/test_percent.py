"""Percentages in the form a parameter takes (`charter.tools.percent`), alone and in the loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from charter import FakeModel
from charter.models.base import Message
from charter.spec.models import ToolLimits
from charter.tools.loop import ToolLoop
from charter.tools.percent import convert, form, percentages
from charter.tools.registry import client_tools

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "principal": {"type": "number", "description": "The amount invested."},
        "rate_of_return": {"type": "number", "description": "The annual rate of return."},
        "discount": {"type": "number", "description": "The discount in percent."},
        "share": {"type": "number", "description": "Share of the total, as a decimal."},
        "level": {"type": "integer", "description": "Level, e.g. 0.5 for 50%."},
        "years": {"type": "integer", "description": "How many years."},
    },
}


def test_percentages_and_the_form_a_parameter_takes() -> None:
    assert percentages("8% a year, 2.5 percent fee, 3 per cent tax, 40 years") == {8, 2.5, 3}
    props = SCHEMA["properties"]
    assert form("rate_of_return", props["rate_of_return"]) == "fraction"  # by its name
    assert form("share", props["share"]) == "fraction"  # its description says so
    assert form("discount", props["discount"]) == "percent"
    assert form("principal", props["principal"]) is None  # not a rate: left alone
    assert form("level", props["level"]) is None  # an integer never takes a fraction
    # "a decimal value ... as a percentage" is a number with decimals, not a fraction
    score = {"type": "number", "description": "A decimal value: the score as a percentage."}
    assert form("confidence_score", score) == "percent"


def test_a_percentage_is_rewritten_to_the_parameters_form_only() -> None:
    request = "Invest 5000 at 8% for 8 years with a 10% discount, a 25% share."
    arguments = {"principal": 5000, "rate_of_return": 8, "years": 8, "discount": 0.1, "share": 25}
    out, notes = convert(arguments, SCHEMA, request)
    assert out == {
        "principal": 5000,
        "rate_of_return": 0.08,
        "years": 8,
        "discount": 10,
        "share": 0.25,
    }
    assert notes == ["rate_of_return: 8 → 0.08", "discount: 0.1 → 10", "share: 25 → 0.25"]
    # already in the parameter's form, or no percentage in the request: unchanged
    right = {"rate_of_return": 0.08, "discount": 10}
    assert convert(right, SCHEMA, request) == (right, [])
    assert convert({"rate_of_return": 8}, SCHEMA, "at a rate of 8") == ({"rate_of_return": 8}, [])


def test_the_loop_runs_the_call_with_the_converted_value_and_records_it() -> None:
    ran: list[dict[str, Any]] = []
    tools = client_tools(
        [{"name": "future_value", "description": "Future value", "parameters": SCHEMA}],
        run=lambda arguments: ran.append(arguments) or {"value": 1},
    )
    decision = {
        "count": 1,
        "calls": [{"tool": "future_value", "arguments": {"principal": 5000, "rate_of_return": 8}}],
    }
    model = FakeModel([json.dumps(decision), json.dumps({"calls": []})])
    message = Message(role="user", content="What will 5000 be worth at 8%?")
    out = asyncio.run(ToolLoop(model, tools, ToolLimits()).run("You help.", [message]))
    assert ran == [{"principal": 5000, "rate_of_return": 0.08}]
    assert out.steps[0].converted == ["rate_of_return: 8 → 0.08"]
    assert out.calls == [
        {"tool": "future_value", "arguments": {"principal": 5000, "rate_of_return": 0.08}}
    ]

    ran.clear()
    model = FakeModel([json.dumps(decision), json.dumps({"calls": []})])
    limits = ToolLimits(convert_percentages=False)
    asyncio.run(ToolLoop(model, tools, limits).run("You help.", [message]))
    assert ran == [{"principal": 5000, "rate_of_return": 8}]
